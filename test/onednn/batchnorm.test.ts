import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { registerOnednnBackend } from '../../training-container/src/engine/onednn.ts';
import { expectKernelMatchesCpu, nativeAvailable, random, relativeError } from './helpers.ts';

/** Native batch-norm forward and the one-kernel gradients (batch norm, mean, square, sigmoid) against cpu. */

const native = await nativeAvailable();

const X_SHAPE = [2, 5, 3, 7];
const C = 7;
const positive = (shape: number[], seed: number) => random(shape, seed).map((v) => Math.abs(v) + 0.1);

/** Gradients of a scalar function of several float32 inputs, on one backend. */
async function gradsOn(
  backend: string,
  inputs: { values: Float32Array; shape: number[] }[],
  f: (...xs: tf.Tensor[]) => tf.Scalar,
): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const xs = inputs.map((i) => tf.tensor(i.values, i.shape));
  const grads = tf.grads(f)(xs);
  const out = [];
  for (const g of grads) out.push(Float32Array.from(await g.data()));
  tf.dispose([...xs, ...grads]);
  return out;
}

async function expectGradsMatchCpu(
  inputs: { values: Float32Array; shape: number[] }[],
  f: (...xs: tf.Tensor[]) => tf.Scalar,
): Promise<void> {
  const cpu = await gradsOn('cpu', inputs, f);
  const onednn = await gradsOn('onednn', inputs, f);
  cpu.forEach((g, i) => {
    expect(g.some((v) => v !== 0)).toBe(true);
    expect(relativeError(onednn[i], g), `gradient ${i}`).toBeLessThan(1e-4);
  });
}

describe('onednn batch norm and sigmoid gradient', () => {
  if (!native) {
    it('are unavailable, and the engine says why instead of registering', async () => {
      await expect(registerOnednnBackend()).rejects.toThrow(/engine onednn is not available/);
    });
    return;
  }

  const x = { values: random(X_SHAPE, 1, 3), shape: X_SHAPE };
  const mean = { values: random([C], 2), shape: [C] };
  const variance = { values: positive([C], 3), shape: [C] };
  const scale = { values: random([C], 4), shape: [C] };
  const offset = { values: random([C], 5), shape: [C] };
  const weights = tf.tensor(random(X_SHAPE, 6), X_SHAPE);

  it('FusedBatchNorm forward matches cpu, with and without scale/offset', async () => {
    await expectKernelMatchesCpu(
      'FusedBatchNorm',
      { x, mean, variance, scale, offset },
      { varianceEpsilon: 1e-3 },
    );
    await expectKernelMatchesCpu('FusedBatchNorm', { x, mean, variance }, { varianceEpsilon: 1e-3 });
  });

  it('all five FusedBatchNorm gradients match cpu', async () => {
    await expectGradsMatchCpu([x, mean, variance, scale, offset], (xt, m, v, s, o) =>
      tf.sum(tf.mul(tf.batchNorm(xt, m, v, o, s, 1e-3), weights)),
    );
  });

  it('the gradient through batch statistics (as tfjs-layers trains) matches cpu', async () => {
    await expectGradsMatchCpu([x, scale, offset], (xt, s, o) => {
      const { mean: m, variance: v } = tf.moments(xt, [0, 1, 2]);
      return tf.sum(tf.mul(tf.batchNorm(xt, m, v, o, s, 1e-3), weights));
    });
  });

  it('the mean (over leading, middle and all axes) and square gradients match cpu', async () => {
    for (const axes of [
      [0, 1, 2],
      [1, 2],
      [0, 1, 2, 3],
    ]) {
      await expectGradsMatchCpu([x], (xt) =>
        tf.sum(tf.mul(tf.mean(xt, axes, true), tf.sum(weights, axes, true))),
      );
    }
    await expectGradsMatchCpu([x], (xt) => tf.sum(tf.mul(tf.square(xt), weights)));
  });

  it('the sigmoid and swish gradients match cpu', async () => {
    await expectGradsMatchCpu([x], (xt) => tf.sum(tf.mul(tf.sigmoid(xt), weights)));
    await expectGradsMatchCpu([x], (xt) => tf.sum(tf.mul(tf.mul(xt, tf.sigmoid(xt)), weights)));
  });

  it('the swish activation of layers built after registration is native and matches cpu', async () => {
    const layer = tf.layers.activation({ activation: 'swish' });
    expect(layer.getConfig().activation).toBe('swish'); // saved models are unchanged
    const swish = (xt: tf.Tensor) => layer.apply(xt) as tf.Tensor;
    await tf.setBackend('onednn');
    const profile = await tf.profile(() => swish(tf.tensor(x.values, x.shape)));
    expect(profile.kernels.map((k) => k.name)).toContain('OnednnSwish');
    const forward = async (backend: string) => {
      await tf.setBackend(backend);
      return Float32Array.from(await swish(tf.tensor(x.values, x.shape)).data());
    };
    expect(relativeError(await forward('onednn'), await forward('cpu'))).toBeLessThan(1e-4);
    await expectGradsMatchCpu([x], (xt) => tf.sum(tf.mul(swish(xt), weights)));
  });

  it('other backends keep working with the replaced gradients registered', async () => {
    await tf.setBackend('cpu');
    const g = tf.grad((xt: tf.Tensor) => tf.sum(tf.sigmoid(xt)))(tf.tensor([0, 2]));
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    expect(
      relativeError(Float32Array.from(await g.data()), Float32Array.of(0.25, sig(2) * (1 - sig(2)))),
    ).toBeLessThan(1e-6);
  });
});
