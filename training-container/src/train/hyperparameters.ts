import { z } from 'zod';

/**
 * Training hyperparameters. SageMaker passes every value as a string, so each field parses a
 * string (numbers and booleans from a hand-written JSON file are accepted too). Resolution order:
 * BASE_DEFAULTS, then the profile's values, then whatever the job sets; anything set wins.
 */
export const ENGINES = ['auto', 'wasm', 'cpu', 'webgpu', 'tfjs-node-gpu', 'tfjs-node', 'onednn'] as const;
export const PROFILES = ['quick', 'full'] as const;
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
  validation_fraction: float(0.01, 0.9),
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
 * `full` is the reference recipe for a GPU. `quick` fits all of SARTAJ Training into about
 * 11 minutes of a 2-core CPU on the onednn engine: 15 epochs of B0 at 128 px (about 43 s each; see
 * docs/training.md for the measurements).
 */
export const PROFILE_VALUES: Record<Profile, RawValues> = {
  full: {},
  quick: {
    image_size: '128',
    batch_size: '16',
    epochs: '15',
    bn_momentum: '0.9',
    // Patient callbacks: validation loss from random weights is noisy, and the epoch count or the
    // time limit, not early stopping, should end a quick run.
    lr_patience: '2',
    early_stopping_patience: '4',
    // A slower machine (or the wasm engine, about 8x slower per step) stops early instead of
    // running past 12 minutes.
    time_limit_minutes: '11',
  },
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
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return `unknown hyperparameter${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')} (known: ${Object.keys(BASE_DEFAULTS).join(', ')})`;
    }
    const key = String(issue.path[0]);
    return `hyperparameter "${key}": ${issue.message}, got ${JSON.stringify(merged[key as keyof typeof merged])}`;
  });
  throw new HyperparameterError(problems.join('; '));
}
