import { createHash } from 'node:crypto';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { balancedClassWeights, countLabels } from '../data/class-weights.ts';
import { type DecodedImages, decodeImages, TooManyBadFilesError } from '../data/decode.ts';
import { groupScans, type ScanGroups } from '../data/groups.ts';
import { listImageFolder } from '../data/image-folder.ts';
import { groupedStratifiedSplit } from '../data/split.ts';
import { EngineUnavailableError, initEngine } from '../engine/index.ts';
import { confusionMatrixSvg, svgToPng, trainingCurvesSvg } from '../evaluate/charts.ts';
import { type LookupScore, lookupBaseline } from '../evaluate/lookup-baseline.ts';
import {
  type Metrics,
  metricsFromProbabilities,
  metricsOfSubset,
  mostConfidentlyWrong,
} from '../evaluate/metrics.ts';
import { predictProbabilities } from '../evaluate/predict.ts';
import { LABELS } from '../labels.ts';
import { buildClassifier, loadImagenetWeights } from '../model/index.ts';
import { saveModel } from '../model-io.ts';
import { CHANNELS, type OptMlPaths, optMlPaths } from '../paths.ts';
import { describePreprocessing, preprocessOptions } from '../preprocess.ts';
import {
  DEFAULT_WEIGHTS_PATH,
  HyperparameterError,
  type Hyperparameters,
  parseHyperparameters,
} from './hyperparameters.ts';
import { type TrainLoopResult, trainLoop } from './loop.ts';
import { watchPace } from './pace.ts';
import { createProgress } from './progress.ts';

/** A problem with the job's input or settings: its message goes to /opt/ml/output/failure as is. */
export class JobFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobFailure';
  }
}

export interface TrainingJobOptions {
  /** Default: `optMlPaths()` (honours OPT_ML_ROOT). */
  paths?: OptMlPaths;
  log?: (line: string) => void;
  /** Polled between optimizer steps; true = checkpoint and exit (SIGTERM). */
  shouldStop?: () => boolean;
}

/**
 * The SageMaker training job: read the /opt/ml contract, decode, split, train, write the model,
 * report and (with a `test` channel) the evaluation. Returns the process exit code; every
 * failure leaves a one-paragraph reason in /opt/ml/output/failure.
 */
export async function runTrainingJob(options: TrainingJobOptions = {}): Promise<number> {
  const paths = options.paths ?? optMlPaths();
  const log = options.log ?? ((line: string) => console.log(line));
  try {
    const outcome = await trainAndReport(paths, log, options.shouldStop ?? (() => false));
    return outcome === 'interrupted' ? 143 : 0;
  } catch (err) {
    const known = [JobFailure, TooManyBadFilesError, HyperparameterError, EngineUnavailableError].some(
      (type) => err instanceof type,
    );
    const message = err instanceof Error ? err.message : String(err);
    const reason = known ? message : `internal error: ${message}`;
    if (!known && err instanceof Error && err.stack) console.error(err.stack);
    await mkdir(path.dirname(paths.failure), { recursive: true });
    await writeFile(paths.failure, `${reason.replace(/\s+/g, ' ').trim()}\n`);
    log(`training failed: ${reason}`);
    return 1;
  }
}

async function trainAndReport(
  paths: OptMlPaths,
  log: (line: string) => void,
  shouldStop: () => boolean,
): Promise<'done' | 'interrupted'> {
  const started = performance.now();
  const seconds = (from: number) => Math.round((performance.now() - from) / 100) / 10;
  const hp = parseHyperparameters(await readJsonObject(paths.hyperparameters));
  const channels = await readJsonObject(paths.inputDataConfig, false);
  const resources = await readJsonObject(paths.resourceConfig, false);
  log(`hyperparameters ${JSON.stringify(hp)}`);
  if (Array.isArray(resources?.hosts) && resources.hosts.length > 1) {
    log(
      `warning: ${resources.hosts.length} hosts requested; this trainer uses one (${resources.current_host})`,
    );
  }

  const trainDir = paths.channel(CHANNELS.train);
  if (!(await exists(trainDir)) || (channels && !(CHANNELS.train in channels))) {
    throw new JobFailure(
      `the training job has no "train" input channel: expected an image folder at ${trainDir} with one ` +
        `sub-folder per class (${LABELS.join(', ')}; names like glioma_tumor also work).`,
    );
  }
  const testDir = paths.channel(CHANNELS.test);
  const hasTest = await exists(testDir);

  const engine = await initEngine(hp.engine, log);

  const decodeStarted = performance.now();
  const trainSet = await readChannel('train', trainDir, hp, log);
  const testSet = hasTest ? await readChannel('test', testDir, hp, log) : undefined;
  const decodeSeconds = seconds(decodeStarted);

  const groupingStarted = performance.now();
  const grouping = await groupScans(
    hp.grouping,
    { dir: trainDir, set: trainSet },
    testSet && { dir: testDir, set: testSet },
    log,
  );
  const groupingSeconds = seconds(groupingStarted);
  const groups = grouping.train;
  // validation_fraction=0: the epoch count was chosen on a validated run before; train on everything.
  const holdOut = hp.validation_fraction > 0;
  const split = holdOut
    ? groupedStratifiedSplit(trainSet.labels, groups, hp.validation_fraction, hp.seed)
    : { train: Array.from(trainSet.labels, (_, i) => i), validation: [] as number[] };
  const trainCounts = countLabels(trainSet.labels, split.train, LABELS.length);
  const validationCounts = countLabels(trainSet.labels, split.validation, LABELS.length);
  if (trainCounts.some((c) => c === 0) || (holdOut && split.validation.length === 0)) {
    throw new JobFailure(
      holdOut
        ? `the "train" channel is too small to split: after holding out validation_fraction=${hp.validation_fraction} ` +
            `the training part has ${fmtCounts(trainCounts)} and validation ${split.validation.length} images; ` +
            'add images or change validation_fraction.'
        : `the "train" channel lacks a class: it has ${fmtCounts(trainCounts)}; every class needs training images.`,
    );
  }
  const scans = `${new Set(groups).size} distinct scans by ${grouping.method} in ${groupingSeconds} s`;
  log(
    holdOut
      ? `split: train ${split.train.length} (${fmtCounts(trainCounts)}), validation ${split.validation.length} ` +
          `(${fmtCounts(validationCounts)}); ${scans}`
      : `split: none (validation_fraction=0): train on all ${split.train.length} (${fmtCounts(trainCounts)}); ${scans}`,
  );
  if (!holdOut && !testSet) {
    log(
      'warning: validation_fraction=0 and no "test" channel: nothing measures this model; ' +
        'add a test channel or set validation_fraction=0.2',
    );
  }
  const classWeights = hp.class_weights ? balancedClassWeights(trainCounts) : LABELS.map(() => 1);
  log(`class weights: ${LABELS.map((l, i) => `${l}=${classWeights[i].toFixed(3)}`).join(' ')}`);
  await mkdir(paths.model, { recursive: true });
  await writeJson(path.join(paths.model, 'split.json'), {
    seed: hp.seed,
    validationFraction: hp.validation_fraction,
    grouping: grouping.method,
    train: split.train.map((i) => trainSet.files[i].relPath),
    validation: split.validation.map((i) => trainSet.files[i].relPath),
  });

  const newModel = () => {
    const m = buildClassifier({
      imageSize: hp.image_size,
      numClasses: LABELS.length,
      dropout: hp.dropout,
      dropConnect: hp.drop_connect,
      width: hp.width,
      depth: hp.depth,
      tta: hp.tta,
      seed: hp.seed,
    });
    setBatchNormMomentum(m, hp.bn_momentum);
    return m;
  };
  let model = newModel();
  const weights = await initialWeights(model, hp.weights, log);
  log(`model: EfficientNet (width=${hp.width}, depth=${hp.depth}) ${model.countParams()} parameters`);

  const fingerprint = createHash('sha256')
    .update(JSON.stringify({ hp: trainingSettings(hp), train: split.train.map((i) => trainSet.hashes[i]) }))
    .digest('hex')
    .slice(0, 16);
  const progress = createProgress();
  const pace = watchPace({
    engine,
    epochs: hp.epochs,
    timeLimitMinutes: hp.time_limit_minutes,
    jobStartedAt: started,
    log: (line) => progress.log(line, log),
  });
  const loopOptions = {
    data: trainSet,
    classWeights,
    hp,
    augment: {
      rotationDeg: hp.rotation,
      flip: hp.flip,
      zoom: hp.zoom,
      shift: hp.shift,
      stretch: hp.stretch,
      gamma: hp.gamma,
      contrast: hp.contrast,
      degrade: hp.degrade,
      noise: hp.noise,
      remap: hp.remap,
    },
    log: (line: string) => progress.log(line, log),
    shouldStop,
    jobStartedAt: started,
    onEpochStart: (epoch: number, steps: number, start: number) => {
      pace.onEpochStart(epoch, steps, start);
      progress.start(`epoch ${epoch}`, steps, start);
    },
    onStep: (step: number, loss: number) => {
      progress.update(step, loss);
      pace.onStep(step);
    },
  };
  const result = await trainLoop({
    ...loopOptions,
    model,
    split,
    checkpointDir: paths.checkpoints,
    fingerprint,
  });
  progress.stop();
  if (result.stoppedBy === 'interrupted') return 'interrupted';

  // Refit: the validation run chose the recipe and showed its curves; the served model is trained
  // again, same schedule, on every image of the train channel (a fifth more data).
  let refit: RefitSummary | undefined;
  if (hp.refit) {
    const all = [...split.train, ...split.validation].sort((a, b) => a - b);
    const estimate = (result.seconds * all.length) / split.train.length;
    const elapsed = (performance.now() - started) / 1000;
    if (hp.time_limit_minutes > 0 && elapsed + estimate > hp.time_limit_minutes * 60) {
      const why =
        `about ${Math.round(estimate)} s more would end past time_limit_minutes=${hp.time_limit_minutes}; ` +
        'the model trained on the training part is kept';
      log(`refit skipped: ${why}`);
      refit = { skipped: why };
    } else {
      const validationRunTest =
        testSet && (await evaluateTestSet(model, testSet, trainSet, grouping, hp)).overall;
      model.dispose();
      model = newModel();
      await initialWeights(model, hp.weights, () => {});
      // The same schedule as the validation run, which the time limit may have shortened.
      const epochs = result.history.length;
      log(`refit: training a new model on all ${all.length} images for ${epochs} epochs`);
      const refitResult = await trainLoop({
        ...loopOptions,
        hp: { ...hp, epochs, time_limit_minutes: 0 },
        model,
        split: { train: all, validation: [] },
        checkpointDir: path.join(paths.checkpoints, 'refit'),
        fingerprint: `${fingerprint}-refit`,
        jobStartedAt: undefined,
      });
      progress.stop();
      if (refitResult.stoppedBy === 'interrupted') return 'interrupted';
      refit = {
        images: all.length,
        training: trainingSummary(refitResult),
        history: refitResult.history,
        seconds: Math.round(refitResult.seconds * 10) / 10,
        validationRunTestAccuracy: validationRunTest && round(validationRunTest.accuracy),
      };
    }
  }

  const artifact = await saveModel(model, paths.model, {
    imageSize: hp.image_size,
    labels: [...LABELS],
    preprocessing: preprocessOptions(hp),
  });
  await writeJson(path.join(paths.model, 'labels.json'), [...LABELS]);
  log(`model saved to ${paths.model} (version ${artifact.modelVersion})`);

  const evaluateStarted = performance.now();
  const evaluation = testSet ? await evaluateTestSet(model, testSet, trainSet, grouping, hp) : undefined;
  const evaluateSeconds = seconds(evaluateStarted);
  if (evaluation) {
    log(
      `test: accuracy=${evaluation.overall.accuracy.toFixed(4)} balanced_accuracy=${evaluation.overall.balancedAccuracy.toFixed(4)} ` +
        `leak_free_accuracy=${evaluation.leakFree.accuracy.toFixed(4)} (n=${evaluation.leakFree.n} of ${evaluation.overall.n}) ` +
        `lookup_accuracy=${evaluation.overall.lookupBaseline.accuracy.toFixed(4)} ` +
        `leak_free_lookup_accuracy=${evaluation.leakFree.lookupBaseline.accuracy.toFixed(4)}`,
    );
    // SageMaker metric definitions read both lines; the model registry's approval gate uses them.
    log(
      `test_recall: ${LABELS.map((l) => `${l}=${(evaluation.overall.perClass[l]?.recall ?? 0).toFixed(4)}`).join(' ')}`,
    );
  }

  const report = {
    createdAt: new Date().toISOString(),
    profile: hp.profile,
    hyperparameters: hp,
    engine,
    weights,
    model: {
      architecture: artifact.architecture,
      modelVersion: artifact.modelVersion,
      imageSize: hp.image_size,
      preprocessing: artifact.preprocessing,
      parameters: model.countParams(),
    },
    data: {
      train: channelSummary(trainSet),
      test: testSet ? channelSummary(testSet) : undefined,
      grouping: grouping.method,
      distinctTrainScans: new Set(groups).size,
      labelConflicts: grouping.labelConflicts,
    },
    split: {
      train: split.train.length,
      validation: split.validation.length,
      perClass: Object.fromEntries(
        LABELS.map((l, i) => [l, { train: trainCounts[i], validation: validationCounts[i] }]),
      ),
    },
    classWeights: Object.fromEntries(LABELS.map((l, i) => [l, round(classWeights[i])])),
    training: trainingSummary(result),
    history: result.history,
    refit,
    durations: {
      decodeSeconds,
      groupingSeconds,
      trainSeconds: Math.round(result.seconds * 10) / 10,
      evaluateSeconds,
      totalSeconds: seconds(started),
    },
    evaluation,
  };
  await writeJson(path.join(paths.model, 'training-report.json'), report);
  await mkdir(paths.outputData, { recursive: true });
  await writeJson(path.join(paths.outputData, 'training-report.json'), report);
  await writeFile(
    path.join(paths.outputData, 'training-curves.png'),
    await svgToPng(
      trainingCurvesSvg(result.history, `Training curves (${hp.image_size} px, ${engine.name})`),
    ),
  );
  if (evaluation) {
    await writeJson(path.join(paths.outputData, 'evaluation.json'), evaluation);
    const { labels, matrix } = evaluation.overall.confusionMatrix;
    const title = `Test set: accuracy ${(evaluation.overall.accuracy * 100).toFixed(1)}% (n=${evaluation.overall.n})`;
    await writeFile(
      path.join(paths.outputData, 'confusion-matrix.png'),
      await svgToPng(confusionMatrixSvg(labels, matrix, title)),
    );
  }
  log(`done in ${seconds(started)} s; outputs in ${paths.model} and ${paths.outputData}`);
  return 'done';
}

export interface Evaluation {
  /** `lookupBaseline`: what a 1-NN lookup of the train channel scores on the same images. */
  overall: Metrics & { lookupBaseline: LookupScore };
  /** Test images with no copy in the train channel, one per scan (same grouping as the split). */
  leakFree: Metrics & { grouping: string; lookupBaseline: LookupScore };
  mostConfidentlyWrong: ReturnType<typeof mostConfidentlyWrong>;
}

async function evaluateTestSet(
  model: tf.LayersModel,
  test: DecodedImages,
  train: DecodedImages,
  grouping: ScanGroups,
  hp: Hyperparameters,
): Promise<Evaluation> {
  const all = test.files.map((_, i) => i);
  const probs = await predictProbabilities(model, test, all, hp.batch_size * 2);
  const clean = grouping.leakFreeTest ?? all;
  // A yardstick for the scores below (how much a lookup of training copies explains); reported only.
  const lookup = lookupBaseline(train, test, clean, LABELS);
  return {
    overall: { ...metricsFromProbabilities(probs, test.labels, LABELS), lookupBaseline: lookup.overall },
    leakFree: {
      ...metricsOfSubset(probs, test.labels, clean, LABELS),
      grouping: grouping.method,
      lookupBaseline: lookup.subset,
    },
    mostConfidentlyWrong: mostConfidentlyWrong(
      probs,
      test.labels,
      test.files.map((f) => f.relPath),
      LABELS,
    ),
  };
}

async function readChannel(
  name: string,
  dir: string,
  hp: Hyperparameters,
  log: (line: string) => void,
): Promise<DecodedImages> {
  const folder = await listImageFolder(dir);
  if (folder.ignoredFolders.length) {
    log(`channel ${name}: ignoring folders that are not classes: ${folder.ignoredFolders.join(', ')}`);
  }
  if (folder.files.length === 0) throw new JobFailure(`the "${name}" channel at ${dir} holds no images.`);
  const decodeStarted = performance.now();
  const set = await decodeImages(folder.files, {
    imageSize: hp.image_size,
    preprocessing: preprocessOptions(hp),
    maxBadFiles: hp.max_bad_files,
    onSkip: (s) => log(`channel ${name}: skipping ${s.relPath}: ${s.reason}`),
  });
  // Counted after decoding: a class whose every file is unreadable is as empty as a missing one.
  const counts = LABELS.map((_, i) => set.labels.filter((l) => l === i).length);
  log(
    `channel ${name}: decoded ${set.files.length} images at ${hp.image_size} px ` +
      `(preprocessing ${describePreprocessing(preprocessOptions(hp))}) in ` +
      `${((performance.now() - decodeStarted) / 1000).toFixed(1)} s (${fmtCounts(counts)}), skipped ${set.skipped.length}`,
  );
  const empty = LABELS.filter((_, i) => counts[i] === 0);
  if (name === 'train' && empty.length) {
    throw new JobFailure(
      `the "${name}" channel has no images for class${empty.length > 1 ? 'es' : ''} ${empty.join(', ')}: every ` +
        `class needs a folder with readable images (found ${fmtCounts(counts)}` +
        `${set.skipped.length ? `; ${set.skipped.length} unreadable files skipped` : ''}` +
        `${folder.ignoredFolders.length ? `; folders not recognised as classes: ${folder.ignoredFolders.join(', ')}` : ''}).`,
    );
  }
  return set;
}

/** Resolves `weights`: a Keras h5 path, `none`, or `auto` (the image's file when present). */
async function initialWeights(
  model: tf.LayersModel,
  setting: string,
  log: (line: string) => void,
): Promise<{ source: string; loaded?: number; skipped?: string[] }> {
  let file = setting;
  if (setting === 'none') return { source: 'random initialisation' };
  if (setting === 'auto') {
    if (!(await exists(DEFAULT_WEIGHTS_PATH))) {
      log(
        `warning: ${DEFAULT_WEIGHTS_PATH} not found: training from random initialisation, which needs far more ` +
          'epochs; set the weights hyperparameter to a Keras efficientnetb0_notop.h5 to fine-tune from ImageNet',
      );
      return { source: 'random initialisation (no ImageNet weights file)' };
    }
    file = DEFAULT_WEIGHTS_PATH;
  }
  if (!(await exists(file)))
    throw new JobFailure(`weights file ${file} does not exist (hyperparameter "weights").`);
  const loaded = await loadImagenetWeights(model, file);
  log(`loaded ${loaded.loaded} ImageNet weight tensors from ${file}`);
  return { source: file, loaded: loaded.loaded, skipped: loaded.skipped };
}

function setBatchNormMomentum(model: tf.LayersModel, momentum: number): void {
  for (const layer of model.layers) {
    // tfjs reads `momentum` on every training call; the typings mark it readonly.
    if (layer.getClassName() === 'BatchNormalization')
      (layer as unknown as { momentum: number }).momentum = momentum;
  }
}

/** Settings that change what a checkpoint means; the others (epochs, engine, ...) may change on resume. */
export function trainingSettings(hp: Hyperparameters) {
  const { epochs, engine, time_limit_minutes, max_bad_files, early_stopping_patience, ...rest } = hp;
  // Settings added later count only when set, so a job checkpointed before they existed resumes.
  const { ema_decay, background, remap, ...before } = rest;
  return {
    ...before,
    ...(ema_decay !== 0 && { ema_decay }),
    ...(background !== 'keep' && { background }),
    ...(remap !== 0 && { remap }),
  };
}

/** The second run of `refit`, or why it was skipped. */
type RefitSummary =
  | { skipped: string }
  | {
      images: number;
      training: ReturnType<typeof trainingSummary>;
      history: TrainLoopResult['history'];
      seconds: number;
      /** Test accuracy of the validation run's model, before the refit replaced it. */
      validationRunTestAccuracy?: number;
    };

function trainingSummary(result: TrainLoopResult) {
  return {
    epochs: result.history.length,
    stoppedBy: result.stoppedBy,
    bestEpoch: result.bestEpoch,
    finalLearningRate: result.finalLearningRate,
    resumedFrom: result.resumedFrom,
  };
}

function channelSummary(set: DecodedImages) {
  return {
    images: set.files.length,
    perClass: Object.fromEntries(LABELS.map((l, i) => [l, set.labels.filter((x) => x === i).length])),
    skipped: set.skipped,
  };
}

/** A JSON object from the /opt/ml contract; a missing file reads as `{}` (or undefined when optional). */
async function readJsonObject(file: string): Promise<Record<string, unknown>>;
async function readJsonObject(file: string, required: false): Promise<Record<string, unknown> | undefined>;
async function readJsonObject(file: string, required = true): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return required ? {} : undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new JobFailure(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new JobFailure(`${file} must hold a JSON object`);
  }
  return value as Record<string, unknown>;
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

function fmtCounts(counts: readonly number[]): string {
  return LABELS.map((l, i) => `${l}=${counts[i]}`).join(' ');
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
