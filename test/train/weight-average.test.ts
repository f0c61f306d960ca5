import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { WeightAverage } from '../../training-container/src/train/weight-average.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A one-layer model whose two weights (kernel 2x1, bias 1) are set to `v`. */
function modelAt(v: number): tf.LayersModel {
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
  setAll(model, v);
  return model;
}

function setAll(model: tf.LayersModel, v: number): void {
  model.setWeights(model.weights.map((w) => tf.fill(w.shape as number[], v)));
}

const values = (tensors: tf.Tensor[]) => tensors.flatMap((t) => Array.from(t.dataSync()));

describe('WeightAverage', () => {
  it('starts at the first weights and ramps its decay as min(decay, (1 + n) / (10 + n))', () => {
    const model = modelAt(0);
    const average = new WeightAverage(0.9);
    average.update(model);
    expect(values(average.weights ?? [])).toEqual([0, 0, 0]);
    setAll(model, 1);
    // Second update: d = min(0.9, 2 / 11).
    expect(average.nextDecay()).toBeCloseTo(2 / 11, 12);
    average.update(model);
    const second = 9 / 11;
    for (const v of values(average.weights ?? [])) expect(v).toBeCloseTo(second, 6);
    // Third: d = 3 / 12.
    average.update(model);
    for (const v of values(average.weights ?? [])) expect(v).toBeCloseTo(0.25 * second + 0.75, 6);
    expect(average.updates).toBe(3);
    // Far along the ramp the configured decay caps it.
    average.updates = 1000;
    expect(average.nextDecay()).toBe(0.9);
  });

  it('lends the average to the model for a call, then puts the training weights back', async () => {
    const model = modelAt(2);
    const average = new WeightAverage(0.5);
    average.update(model);
    setAll(model, 4);
    const seen = await average.withAverage(model, async () => values(model.getWeights()));
    expect(seen).toEqual([2, 2, 2]);
    expect(values(model.getWeights())).toEqual([4, 4, 4]);
    expect(average.applyTo(model)).toBe(true);
    expect(values(model.getWeights())).toEqual([2, 2, 2]);
  });

  it('does not leak tensors across updates', () => {
    const model = modelAt(1);
    const average = new WeightAverage(0.99);
    average.update(model);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) average.update(model);
    expect(tf.memory().numTensors).toBe(before);
    average.dispose();
    expect(tf.memory().numTensors).toBe(before - 2);
  });

  it('refuses a decay outside (0, 1)', () => {
    expect(() => new WeightAverage(1)).toThrow(/decay must be in \(0, 1\)/);
  });
});
