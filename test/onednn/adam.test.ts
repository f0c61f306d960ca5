import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { ADAM_UPDATE } from '../../training-container/src/engine/fused-kernels.ts';
import { Adam } from '../../training-container/src/train/adam.ts';
import { nativeAvailable, random, relativeError } from './helpers.ts';

/**
 * The trainer's Adam: on onednn one native kernel per variable, elsewhere tfjs's AdamOptimizer.
 * Both must give the same parameters and optimizer state after several steps, and a state saved
 * by one must resume in the other (checkpoints).
 */

const native = await nativeAvailable();
const SHAPES = [[3, 3, 5, 7], [129], [1]];

async function run(backend: string, steps: number, resumeFrom?: { name: string; tensor: tf.Tensor }[]) {
  await tf.setBackend(backend);
  const vars = SHAPES.map((s, i) =>
    tf.variable(tf.tensor(random(s, i + 1), s), true, `adam_test_${backend}_${i}`),
  );
  const optimizer = new Adam(0.01);
  if (resumeFrom)
    await optimizer.setWeights(resumeFrom.map((w) => ({ name: w.name, tensor: w.tensor.clone() })));
  const kernels = new Set<string>();
  for (let step = 0; step < steps; step++) {
    const grads: Record<string, tf.Tensor> = {};
    vars.forEach((v, i) => {
      grads[v.name] = tf.tensor(random(SHAPES[i], 100 * step + i + 7), SHAPES[i]);
    });
    const profile = await tf.profile(() =>
      optimizer.applyGradients(grads as unknown as Parameters<Adam['applyGradients']>[0]),
    );
    for (const k of profile.kernels) kernels.add(k.name);
    tf.dispose(Object.values(grads));
  }
  const values = await Promise.all(vars.map(async (v) => Float32Array.from(await v.data())));
  const state = await optimizer.getWeights();
  const stateValues = await Promise.all(state.map(async (w) => Float32Array.from(await w.tensor.data())));
  tf.dispose(vars);
  return { values, state, stateValues, kernels, iterations: optimizer.iterations };
}

describe('Adam', () => {
  if (!native) {
    it('is tfjs’s AdamOptimizer where no backend has the fused kernel', async () => {
      const r = await run('cpu', 2);
      expect(r.kernels.has(ADAM_UPDATE)).toBe(false);
      expect(r.iterations).toBe(2);
    });
    return;
  }

  it('takes one native kernel per variable on onednn and matches tfjs on cpu after 5 steps', async () => {
    const cpu = await run('cpu', 5);
    const onednn = await run('onednn', 5);
    expect(cpu.kernels.has(ADAM_UPDATE)).toBe(false);
    expect(onednn.kernels.has(ADAM_UPDATE)).toBe(true);
    expect(onednn.kernels.has('Sqrt')).toBe(false);
    expect(onednn.iterations).toBe(5);
    cpu.values.forEach((v, i) => {
      expect(relativeError(onednn.values[i], v), `variable ${i}`).toBeLessThan(1e-5);
    });
    expect(onednn.stateValues.length).toBe(cpu.stateValues.length);
    cpu.stateValues.forEach((v, i) => {
      expect(relativeError(onednn.stateValues[i], v), `state ${i}`).toBeLessThan(1e-5);
    });
  });

  it('resumes from a state saved by tfjs’s optimizer, and the reverse', async () => {
    const fromCpu = await run('cpu', 3);
    const fromOnednn = await run('onednn', 3);
    // Weight names carry the backend; map them onto the other run's variable names.
    const rename = (state: { name: string; tensor: tf.Tensor }[], from: string, to: string) =>
      state.map((w) => ({ name: w.name.replace(from, to), tensor: w.tensor }));
    const a = await run('onednn', 2, rename(fromCpu.state, 'adam_test_cpu', 'adam_test_onednn'));
    const b = await run('cpu', 2, rename(fromOnednn.state, 'adam_test_onednn', 'adam_test_cpu'));
    expect(a.iterations).toBe(5);
    a.values.forEach((v, i) => {
      expect(relativeError(v, b.values[i]), `variable ${i}`).toBeLessThan(1e-5);
    });
  });
});
