import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { EarlyStopping, ReduceLROnPlateau } from '../../training-container/src/train/callbacks.ts';

describe('ReduceLROnPlateau', () => {
  it('reduces after `patience` epochs without improvement, never below min_lr', () => {
    const cb = new ReduceLROnPlateau({ factor: 0.2, patience: 2, minLr: 1e-5 });
    const lrs: number[] = [];
    let lr = 1e-3;
    for (const loss of [1.0, 0.9, 0.95, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97]) {
      lr = cb.onEpochEnd(loss, lr);
      lrs.push(lr);
    }
    expect(lrs.map((x) => Number(x.toPrecision(3)))).toEqual([
      1e-3, 1e-3, 1e-3, 2e-4, 2e-4, 4e-5, 4e-5, 1e-5, 1e-5, 1e-5,
    ]);
  });
});

describe('EarlyStopping', () => {
  it('stops after `patience` epochs without improvement and restores the best weights', () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
    const cb = new EarlyStopping({ patience: 2 });
    const stops: boolean[] = [];
    [1.0, 0.5, 0.6, 0.7].forEach((loss, i) => {
      model.setWeights([tf.tensor2d([[i]]), tf.tensor1d([i])]);
      stops.push(cb.onEpochEnd(i + 1, loss, model));
    });
    expect(stops).toEqual([false, false, false, true]);
    expect(cb.state.bestEpoch).toBe(2);
    expect(cb.restoreBest(model)).toBe(true);
    expect(model.getWeights()[0].dataSync()[0]).toBe(1);
    cb.setBestWeights(undefined);
  });
});
