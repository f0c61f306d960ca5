import { describe, expect, it } from 'vitest';
import type { DecodedImages } from '../../training-container/src/data/decode.ts';
import {
  lookupBaseline,
  lookupScore,
  nearestNeighbourLabels,
  thumbnails,
} from '../../training-container/src/evaluate/lookup-baseline.ts';
import type { Label } from '../../training-container/src/labels.ts';

const LABELS = ['glioma', 'meningioma', 'notumor', 'pituitary'];

/** A decoded set from raw RGB images (each `size * size * 3` bytes, HWC). */
function decoded(size: number, images: Uint8Array[], labels: number[]): DecodedImages {
  const pixels = new Uint8Array(images.length * size * size * 3);
  images.forEach((img, i) => {
    pixels.set(img, i * size * size * 3);
  });
  return {
    imageSize: size,
    files: images.map((_, i) => ({
      path: `/x/${i}.jpg`,
      relPath: `${i}.jpg`,
      label: LABELS[labels[i] ?? 0] as Label,
      labelIndex: labels[i],
    })),
    labels: Int32Array.from(labels),
    hashes: images.map((_, i) => String(i)),
    pixels,
    skipped: [],
  };
}

/** RGB image whose grey value at (x, y) is `grey(x, y)`, with R, G, B spread around it. */
function image(size: number, grey: (x: number, y: number) => number): Uint8Array {
  const px = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const g = grey(x, y);
      const o = (y * size + x) * 3;
      const spread = Math.min(g, 255 - g, 30);
      px[o] = g - spread;
      px[o + 1] = g;
      px[o + 2] = g + spread;
    }
  }
  return px;
}

function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff;
  };
}

/** Smooth random images (a few bright blobs on a dark background), like scans more than noise is. */
function blobs(size: number, count: number, seed: number): Uint8Array[] {
  const rand = random(seed);
  return Array.from({ length: count }, () => {
    const spots = Array.from({ length: 3 }, () => [rand(), rand(), 0.05 + rand() * 0.2, 80 + rand() * 150]);
    return image(size, (x, y) =>
      Math.min(
        255,
        Math.round(
          spots.reduce(
            (v, [cx, cy, r, b]) => v + b * Math.exp(-((x / size - cx) ** 2 + (y / size - cy) ** 2) / (r * r)),
            10,
          ),
        ),
      ),
    );
  });
}

function noised(img: Uint8Array, amount: number, seed: number): Uint8Array {
  const rand = random(seed);
  return img.map((v) => Math.max(0, Math.min(255, Math.round(v + (rand() * 2 - 1) * amount))));
}

const indices = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('thumbnails', () => {
  it('averages R, G, B into grey and whole blocks into thumbnail pixels', () => {
    const set = decoded(64, [image(64, (x) => (x < 32 ? 0 : 255))], [0]);
    const t = thumbnails(set, [0], 32);
    expect(t).toHaveLength(32 * 32);
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) expect(t[y * 32 + x]).toBeCloseTo(x < 16 ? 0 : 255, 4);
    }
    // Grey is the mean of the channels, not one of them.
    const rgb = new Uint8Array(4 * 4 * 3);
    for (let p = 0; p < 16; p++) rgb.set([30, 60, 120], p * 3);
    expect([...thumbnails(decoded(4, [rgb], [0]), [0], 2)]).toEqual([70, 70, 70, 70]);
  });

  it('weighs source pixels by the area they cover when the sizes do not divide', () => {
    // 3 -> 2: thumbnail pixel 0 covers columns [0, 1.5), pixel 1 covers [1.5, 3).
    const set = decoded(3, [image(3, (x) => [0, 90, 180][x])], [0]);
    const t = thumbnails(set, [0], 2);
    expect([...t].map((v) => Math.round(v * 1e4) / 1e4)).toEqual([30, 150, 30, 150]);

    // Area averaging keeps the image's mean and never leaves the input range, e.g. 50 -> 32.
    const [img] = blobs(50, 1, 7);
    const big = thumbnails(decoded(50, [img], [0]), [0], 32);
    let mean = 0;
    for (let p = 0; p < img.length; p += 3) mean += (img[p] + img[p + 1] + img[p + 2]) / 3;
    mean /= 50 * 50;
    expect(big.reduce((a, b) => a + b, 0) / big.length).toBeCloseTo(mean, 2);
    expect(Math.min(...big)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...big)).toBeLessThanOrEqual(255);
  });

  it('takes the images named by the indices, in that order', () => {
    const set = decoded(8, [image(8, () => 10), image(8, () => 200)], [0, 1]);
    const t = thumbnails(set, [1, 0, 1], 4);
    expect([t[0], t[16], t[32]]).toEqual([200, 10, 200]);
  });
});

describe('nearestNeighbourLabels', () => {
  const size = 64;
  const train = blobs(size, 40, 1);
  // Each reference gets its own label, so a label names exactly which image was found.
  const reference = {
    thumbs: thumbnails(decoded(size, train, indices(40)), indices(40)),
    labels: indices(40),
  };

  it('finds a planted exact copy of a training image among distinct images', () => {
    const queries = blobs(size, 6, 2);
    queries[3] = train[17];
    const found = nearestNeighbourLabels(reference, thumbnails(decoded(size, queries, []), indices(6)));
    expect(found[3]).toBe(17);
    // The unrelated queries do not all land on the planted image.
    expect(new Set(found).size).toBeGreaterThan(1);
  });

  it('finds the source of a noised copy among distinct images', () => {
    const queries = [noised(train[5], 25, 3), noised(train[33], 25, 4), noised(train[0], 40, 5)];
    const found = nearestNeighbourLabels(reference, thumbnails(decoded(size, queries, []), indices(3)));
    expect([...found]).toEqual([5, 33, 0]);
  });

  it('rejects thumbnails of different sizes', () => {
    expect(() => nearestNeighbourLabels(reference, new Float32Array(100))).toThrow(/thumbnail sizes differ/);
  });
});

describe('lookupBaseline', () => {
  it('scores the whole test set and the given subset like the model is scored', () => {
    const size = 32;
    const train = blobs(size, 20, 11);
    const trainLabels = indices(20).map((i) => i % 4);
    // Six near-copies of training images: four keep their label, two are labelled otherwise.
    const sources = [0, 5, 10, 15, 2, 7];
    const testLabels = [0, 1, 2, 3, 1, 0];
    const test = decoded(
      size,
      sources.map((s, i) => noised(train[s], 10, 100 + i)),
      testLabels,
    );
    const result = lookupBaseline(decoded(size, train, trainLabels), test, [0, 1, 4], LABELS);
    // Predictions: [0, 1, 2, 3, 2, 3]; per-class recall: glioma 1/2, meningioma 1/2, notumor 1, pituitary 1.
    expect(result.overall.accuracy).toBeCloseTo(4 / 6, 10);
    expect(result.overall.balancedAccuracy).toBeCloseTo((0.5 + 0.5 + 1 + 1) / 4, 10);
    // Subset [0, 1, 4]: truth [0, 1, 1], predicted [0, 1, 2].
    expect(result.subset.accuracy).toBeCloseTo(2 / 3, 10);
    expect(result.subset.balancedAccuracy).toBeCloseTo((1 + 0.5) / 2, 10);
    expect(Object.keys(result.overall)).toEqual(['accuracy', 'balancedAccuracy']);
  });

  it('lookupScore counts only the classes present for balanced accuracy', () => {
    expect(lookupScore([0, 0, 0, 3], [0, 0, 1, 0], LABELS)).toEqual({
      accuracy: 0.5,
      balancedAccuracy: (2 / 3 + 0) / 2,
    });
  });
});
