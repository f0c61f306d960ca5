import type { EngineInfo } from '../engine/index.ts';

/** Engines several times slower than onednn/tfjs-node on the same CPU (docs/engines.md). */
const SLOW_ENGINES: readonly string[] = ['wasm', 'cpu'];

/** Steps timed before the estimate; the first step is left out (it builds kernels and caches). */
const SAMPLE_STEPS = 6;

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
  let firstStepDoneAt: number | undefined;
  let done = false;
  return {
    onEpochStart(epoch, total, startStep) {
      // Only a fresh first epoch: a resumed run has already been told, and its timing is mixed.
      if (done || epoch !== 1 || startStep !== 0) {
        done = true;
        return;
      }
      steps = total;
      epochStartedAt = now();
    },
    onStep(step) {
      if (done || epochStartedAt === undefined) return;
      if (step === 1) firstStepDoneAt = now();
      const sample = Math.min(SAMPLE_STEPS, steps);
      if (step < sample || firstStepDoneAt === undefined) return;
      done = true;
      const t = now();
      const perStep = step > 1 ? (t - firstStepDoneAt) / (step - 1) : t - epochStartedAt;
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
