import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  registerLeanBatchNormGradient,
  restoreStockBatchNormGradient,
} from '../../training-container/src/engine/batchnorm-grad.ts';

/** Gradients of a batch-norm loss w.r.t. every input, under whichever FusedBatchNorm gradient is registered. */
async function bnGrads(): Promise<Float32Array[]> {
  const x = tf.randomNormal([3, 5, 7, 6], 0.5, 2, 'float32', 1);
  const mean = tf.randomNormal([6], 0, 1, 'float32', 2);
  const variance = tf.randomUniform([6], 0.5, 2, 'float32', 3);
  const offset = tf.randomNormal([6], 0, 1, 'float32', 4);
  const scale = tf.randomNormal([6], 1, 0.3, 'float32', 5);
  const weights = tf.randomNormal([3, 5, 7, 6], 0, 1, 'float32', 6);
  const f = (a: tf.Tensor, m: tf.Tensor, v: tf.Tensor, o: tf.Tensor, s: tf.Tensor) =>
    tf.sum(tf.mul(tf.batchNorm(a, m, v, o, s, 1e-3), weights));
  const grads = tf.grads(f)([x, mean, variance, offset, scale]);
  const values = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
  tf.dispose([...grads, x, mean, variance, offset, scale, weights]);
  return values;
}

describe('lean FusedBatchNorm gradient', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  afterAll(() => restoreStockBatchNormGradient());

  it('equals tfjs-core gradient for x, mean, variance, offset and scale', async () => {
    restoreStockBatchNormGradient();
    const stock = await bnGrads();
    registerLeanBatchNormGradient();
    const lean = await bnGrads();
    expect(lean).toHaveLength(5);
    for (let i = 0; i < stock.length; i++) {
      const maxRef = Math.max(...stock[i].map(Math.abs));
      const maxDiff = Math.max(...stock[i].map((v, j) => Math.abs(v - lean[i][j])));
      expect(maxRef).toBeGreaterThan(0);
      expect(maxDiff / maxRef).toBeLessThan(1e-4);
    }
  });

  it('does not leak tensors', async () => {
    registerLeanBatchNormGradient();
    await bnGrads();
    const before = tf.memory().numTensors;
    await bnGrads();
    expect(tf.memory().numTensors).toBe(before);
  });
});
