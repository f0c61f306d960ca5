import type { EngineInfo } from '../engine/index.ts';

/** Engines several times slower than onednn/tfjs-node on the same CPU (docs/engines.md). */
const SLOW_ENGINES: readonly string[] = ['wasm', 'cpu'];

/**
 * Steps left out of the estimate, then steps timed. The first steps build kernels and fill the
 * onednn output pool: on one thread, steps 2-6 of a `quick` run averaged 283 ms against 175 ms for
 * the epoch, and an estimate from them said the limit held 11 of the 15 epochs it then trained.
 */
const WARMUP_STEPS = 5;
const SAMPLE_STEPS = 10;

export interface PaceOptions {
  engine: EngineInfo;
  epochs: number;
  timeLimitMinutes: number;
  /** `performance.now()` when the job started: the time limit counts from there. */
  jobStartedAt: number;
  log: (line: string) => void;
  now?: () => number;
}

export interface Pace {
  onEpochStart(epoch: number, steps: number, startStep: number): void;
  onStep(step: number): void;
}

/**
 * Says, a few steps into the first epoch, how many epochs the time limit will hold on this engine.
 * A run on the wasm fallback trains a fraction of the epochs onednn does within the same limit;
 * said early and plainly, nobody mistakes that starved model for the recipe's result.
 */
export function watchPace(options: PaceOptions): Pace {
  const now = options.now ?? (() => performance.now());
  let steps = 0;
  let epochStartedAt: number | undefined;
  let warm = 0;
  let last = 0;
  let warmDoneAt: number | undefined;
  let done = false;
  return {
    onEpochStart(epoch, total, startStep) {
      // Only a fresh first epoch: a resumed run has already been told, and its timing is mixed.
      if (done || epoch !== 1 || startStep !== 0) {
        done = true;
        return;
      }
      steps = total;
      // A short epoch keeps at least one timed step after its warm-up, where it has two steps.
      warm = Math.min(WARMUP_STEPS, steps - 1);
      last = Math.min(warm + SAMPLE_STEPS, steps);
      epochStartedAt = now();
    },
    onStep(step) {
      if (done || epochStartedAt === undefined) return;
      if (step === warm) warmDoneAt = now();
      if (step < last) return;
      done = true;
      const t = now();
      const perStep = warmDoneAt === undefined ? t - epochStartedAt : (t - warmDoneAt) / (step - warm);
      const line = paceLine({
        ...options,
        epochSeconds: (perStep * steps) / 1000,
        secondsBeforeFirstEpoch: (epochStartedAt - options.jobStartedAt) / 1000,
      });
      for (const l of line) options.log(l);
    },
  };
}

export function paceLine(o: {
  engine: EngineInfo;
  epochs: number;
  timeLimitMinutes: number;
  epochSeconds: number;
  secondsBeforeFirstEpoch: number;
}): string[] {
  const perEpoch = `about ${Math.round(o.epochSeconds)} s of training steps per epoch on engine=${o.engine.name}`;
  let fits = o.epochs;
  let head: string;
  if (o.timeLimitMinutes > 0) {
    const left = o.timeLimitMinutes * 60 - o.secondsBeforeFirstEpoch;
    fits = Math.max(0, Math.min(o.epochs, Math.floor(left / o.epochSeconds)));
    head = `pace: ${perEpoch}: time_limit_minutes=${o.timeLimitMinutes} holds about ${fits} of epochs=${o.epochs}`;
  } else {
    head = `pace: ${perEpoch}: epochs=${o.epochs} take about ${Math.round((o.epochs * o.epochSeconds) / 60)} min`;
  }
  if (!SLOW_ENGINES.includes(o.engine.name)) return [head];
  const onednn = o.engine.skipped?.find((s) => s.engine === 'onednn')?.reason;
  return [
    head,
    `warning: engine=${o.engine.name} is the slow fallback (onednn trains 5-10x faster on the same CPU); ` +
      `a model trained for ${fits} epochs is starved, not the recipe's result.` +
      (onednn ? ` onednn was skipped: ${onednn}` : ''),
  ];
}
