import { type DecodedImages, imageAt } from '../data/decode.ts';
import { confusionMatrix, metricsFromConfusion } from './metrics.ts';

/**
 * The lookup baseline: a yardstick for test scores, never a predictor. Each test image takes the
 * label of its nearest training image (1-NN on small grey thumbnails, no learning). On a dataset
 * whose test images have near-copies in training, this alone scores well (78-81% on SARTAJ's
 * Testing, measured from 32-128 px caches), so a model's score means little until it is compared with this one, especially on
 * the leak-free part where the copies are gone.
 */
export interface LookupScore {
  accuracy: number;
  balancedAccuracy: number;
}

/** Default thumbnail side: small enough to blur away JPEG noise, large enough to tell scans apart. */
export const THUMBNAIL_SIDE = 32;

/**
 * Grey (mean of R, G, B) `side x side` thumbnails, row-major, one after the other, values 0-255.
 * Box (area) averaging, so every source pixel weighs by the area it covers in a thumbnail pixel,
 * whatever the ratio of the cache's size to `side`: a lookup then compares content, not aliasing.
 */
export function thumbnails(
  set: DecodedImages,
  indices: ArrayLike<number>,
  side = THUMBNAIL_SIDE,
): Float32Array {
  const size = set.imageSize;
  const taps = boxTaps(size, side);
  const grey = new Float32Array(size * size);
  const rows = new Float32Array(size * side); // horizontally resampled: size rows x side columns
  const out = new Float32Array(indices.length * side * side);
  for (let n = 0; n < indices.length; n++) {
    const rgb = imageAt(set, indices[n]);
    for (let p = 0, q = 0; p < grey.length; p++, q += 3) grey[p] = (rgb[q] + rgb[q + 1] + rgb[q + 2]) / 3;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < side; x++) {
        const { index, weight } = taps[x];
        let sum = 0;
        for (let t = 0; t < index.length; t++) sum += weight[t] * grey[y * size + index[t]];
        rows[y * side + x] = sum;
      }
    }
    const base = n * side * side;
    for (let y = 0; y < side; y++) {
      const { index, weight } = taps[y];
      for (let x = 0; x < side; x++) {
        let sum = 0;
        for (let t = 0; t < index.length; t++) sum += weight[t] * rows[index[t] * side + x];
        out[base + y * side + x] = sum;
      }
    }
  }
  return out;
}

/**
 * For each output pixel of a 1-D resample from `from` to `to` pixels, the source pixels it covers
 * and their weights (overlap length / output pixel length, summing to 1). Works both ways:
 * upsampling gives one or two taps per output pixel.
 */
function boxTaps(from: number, to: number): { index: Int32Array; weight: Float64Array }[] {
  const scale = from / to;
  return Array.from({ length: to }, (_, o) => {
    const start = o * scale;
    const end = (o + 1) * scale;
    const first = Math.floor(start);
    const last = Math.min(from - 1, Math.ceil(end) - 1);
    const index = new Int32Array(last - first + 1);
    const weight = new Float64Array(last - first + 1);
    for (let s = first; s <= last; s++) {
      index[s - first] = s;
      weight[s - first] = (Math.min(end, s + 1) - Math.max(start, s)) / scale;
    }
    return { index, weight };
  });
}

/**
 * The label of each query's nearest reference thumbnail: what a lookup of the training images
 * answers. Squared Euclidean distance, brute force (a few thousand references and a few hundred
 * queries take about a second); ties go to the earlier reference.
 */
export function nearestNeighbourLabels(
  reference: { thumbs: Float32Array; labels: ArrayLike<number> },
  queries: Float32Array,
): Int32Array {
  const count = reference.labels.length;
  if (count === 0) throw new Error('the lookup baseline needs at least one reference image');
  const dim = reference.thumbs.length / count;
  if (!Number.isInteger(dim) || queries.length % dim !== 0) {
    throw new Error(`thumbnail sizes differ: ${reference.thumbs.length} / ${count} vs ${queries.length}`);
  }
  const refs = reference.thumbs;
  const result = new Int32Array(queries.length / dim);
  for (let q = 0; q < result.length; q++) {
    const qBase = q * dim;
    let best = Number.POSITIVE_INFINITY;
    let bestIndex = 0;
    for (let r = 0; r < count; r++) {
      const rBase = r * dim;
      let d = 0;
      // Stop once this reference is already farther than the best one (most are).
      for (let k = 0; k < dim && d < best; k++) {
        const diff = queries[qBase + k] - refs[rBase + k];
        d += diff * diff;
      }
      if (d < best) {
        best = d;
        bestIndex = r;
      }
    }
    result[q] = reference.labels[bestIndex];
  }
  return result;
}

/** Accuracy and balanced accuracy of lookup predictions, by the same definitions as the model's. */
export function lookupScore(
  truth: ArrayLike<number>,
  predicted: ArrayLike<number>,
  labels: readonly string[],
): LookupScore {
  const m = metricsFromConfusion(confusionMatrix(truth, predicted, labels.length), labels);
  return { accuracy: m.accuracy, balancedAccuracy: m.balancedAccuracy };
}

/**
 * The lookup baseline of a test set against every image of the train channel (validation
 * holdout included: a lookup has nothing to hold out), on the whole test set and on a subset of
 * it (the leak-free part), for reporting beside the model's scores.
 */
export function lookupBaseline(
  reference: DecodedImages,
  test: DecodedImages,
  subset: readonly number[],
  labels: readonly string[],
  side = THUMBNAIL_SIDE,
): { overall: LookupScore; subset: LookupScore } {
  const all = test.files.map((_, i) => i);
  const predicted = nearestNeighbourLabels(
    {
      thumbs: thumbnails(
        reference,
        reference.files.map((_, i) => i),
        side,
      ),
      labels: reference.labels,
    },
    thumbnails(test, all, side),
  );
  return {
    overall: lookupScore(test.labels, predicted, labels),
    subset: lookupScore(
      subset.map((i) => test.labels[i]),
      subset.map((i) => predicted[i]),
      labels,
    ),
  };
}
