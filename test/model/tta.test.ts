import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../training-container/src/engine/index.ts';
import { buildClassifier } from '../../training-container/src/model/index.ts';
import { loadModel, saveModel } from '../../training-container/src/model-io.ts';

const options = { imageSize: 32, numClasses: 4, width: 0.25, depth: 0.25, dropout: 0 } as const;

/** A model whose outputs depend strongly on the input: the random head is scaled up. */
function sharpen(model: tf.LayersModel): void {
  const dense = model.getLayer('predictions');
  const [kernel, bias] = dense.getWeights();
  dense.setWeights([tf.mul(kernel, 1000), bias]);
}

describe('flip test-time augmentation inside the model', () => {
  beforeAll(async () => {
    await initEngine('cpu', () => {});
  });

  it('predicts the mean of the image and its mirror, survives save and load, and trains on single views', async () => {
    // Seeded: a random initialisation is nearly mirror-invariant, and for some draws the two views
    // below differed by less than the 1e-3 the comparison needs (a CI run failed on 7.4e-4).
    const tta = buildClassifier({ ...options, tta: 'flip', seed: 2 });
    sharpen(tta);
    const plain = buildClassifier(options);
    plain.setWeights(tta.getWeights());
    // Bright on the left, dark on the right, plus noise: the mirror is a very different image.
    const ramp = tf.tile(tf.reshape(tf.linspace(255, 0, 32), [1, 1, 32, 1]), [3, 32, 1, 3]);
    const x = tf.clipByValue(tf.add(ramp, tf.randomUniform([3, 32, 32, 3], -30, 30, 'float32', 7)), 0, 255);
    const a = plain.predict(x) as tf.Tensor;
    const b = plain.predict(tf.reverse(x, 2)) as tf.Tensor;
    // The two views must differ, or the comparison below proves nothing.
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeGreaterThan(1e-3);

    const predicted = tta.predict(x) as tf.Tensor;
    expect(predicted.shape).toEqual([3, 4]);
    const expected = tf.div(tf.add(a, b), 2);
    expect(tf.max(tf.abs(tf.sub(predicted, expected))).dataSync()[0]).toBeLessThan(1e-5);

    const dir = await mkdtemp(path.join(os.tmpdir(), 'tta-'));
    try {
      await saveModel(tta, dir, { imageSize: 32, labels: ['glioma', 'meningioma', 'notumor', 'pituitary'] });
      const { model } = await loadModel(dir);
      const reloaded = model.predict(x) as tf.Tensor;
      expect(tf.max(tf.abs(tf.sub(reloaded, predicted))).dataSync()[0]).toBeLessThan(1e-6);
      model.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // Training mode sees one view per image (the flip is a random training augmentation already).
    // Last, because a training call moves the batch-norm statistics.
    const trained = tta.apply(x, { training: true }) as tf.Tensor;
    expect(trained.shape).toEqual([3, 4]);
  });
});

describe('seeded initial weights', () => {
  it('builds the same random weights from the same seed, and other weights from another', () => {
    const weights = (seed?: number) =>
      buildClassifier({ ...options, seed })
        .getWeights()
        .map((w) => Array.from(w.dataSync()));
    const a = weights(1);
    expect(weights(1)).toEqual(a);
    const other = weights(2).flat();
    const flatA = a.flat();
    expect(other.filter((v, i) => v !== flatA[i]).length).toBeGreaterThan(flatA.length / 2);
    expect(weights(undefined).flat()).not.toEqual(flatA);
  });
});
