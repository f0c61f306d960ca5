import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { buildClassifier } from '../../training-container/src/model/index.ts';
import { Adam } from '../../training-container/src/train/adam.ts';
import { nativeAvailable, random, relativeError } from './helpers.ts';

/**
 * End to end: 20 Adam steps (lr 1e-4) of a small EfficientNet (the real builder at width/depth 0.25, 32 px,
 * no dropout or drop-connect so both runs are deterministic) on onednn and on cpu, from the same
 * initial weights and batch. Every kernel of a real training step takes part, native or not.
 */

const native = await nativeAvailable();

const SIZE = 32;
// Batch 8: at 32 px the last blocks are 1x1 spatial, so batch-norm statistics come from BATCH
// values only; 4 made the variance (and the run) ill-conditioned.
const BATCH = 8;
const STEPS = 20;

function smallModel(): tf.LayersModel {
  const model = buildClassifier({
    imageSize: SIZE,
    numClasses: 4,
    width: 0.25,
    depth: 0.25,
    dropout: 0,
    dropConnect: 0,
  });
  model.compile({ optimizer: new Adam(1e-4), loss: 'categoricalCrossentropy' });
  return model;
}

async function train(backend: string, initial: Float32Array[]): Promise<number[]> {
  await tf.setBackend(backend);
  const model = smallModel();
  model.setWeights(initial.map((v, i) => tf.tensor(v, model.getWeights()[i].shape)));
  const xs = tf.tensor4d(
    random([BATCH, SIZE, SIZE, 3], 42).map((v) => (v + 1) * 127.5),
    [BATCH, SIZE, SIZE, 3],
  );
  const labels = tf.tensor1d(
    Array.from({ length: BATCH }, (_, i) => i % 4),
    'int32',
  );
  const ys = tf.oneHot(labels, 4).toFloat();
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    losses.push((await model.trainOnBatch(xs, ys)) as number);
    // trainOnBatch settles in microtasks only: without a macrotask turn the 20 cpu steps (over a
    // minute on a 2-core AVX2 machine) starve vitest's worker RPC, which then fails the run.
    await new Promise((resolve) => setImmediate(resolve));
  }
  tf.dispose([xs, ys, labels]);
  model.dispose();
  return losses;
}

describe('training on onednn', () => {
  it(
    native
      ? '20 steps of a small EfficientNet give the same losses as cpu (within 1e-3)'
      : 'addon unavailable: 20 cpu steps still train (no native comparison possible)',
    async () => {
      await tf.setBackend('cpu');
      const reference = smallModel();
      const initial = reference.getWeights().map((w) => w.dataSync() as Float32Array);
      reference.dispose();

      const cpu = await train('cpu', initial);
      expect(cpu[STEPS - 1]).toBeLessThan(cpu[0]); // it really learns, so the comparison means something
      if (!native) return;
      const onednn = await train('onednn', initial);
      const diffs = onednn.map((l, i) => Math.abs(l - cpu[i]));
      const worst = Math.max(...diffs);
      console.log(
        `losses cpu ${cpu[0].toFixed(4)} -> ${cpu[STEPS - 1].toFixed(4)}, max |onednn - cpu| ${worst.toExponential(2)}`,
      );
      expect(
        worst,
        `per-step |onednn - cpu|: ${diffs.map((d) => d.toExponential(1)).join(' ')}`,
      ).toBeLessThan(1e-3);
    },
  );

  it(
    native
      ? 'inference (fused conv + sigmoid, native swish, batch-norm with moving statistics) matches cpu'
      : 'addon unavailable: inference runs on cpu only',
    async () => {
      await tf.setBackend('cpu');
      const model = smallModel();
      const weights = model
        .getWeights()
        .map((w) => ({ values: w.dataSync() as Float32Array, shape: w.shape }));
      const xs = () =>
        tf.tensor4d(
          random([3, SIZE, SIZE, 3], 7).map((v) => (v + 1) * 127.5),
          [3, SIZE, SIZE, 3],
        );
      const cpu = Float32Array.from(await (model.predict(xs()) as tf.Tensor).data());
      model.dispose();
      expect(cpu.every((p) => p > 0 && p < 1)).toBe(true);
      if (!native) return;
      await tf.setBackend('onednn');
      const onednnModel = smallModel();
      onednnModel.setWeights(weights.map((w) => tf.tensor(w.values, w.shape)));
      const onednn = Float32Array.from(await (onednnModel.predict(xs()) as tf.Tensor).data());
      onednnModel.dispose();
      expect(relativeError(onednn, cpu)).toBeLessThan(1e-4);
    },
  );
});
