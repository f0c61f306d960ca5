import { z } from 'zod';

/**
 * Training hyperparameters. SageMaker passes every value as a string, so each field parses a
 * string (numbers and booleans from a hand-written JSON file are accepted too). Resolution order:
 * BASE_DEFAULTS, then the profile's values, then whatever the job sets; anything set wins.
 */
export const ENGINES = ['auto', 'wasm', 'cpu', 'webgpu', 'tfjs-node-gpu', 'tfjs-node', 'onednn'] as const;
export const PROFILES = ['quick', 'cpu-full', 'full'] as const;
export type Profile = (typeof PROFILES)[number];

const text = z.union([z.string(), z.number(), z.boolean()]).transform((v) => String(v).trim());

const int = (min: number, max: number) =>
  text
    .refine((s) => /^[+-]?\d+$/.test(s), { message: 'expected an integer' })
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const float = (min: number, max: number, { exclusiveMin = false } = {}) =>
  text
    .refine((s) => s !== '' && Number.isFinite(Number(s)), { message: 'expected a number' })
    .transform(Number)
    .pipe(exclusiveMin ? z.number().gt(min).max(max) : z.number().min(min).max(max));

const bool = text
  .transform((s) => s.toLowerCase())
  .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' }))
  .transform((s) => s === 'true' || s === '1' || s === 'yes');

const oneOf = <T extends readonly [string, ...string[]]>(values: T) =>
  text.pipe(z.enum(values, { message: `expected one of ${values.join(', ')}` }));

export const HyperparametersSchema = z.strictObject({
  profile: oneOf(PROFILES),
  /** Square input side in pixels. */
  image_size: int(32, 600),
  /**
   * Source-invariant preprocessing (preprocess.ts; recorded in preprocessing.json, so evaluation and
   * serving use the same): `background=border` turns a flat grey or white background black,
   * `crop=head` crops to the head's bounding box, `resize=pad` pads to a
   * black square instead of stretching, `intensity=standardize` maps the foreground to mean 128 and
   * standard deviation 48 (`equalize`: flattens the foreground's histogram), `grey` replicates one
   * grey channel into R, G and B.
   */
  background: oneOf(['keep', 'border'] as const),
  crop: oneOf(['none', 'head'] as const),
  resize: oneOf(['stretch', 'pad'] as const),
  intensity: oneOf(['raw', 'standardize', 'equalize'] as const),
  grey: bool,
  /** Images per forward/backward pass. */
  batch_size: int(1, 1024),
  /** Micro-batches whose gradients are summed before one optimizer step (effective batch = product). */
  grad_accum: int(1, 256),
  epochs: int(1, 1000),
  learning_rate: float(0, 1, { exclusiveMin: true }),
  dropout: float(0, 0.95),
  drop_connect: float(0, 0.95),
  /**
   * Batch-norm moving-average momentum (Keras: 0.99). Lower adapts the inference statistics within a
   * few steps: needed when a short run trains from scratch, or validation sees stale statistics.
   */
  bn_momentum: float(0, 0.9999),
  /** EfficientNet width/depth multipliers; 1 = B0. Smaller values exist for tests and experiments. */
  width: float(0.05, 4),
  depth: float(0.05, 4),
  rotation: float(0, 180),
  flip: bool,
  zoom: float(0, 0.5),
  shift: float(0, 0.5),
  /** Maximum aspect-ratio change (augmentation); 0 disables. */
  stretch: float(0, 0.5),
  /** Maximum |log gamma| of the random intensity curve (augmentation); 0 disables. */
  gamma: float(0, 2),
  /** Maximum relative contrast change (augmentation); 0 disables. */
  contrast: float(0, 0.9),
  /** Probability of a lower-resolution copy and, separately, of a blur or sharpen (augmentation). */
  degrade: float(0, 1),
  /** Maximum standard deviation of added noise in grey levels (augmentation); 0 disables. */
  noise: float(0, 64),
  /** Probability of a random, possibly non-monotonic intensity curve (augmentation); 0 disables. */
  remap: float(0, 1),
  /**
   * `plateau`: Keras' ReduceLROnPlateau + early stopping on validation loss, best epoch restored (the
   * reference recipe). `cosine`: linear warm-up over `warmup_epochs`, then cosine decay to `min_lr`
   * over all `epochs`, stepped per optimizer step; the last epoch's weights are kept.
   */
  lr_schedule: oneOf(['plateau', 'cosine'] as const),
  warmup_epochs: float(0, 100),
  /**
   * Keep an exponential moving average of the weights, updated after every optimizer step with
   * this decay (0.999: about the last thousand steps), and ship it instead of the last step's
   * weights; validation scores the average. 0 disables.
   */
  ema_decay: float(0, 0.99999),
  /** Cross-entropy against (1 - s) * one-hot + s / classes. */
  label_smoothing: float(0, 0.5),
  /** `flip`: the saved model averages each image with its mirror at inference (test-time augmentation). */
  tta: oneOf(['none', 'flip'] as const),
  /**
   * After the run on the training part (whose validation curves pick the recipe), train a new
   * model with the same schedule on all of the train channel and ship that one. Needs
   * `lr_schedule=cosine` (a plateau schedule needs a validation loss). Skipped, with a log line,
   * when `time_limit_minutes` would be exceeded.
   */
  refit: bool,
  class_weights: bool,
  lr_factor: float(0, 1, { exclusiveMin: true }),
  lr_patience: int(0, 1000),
  min_lr: float(0, 1),
  early_stopping_patience: int(0, 1000),
  /** Stop before an epoch that would end past this many minutes since the job started (decoding included); 0 = no limit. */
  time_limit_minutes: float(0, 1e6),
  engine: oneOf(ENGINES),
  /** Keras `efficientnetb0_notop.h5` path, `none` for random init, or `auto` (DEFAULT_WEIGHTS_PATH if present). */
  weights: text.pipe(z.string().min(1, 'expected a path, auto or none')),
  seed: int(0, 2 ** 31 - 1),
  /** How copies of a scan are found for the split and the leak-free test: `audit` (near-duplicates) or `sha256`. */
  grouping: oneOf(['audit', 'sha256'] as const),
  /**
   * Share of each class held out (whole duplicate clusters) for validation. `0` holds out nothing:
   * one model trains on all of the train channel for `epochs`, a count chosen before on a validated
   * run, and the report has no validation figures. Needs `lr_schedule=cosine`, like `refit`.
   */
  validation_fraction: float(0, 0.9).refine((f) => f === 0 || f >= 0.01, {
    message: 'expected 0 (train on everything) or 0.01-0.9',
  }),
  /** Undecodable files are named and skipped; more than this many fails the job. */
  max_bad_files: int(0, 1_000_000),
});
export type Hyperparameters = z.output<typeof HyperparametersSchema>;
type RawValues = Partial<Record<keyof Hyperparameters, string>>;

export const DEFAULT_WEIGHTS_PATH = '/opt/weights/efficientnetb0_notop.h5';

/** Defaults shared by every profile (the `full` profile adds nothing to them). */
export const BASE_DEFAULTS: Required<RawValues> = {
  profile: 'full',
  image_size: '224',
  background: 'keep',
  crop: 'none',
  resize: 'stretch',
  intensity: 'raw',
  grey: 'false',
  batch_size: '32',
  grad_accum: '1',
  epochs: '30',
  learning_rate: '0.001',
  dropout: '0.2',
  drop_connect: '0.2',
  bn_momentum: '0.99',
  width: '1',
  depth: '1',
  rotation: '15',
  flip: 'true',
  zoom: '0.1',
  shift: '0.05',
  stretch: '0',
  gamma: '0',
  contrast: '0',
  degrade: '0',
  noise: '0',
  remap: '0',
  lr_schedule: 'plateau',
  warmup_epochs: '0',
  label_smoothing: '0',
  ema_decay: '0',
  tta: 'none',
  refit: 'false',
  class_weights: 'true',
  lr_factor: '0.2',
  lr_patience: '2',
  min_lr: '0.000001',
  early_stopping_patience: '5',
  time_limit_minutes: '0',
  engine: 'auto',
  weights: 'auto',
  seed: '42',
  grouping: 'audit',
  validation_fraction: '0.2',
  max_bad_files: '10',
};

/**
 * `full` is the reference recipe for a GPU: B0 at 224 px fine-tuned from ImageNet. `quick` is what
 * a 2-core CPU machine can train from random weights in about 10 minutes (docs/results/ablation.md has the
 * runs that chose each value): a half-width, half-depth EfficientNet at 96 px on source-invariant
 * pixels (head crop, padded, standardised grey), a warm-up + cosine schedule without dropout, and
 * flip test-time augmentation, trained on all of the train channel (no validation hold-out). `cpu-full`
 * is that recipe for the hour a CPU job may take, plus photometric augmentation.
 */
const QUICK: RawValues = {
  image_size: '96',
  width: '0.5',
  depth: '0.5',
  // Batch 32 fits a third more epochs into the time (a step of 32 cost 1.3x one of 16 on two
  // threads), but 12 epochs of 32 scored 35-52 % where 10 epochs of 16 scored 59 %: steps count.
  batch_size: '16',
  // Fixed, so a faster machine trains the same model; on the project's 2-core machine (28-36 s an
  // epoch on one thread) the time limit holds all 15; a slower machine fits the cosine schedule
  // to the epochs its limit holds.
  epochs: '15',
  bn_momentum: '0.9',
  // Pixels that do not tell the source: SARTAJ's classes come from different archives, and a
  // model trained on raw pixels learned the framing and contrast (Testing 43% against 69-71%).
  crop: 'head',
  resize: 'pad',
  intensity: 'standardize',
  grey: 'true',
  lr_schedule: 'cosine',
  warmup_epochs: '1',
  learning_rate: '0.003',
  // From random weights in 15 epochs the model underfits; regularisation only slowed it.
  dropout: '0',
  drop_connect: '0',
  tta: 'flip',
  // Validated runs chose the recipe and its epochs (docs/results/ablation.md); the shipped model
  // trains them on all of Training, which a refit after a validation run would need twice the time
  // for. An epoch on all images costs 4 % more than a validated one (a quarter more steps, no
  // validation pass), and 15 of them scored 72.1 % against 68.9 % on Testing over three seeds.
  validation_fraction: '0',
  // `npm ci && npm run local` within 12 minutes on the project's machine: npm ci, upload and
  // audit take about 1.7 of them (docs: README timings). A slower machine (or the wasm engine,
  // about 8x slower per step) gets a shorter cosine schedule that ends within the limit.
  time_limit_minutes: '10',
};

/** Augmentation toward other scanners and archives: intensity curve, contrast, resolution, blur, noise, aspect. */
const PHOTOMETRIC: RawValues = { gamma: '0.25', contrast: '0.2', degrade: '0.2', noise: '3', stretch: '0.1' };

export const PROFILE_VALUES: Record<Profile, RawValues> = {
  full: {},
  quick: QUICK,
  // The best this 2-core machine trains within an hour: the quick recipe for 50 epochs (validated
  // runs on two threads: 40-45 s each here, 35-39 minutes; on one thread and all images not timed
  // alone, about 31 minutes expected) with photometric augmentation toward unseen sources. Fifteen epochs
  // cannot spare the steps it costs (quick: Testing -3.5 to -8.6 points); fifty can, and there it
  // raised Testing by 3-5 points and the leak-free part by 5-10 (docs/results/ablation.md).
  // Validated runs of this recipe chose the 50 epochs (validation accuracy flat from epoch 40 on);
  // like quick, the shipped model trains them on all of Training: Testing +0.3 to +3.6 points over
  // three seeds against the validated runs' models.
  // A random intensity curve in a quarter of the images (remap) then raised the leak-free part from
  // 33.7 to 39.9 % and glioma recall from 35 to 43 %, Testing level (80.6 against 80.5 %; three
  // seeds); in half of them it underfitted the copies (Testing 77.1 %).
  'cpu-full': { ...QUICK, ...PHOTOMETRIC, remap: '0.25', epochs: '50', time_limit_minutes: '58' },
};

export class HyperparameterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HyperparameterError';
  }
}

/**
 * Parses the job's hyperparameters. Keys SageMaker or its tuner add (`sagemaker_*`, `_*`) are
 * ignored; any other unknown key is an error, so a typo never silently trains the wrong thing.
 */
export function parseHyperparameters(raw: Record<string, unknown> = {}): Hyperparameters {
  const given = Object.fromEntries(
    Object.entries(raw).filter(([k]) => !k.startsWith('sagemaker_') && !k.startsWith('_')),
  );
  const profile = oneOf(PROFILES).safeParse(given.profile ?? BASE_DEFAULTS.profile);
  if (!profile.success) {
    throw new HyperparameterError(
      `hyperparameter "profile": expected one of ${PROFILES.join(', ')}, got ${JSON.stringify(given.profile)}`,
    );
  }
  const merged = { ...BASE_DEFAULTS, ...PROFILE_VALUES[profile.data], ...given };
  const result = HyperparametersSchema.safeParse(merged);
  if (result.success) {
    if (result.data.refit && result.data.lr_schedule !== 'cosine') {
      throw new HyperparameterError(
        'hyperparameter "refit": needs lr_schedule=cosine (a plateau schedule depends on a validation loss, which a refit on all images does not have)',
      );
    }
    if (result.data.validation_fraction === 0) {
      if (result.data.lr_schedule !== 'cosine') {
        throw new HyperparameterError(
          'hyperparameter "validation_fraction": 0 needs lr_schedule=cosine (a plateau schedule depends on a validation loss, which a run on all images does not have); ' +
            'to hold out a validation part, set validation_fraction=0.2',
        );
      }
      if (result.data.refit) {
        throw new HyperparameterError(
          'hyperparameter "refit": true needs a validation run to refit after; with validation_fraction=0 the one run already trains on all images ' +
            '(set validation_fraction=0.2 for a validated run and its refit)',
        );
      }
    }
    return result.data;
  }
  const problems = result.error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return `unknown hyperparameter${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')} (known: ${Object.keys(BASE_DEFAULTS).join(', ')})`;
    }
    const key = String(issue.path[0]);
    return `hyperparameter "${key}": ${issue.message}, got ${JSON.stringify(merged[key as keyof typeof merged])}`;
  });
  throw new HyperparameterError(problems.join('; '));
}
