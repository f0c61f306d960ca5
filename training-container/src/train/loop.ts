import * as tf from '@tensorflow/tfjs';
import type { AugmentOptions } from '../data/augment.ts';
import { batches } from '../data/batches.ts';
import type { DecodedImages } from '../data/decode.ts';
import { deriveRng, shuffle } from '../data/rng.ts';
import type { Split } from '../data/split.ts';
import { lossAndAccuracy, predictProbabilities } from '../evaluate/predict.ts';
import { Adam } from './adam.ts';
import { EarlyStopping, ReduceLROnPlateau } from './callbacks.ts';
import {
  type CheckpointState,
  clearCheckpoints,
  type EpochRecord,
  loadLatestCheckpoint,
  restoreModelWeights,
  saveCheckpoint,
} from './checkpoint.ts';
import type { Hyperparameters } from './hyperparameters.ts';
import { WeightAverage } from './weight-average.ts';

export type StopReason = 'epochs' | 'early_stopping' | 'time_limit' | 'interrupted';

export interface TrainLoopOptions {
  model: tf.LayersModel;
  data: DecodedImages;
  split: Split;
  /** Loss weight per class (all 1 to disable). */
  classWeights: number[];
  hp: Pick<
    Hyperparameters,
    | 'batch_size'
    | 'grad_accum'
    | 'epochs'
    | 'learning_rate'
    | 'lr_factor'
    | 'lr_patience'
    | 'min_lr'
    | 'early_stopping_patience'
    | 'time_limit_minutes'
    | 'seed'
    | 'lr_schedule'
    | 'warmup_epochs'
    | 'label_smoothing'
    | 'ema_decay'
  >;
  augment: AugmentOptions;
  checkpointDir: string;
  /** Identifies the settings and split; checkpoints with another fingerprint are discarded. */
  fingerprint: string;
  log: (line: string) => void;
  /** Polled after every optimizer step (SIGTERM): checkpoint mid-epoch and return. */
  shouldStop?: () => boolean;
  onEpochStart?: (epoch: number, steps: number, startStep: number) => void;
  /** `performance.now()` when the job started: time_limit_minutes counts from here. Default: loop start. */
  jobStartedAt?: number;
  onStep?: (step: number, loss: number) => void;
}

export interface TrainLoopResult {
  history: EpochRecord[];
  stoppedBy: StopReason;
  /** Epoch whose weights the model holds at the end (best validation loss). */
  bestEpoch: number;
  resumedFrom?: { epoch: number; stepInEpoch: number; checkpoint: string };
  finalLearningRate: number;
  /** Training seconds in this process (decoding and evaluation excluded). */
  seconds: number;
}

/** The per-epoch line SageMaker metric definitions parse; keep the format fixed. */
/** `validated: false`: a run on all images (a refit, validation_fraction=0), with no `val_*` to print. */
export function formatEpochLine(r: EpochRecord, validated = true): string {
  const val = validated ? `val_loss=${r.val_loss.toFixed(4)} val_acc=${r.val_acc.toFixed(4)} ` : '';
  return `epoch=${r.epoch} train_loss=${r.train_loss.toFixed(4)} train_acc=${r.train_acc.toFixed(4)} ${val}lr=${r.lr.toFixed(6)}`;
}

/**
 * A hand-written loop rather than `model.fit`, because fit cannot accumulate gradients, stream
 * augmented batches from a uint8 cache, or checkpoint the optimizer mid-epoch. Keras semantics
 * otherwise: Adam, class-weighted cross-entropy (sum of weighted losses / batch size), validation
 * after every epoch, then reduce-on-plateau and early stopping on validation loss.
 */
export async function trainLoop(options: TrainLoopOptions): Promise<TrainLoopResult> {
  const { model, data, split, hp, log } = options;
  const numClasses = options.classWeights.length;
  const optimizer = new Adam(hp.learning_rate);
  const reduceLr = new ReduceLROnPlateau({
    factor: hp.lr_factor,
    patience: hp.lr_patience,
    minLr: hp.min_lr,
  });
  const early = new EarlyStopping({ patience: hp.early_stopping_patience });
  const average = hp.ema_decay > 0 ? new WeightAverage(hp.ema_decay) : undefined;
  let state: CheckpointState = {
    fingerprint: options.fingerprint,
    epoch: 0,
    stepInEpoch: 0,
    partial: emptyPartial(),
    learningRate: hp.learning_rate,
    reduceLr: reduceLr.state,
    earlyStopping: early.state,
    history: [],
  };

  let resumedFrom: TrainLoopResult['resumedFrom'];
  const checkpoint = await loadLatestCheckpoint(options.checkpointDir, log);
  if (checkpoint && checkpoint.state.fingerprint === options.fingerprint) {
    restoreModelWeights(model, checkpoint.model);
    await optimizer.setWeights(checkpoint.optimizer);
    // A job that ran out of epochs may be continued with more; an early stop is final.
    state = {
      ...checkpoint.state,
      finished:
        checkpoint.state.finished === 'epochs' && checkpoint.state.epoch < hp.epochs
          ? undefined
          : checkpoint.state.finished,
    };
    reduceLr.state = { ...state.reduceLr };
    early.state = { ...state.earlyStopping };
    early.setBestWeights(checkpoint.best);
    if (checkpoint.average && average) average.restore(checkpoint.average, state.averageUpdates ?? 0);
    else tf.dispose(checkpoint.average ?? []);
    resumedFrom = { epoch: state.epoch, stepInEpoch: state.stepInEpoch, checkpoint: checkpoint.dir };
    log(
      `resuming from checkpoint ${checkpoint.dir}: ${state.epoch} epochs done` +
        `${state.stepInEpoch ? ` and ${state.stepInEpoch} steps of the next` : ''}, lr=${state.learningRate}`,
    );
  } else if (checkpoint) {
    tf.dispose([...(checkpoint.best ?? []), ...(checkpoint.average ?? [])]);
    log(`ignoring checkpoints in ${options.checkpointDir}: they were made with other settings or data`);
    await clearCheckpoints(options.checkpointDir);
  }
  if (checkpoint) {
    tf.dispose(Object.values(checkpoint.model));
    tf.dispose(checkpoint.optimizer.map((w) => w.tensor));
  }
  setLearningRate(optimizer, state.learningRate);
  const cosine = hp.lr_schedule === 'cosine';

  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const weights = tf.tensor1d(options.classWeights);
  const stepImages = hp.batch_size * hp.grad_accum;
  const steps = Math.ceil(split.train.length / stepImages);
  const planned = () => state.plannedEpochs ?? hp.epochs;
  const scheduled = (epoch: number, step: number) =>
    cosineRate(
      hp.learning_rate,
      hp.min_lr,
      (epoch - 1) * steps + step,
      steps * hp.warmup_epochs,
      steps * planned(),
    );
  const valLabels = Int32Array.from(split.validation, (i) => data.labels[i]);
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  const save = () =>
    saveCheckpoint(options.checkpointDir, optimizer.iterations, {
      state: {
        ...state,
        reduceLr: { ...reduceLr.state },
        earlyStopping: { ...early.state },
        averageUpdates: average?.updates,
      },
      model,
      optimizer,
      best: early.bestWeights,
      average: average?.weights,
    });

  let stoppedBy = state.finished as StopReason | undefined;
  try {
    for (let epoch = state.epoch + 1; !stoppedBy && epoch <= planned(); epoch++) {
      const previous = state.history.at(-1)?.seconds;
      const jobSeconds = (performance.now() - (options.jobStartedAt ?? started)) / 1000;
      if (hp.time_limit_minutes > 0 && previous && jobSeconds + previous > hp.time_limit_minutes * 60) {
        log(`stopping before epoch ${epoch}: it would end past time_limit_minutes=${hp.time_limit_minutes}`);
        stoppedBy = 'time_limit';
        break;
      }
      const order = shuffle([...split.train], deriveRng(hp.seed, 1, epoch));
      const partial = state.stepInEpoch > 0 ? { ...state.partial } : emptyPartial();
      const epochStarted = performance.now() - partial.seconds * 1000;
      options.onEpochStart?.(epoch, steps, state.stepInEpoch);
      for (let step = state.stepInEpoch; step < steps; step++) {
        const stepOrder = order.slice(step * stepImages, (step + 1) * stepImages);
        const rng = deriveRng(hp.seed, 2, epoch, step);
        if (cosine) setLearningRate(optimizer, scheduled(epoch, step));
        const result = await trainStep(
          model,
          vars,
          optimizer,
          data,
          stepOrder,
          hp.batch_size,
          weights,
          { options: options.augment, rng },
          hp.label_smoothing,
        );
        average?.update(model);
        partial.lossSum += result.lossSum;
        partial.correct += result.correct;
        partial.seen += stepOrder.length;
        options.onStep?.(step + 1, partial.lossSum / partial.seen);
        if (options.shouldStop?.()) {
          partial.seconds = (performance.now() - epochStarted) / 1000;
          state = { ...state, stepInEpoch: step + 1, partial };
          const dir = await save();
          log(`interrupted: saved checkpoint ${dir} at epoch ${epoch}, step ${step + 1}/${steps}`);
          return result_('interrupted');
        }
      }
      // With a weight average, validation (and the early-stopping snapshot) sees the averaged
      // weights: they are the model that is kept.
      const validate = async () => {
        const probs = await predictProbabilities(model, data, split.validation, hp.batch_size * 2);
        const val = lossAndAccuracy(probs, valLabels, numClasses);
        const stop = cosine ? false : early.onEpochEnd(epoch, val.loss, model);
        return { val, stop };
      };
      const validated = split.validation.length > 0;
      const { val, stop } = !validated
        ? { val: { loss: Number.NaN, accuracy: Number.NaN }, stop: false }
        : average
          ? await average.withAverage(model, validate)
          : await validate();
      const record: EpochRecord = {
        epoch,
        train_loss: partial.lossSum / partial.seen,
        train_acc: partial.correct / partial.seen,
        val_loss: val.loss,
        val_acc: val.accuracy,
        lr: cosine ? scheduled(epoch, steps - 1) : state.learningRate,
        seconds: (performance.now() - epochStarted) / 1000,
      };
      log(formatEpochLine(record, validated));
      // A cosine schedule is planned for all epochs: no early stop, no plateau cuts, last weights kept.
      const nextLr = cosine ? state.learningRate : reduceLr.onEpochEnd(val.loss, state.learningRate);
      if (nextLr !== state.learningRate)
        log(`reducing learning rate to ${nextLr} (val_loss did not improve)`);
      setLearningRate(optimizer, nextLr);
      if (stop) {
        log(`early stopping: val_loss did not improve for ${hp.early_stopping_patience} epochs`);
        stoppedBy = 'early_stopping';
      } else if (epoch >= planned()) {
        stoppedBy = 'epochs';
      }
      // A cosine schedule cut short by the time limit would stop at a high rate, the worst point to
      // stop: fit the schedule to the epochs the time limit can hold, after the first epoch and
      // again after the second (the first is slow: kernels and buffers are set up; judged on it
      // alone, the quick profile lost three of its fifteen epochs).
      const refits = epoch === 1 || (epoch === 2 && state.plannedEpochs !== undefined);
      if (cosine && refits && !stoppedBy && hp.time_limit_minutes > 0) {
        const jobSeconds = (performance.now() - (options.jobStartedAt ?? started)) / 1000;
        // The mean so far: single epochs vary by a quarter on a shared 2-core machine.
        const times = [...state.history, record].map((h) => h.seconds);
        const meanSeconds = times.reduce((a, b) => a + b, 0) / times.length;
        const fit = epochsThatFit(hp.time_limit_minutes * 60 - jobSeconds, meanSeconds, epoch, hp.epochs);
        if (fit !== planned()) {
          state.plannedEpochs = fit < hp.epochs ? fit : undefined;
          log(
            `time_limit_minutes=${hp.time_limit_minutes} holds about ${fit} epochs of ` +
              `${meanSeconds.toFixed(0)} s: the cosine schedule spans ${fit} of epochs=${hp.epochs}`,
          );
          if (epoch >= planned()) stoppedBy = 'time_limit';
        }
      }
      state = {
        ...state,
        epoch,
        stepInEpoch: 0,
        partial: emptyPartial(),
        learningRate: nextLr,
        history: [...state.history, record],
        finished: stoppedBy,
      };
      await save();
    }
    stoppedBy ??= 'epochs';
    if (stoppedBy === 'time_limit') {
      state = { ...state, finished: stoppedBy };
      await save();
    }
    if (early.restoreBest(model)) {
      log(
        `restored the best weights${average ? ' (of the moving average)' : ''}: epoch ${early.state.bestEpoch} ` +
          `(val_loss=${early.state.best.toFixed(4)})`,
      );
    } else if (average?.applyTo(model)) {
      log(`kept the moving average of the weights (ema_decay=${hp.ema_decay}, ${average.updates} steps)`);
    }
    return result_(stoppedBy);
  } finally {
    weights.dispose();
    early.setBestWeights(undefined);
    average?.dispose();
    optimizer.dispose();
  }

  function result_(stop: StopReason): TrainLoopResult {
    return {
      history: state.history,
      stoppedBy: stop,
      bestEpoch: early.state.bestEpoch,
      resumedFrom,
      finalLearningRate: state.learningRate,
      seconds: elapsed(),
    };
  }
}

/**
 * One optimizer step over `stepOrder`, split into micro-batches of `microBatch` whose gradients
 * are summed: each micro-batch's loss is divided by the whole step's size, so the sum is exactly
 * the gradient of one big batch (batch-norm statistics aside) at a fraction of the memory.
 */
async function trainStep(
  model: tf.LayersModel,
  vars: tf.Variable[],
  optimizer: tf.Optimizer,
  data: DecodedImages,
  stepOrder: number[],
  microBatch: number,
  classWeights: tf.Tensor1D,
  augment: { options: AugmentOptions; rng: () => number },
  labelSmoothing = 0,
): Promise<{ lossSum: number; correct: number }> {
  const size = data.imageSize;
  const numClasses = classWeights.shape[0];
  let summed: tf.NamedTensorMap | undefined;
  let lossSum = 0;
  let correct = 0;
  for (const batch of batches(data, stepOrder, microBatch, augment)) {
    const n = batch.indices.length;
    let hits: tf.Scalar | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const x = tf.tensor4d(batch.x, [n, size, size, 3]);
      const y = tf.tensor1d(batch.y, 'int32');
      const probs = model.apply(x, { training: true }) as tf.Tensor2D;
      hits = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(probs, 1), y), 'float32'))) as tf.Scalar;
      let target = tf.oneHot(y, numClasses).toFloat();
      if (labelSmoothing > 0)
        target = tf.add(tf.mul(target, 1 - labelSmoothing), labelSmoothing / numClasses);
      const ce = tf.neg(tf.sum(tf.mul(target, tf.log(tf.clipByValue(probs, 1e-7, 1))), 1));
      return tf.div(tf.sum(tf.mul(ce, tf.gather(classWeights, y))), stepOrder.length) as tf.Scalar;
    }, vars);
    lossSum += (await value.data())[0] * stepOrder.length;
    correct += hits ? (await hits.data())[0] : 0;
    tf.dispose([value, hits as tf.Scalar]);
    if (!summed) {
      summed = grads;
    } else {
      const acc = summed;
      summed = Object.fromEntries(Object.keys(acc).map((k) => [k, tf.add(acc[k], grads[k])]));
      tf.dispose([...Object.values(acc), ...Object.values(grads)]);
    }
  }
  if (summed) {
    optimizer.applyGradients(summed);
    tf.dispose(Object.values(summed));
  }
  return { lossSum, correct };
}

function emptyPartial(): CheckpointState['partial'] {
  return { lossSum: 0, correct: 0, seen: 0, seconds: 0 };
}

/**
 * Linear warm-up from ~0 to `base` over `warmup` steps, then half a cosine down to `min` at `total`
 * steps. Warm-up matters from random weights: Adam's first steps at full rate push batch-norm'd
 * activations far off, and the early epochs were where from-scratch runs stalled.
 */
export function cosineRate(base: number, min: number, step: number, warmup: number, total: number): number {
  if (warmup > 0 && step < warmup) return (base * (step + 1)) / warmup;
  const t = Math.min(1, Math.max(0, (step - warmup) / Math.max(1, total - warmup)));
  return min + ((base - min) * (1 + Math.cos(Math.PI * t))) / 2;
}

/**
 * How many epochs a schedule can span: the `done` epochs so far plus as many more of
 * `epochSeconds` (with 5 % to spare) as `secondsLeft` holds, between `done` and `max`.
 */
export function epochsThatFit(secondsLeft: number, epochSeconds: number, done: number, max: number): number {
  const more = Math.floor(secondsLeft / (epochSeconds * 1.05));
  return Math.min(max, Math.max(done, done + more));
}

/** tfjs keeps Adam's rate in a protected field that applyGradients reads on every step. */
function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  (optimizer as unknown as { learningRate: number }).learningRate = lr;
}
