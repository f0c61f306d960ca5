import { type AugmentOptions, augmentInto } from './augment.ts';
import { type DecodedImages, imageAt } from './decode.ts';
import type { Rng } from './rng.ts';

/** One batch as plain arrays; the training loop turns it into tensors and disposes them. */
export interface Batch {
  /** Dataset indices of the images in the batch. */
  indices: number[];
  /** `[n, size, size, 3]` RGB in [0, 255], HWC. */
  x: Float32Array;
  /** Label index per image. */
  y: Int32Array;
}

/**
 * Streams batches over `order` (dataset indices), converting from the uint8 cache one batch at
 * a time; only training batches are augmented. The last batch may be smaller.
 */
export function* batches(
  set: DecodedImages,
  order: readonly number[],
  batchSize: number,
  augment: { options: AugmentOptions; rng: Rng } | undefined = undefined,
): Generator<Batch> {
  const n = set.imageSize * set.imageSize * 3;
  for (let start = 0; start < order.length; start += batchSize) {
    const indices = order.slice(start, start + batchSize);
    const x = new Float32Array(indices.length * n);
    const y = new Int32Array(indices.length);
    indices.forEach((idx, k) => {
      const src = imageAt(set, idx);
      if (augment) augmentInto(src, set.imageSize, x, k * n, augment.options, augment.rng);
      else x.set(src, k * n);
      y[k] = set.labels[idx];
    });
    yield { indices, x, y };
  }
}
