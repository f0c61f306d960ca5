import { describe, expect, it } from 'vitest';
import type { EngineInfo } from '../../training-container/src/engine/index.ts';
import { watchPace } from '../../training-container/src/train/pace.ts';

const wasm: EngineInfo = {
  name: 'wasm',
  backend: 'wasm',
  detail: '',
  skipped: [{ engine: 'onednn', reason: 'onednn.node is not built: oneDNN headers not found' }],
};
const onednn: EngineInfo = { name: 'onednn', backend: 'onednn', detail: '' };

/**
 * Drives one epoch of `steps` steps, the first taking 10 s, the next up to `slowSteps` (a warm-up)
 * `slowMs`, those after step 15 `lateMs` when given, and the others `stepMs` each.
 */
function run(
  engine: EngineInfo,
  opts: {
    steps: number;
    stepMs: number;
    limit: number;
    startStep?: number;
    slowSteps?: number;
    slowMs?: number;
    lateMs?: number;
  },
) {
  let clock = 30_000; // the job spent 30 s decoding before epoch 1
  const lines: string[] = [];
  const pace = watchPace({
    engine,
    epochs: 15,
    timeLimitMinutes: opts.limit,
    jobStartedAt: 0,
    log: (l) => lines.push(l),
    now: () => clock,
  });
  pace.onEpochStart(1, opts.steps, opts.startStep ?? 0);
  for (let step = (opts.startStep ?? 0) + 1; step <= opts.steps; step++) {
    if (step === 1) clock += 10_000;
    else if (step <= (opts.slowSteps ?? 1)) clock += opts.slowMs ?? 0;
    else if (step > 15 && opts.lateMs !== undefined) clock += opts.lateMs;
    else clock += opts.stepMs;
    pace.onStep(step);
  }
  return lines;
}

describe('the pace estimate a few steps into training', () => {
  it('on onednn: epochs the limit holds, from steady steps', () => {
    // 100 steps x 2 s = 200 s per epoch; (600 - 30) / 200 -> 2 epochs of 15.
    const lines = run(onednn, { steps: 100, stepMs: 2000, limit: 10 });
    expect(lines).toEqual([
      'pace: about 200 s of training steps per epoch on engine=onednn: time_limit_minutes=10 holds about 2 of epochs=15',
    ]);
  });

  it('times steps 6-15: the five warm-up steps (kernels built, buffers pooled) and later steps are left out', () => {
    // Steps 2-5 at 3 s (the old estimate, steps 2-6, said 280 s an epoch); steps 6-15 at 2 s; from
    // step 16 on 10 s, so a longer warm-up or sample would show.
    const lines = run(onednn, {
      steps: 100,
      stepMs: 2000,
      limit: 0,
      slowSteps: 5,
      slowMs: 3000,
      lateMs: 10_000,
    });
    expect(lines[0]).toMatch(/^pace: about 200 s of training steps per epoch /);
  });

  it('a short epoch times what follows its warm-up, and a one-step epoch its only step', () => {
    // 8 steps: warm-up 5, then steps 6-8 at 2 s -> 16 s an epoch.
    expect(run(onednn, { steps: 8, stepMs: 2000, limit: 0, slowSteps: 5, slowMs: 3000 })[0]).toMatch(
      /^pace: about 16 s of training steps/,
    );
    // 1 step: the 10 s first step is all there is.
    expect(run(onednn, { steps: 1, stepMs: 2000, limit: 0 })[0]).toMatch(
      /^pace: about 10 s of training steps/,
    );
  });

  it('on wasm: the same line plus a warning that names why onednn was skipped', () => {
    const lines = run(wasm, { steps: 50, stepMs: 1000, limit: 10 });
    expect(lines[0]).toMatch(/holds about 11 of epochs=15$/); // (600 - 30) / 50
    expect(lines[1]).toMatch(/^warning: engine=wasm is the slow fallback .*11 epochs is starved/);
    expect(lines[1]).toMatch(/onednn was skipped: onednn\.node is not built/);
  });

  it('without a time limit: how long the epochs take', () => {
    expect(run(onednn, { steps: 60, stepMs: 1000, limit: 0 })[0]).toMatch(/epochs=15 take about 15 min$/);
  });

  it('says nothing for a resumed epoch', () => {
    expect(run(wasm, { steps: 50, stepMs: 1000, limit: 10, startStep: 20 })).toEqual([]);
  });
});
