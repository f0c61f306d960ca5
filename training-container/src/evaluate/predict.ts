import * as tf from '@tensorflow/tfjs';
import { batches } from '../data/batches.ts';
import type { DecodedImages } from '../data/decode.ts';

/**
 * Class probabilities for `indices` of a decoded set, batch by batch in inference mode
 * (no dropout, batch-norm moving statistics). Row-major `[indices.length, numClasses]`.
 * Results are read with `await data()`, which every backend (webgpu included) supports.
 */
export async function predictProbabilities(
  model: tf.LayersModel,
  set: DecodedImages,
  indices: readonly number[],
  batchSize: number,
  onBatch?: (done: number, total: number) => void,
): Promise<Float32Array> {
  const numClasses = (model.outputs[0].shape.at(-1) as number) ?? 0;
  const out = new Float32Array(indices.length * numClasses);
  const size = set.imageSize;
  let offset = 0;
  for (const batch of batches(set, indices, batchSize)) {
    const probs = tf.tidy(() => {
      const x = tf.tensor4d(batch.x, [batch.indices.length, size, size, 3]);
      return model.predict(x) as tf.Tensor;
    });
    out.set(await probs.data(), offset);
    probs.dispose();
    offset += batch.indices.length * numClasses;
    onBatch?.(offset / numClasses, indices.length);
  }
  return out;
}

/** Mean cross-entropy and accuracy of probabilities against labels. */
export function lossAndAccuracy(
  probs: Float32Array,
  labels: ArrayLike<number>,
  numClasses: number,
): { loss: number; accuracy: number } {
  const n = labels.length;
  if (n === 0) return { loss: Number.NaN, accuracy: Number.NaN };
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const row = probs.subarray(i * numClasses, (i + 1) * numClasses);
    loss -= Math.log(Math.max(row[labels[i]], 1e-7));
    if (argmax(row) === labels[i]) correct++;
  }
  return { loss: loss / n, accuracy: correct / n };
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k;
  return best;
}
