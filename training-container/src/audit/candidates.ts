import type { Pyramid } from './compare.ts';

/** Side of the coarse fingerprint used to pick candidate pairs. */
const SIDE = 16;

/**
 * Loose on purpose: verification decides, this only keeps the pairs worth verifying. Copies
 * whose crops differ by a few percent still score about 0.86 here; different scans mostly do not.
 */
export const CANDIDATE_CORRELATION = 0.75;

export interface Candidate {
  i: number;
  j: number;
  mirrored: boolean;
  /** Coarse correlation; verification runs in descending order of it. */
  score: number;
}

/** Zero-mean, unit-norm 16x16 fingerprint and its mirror image. */
export function fingerprints(p: Pyramid): { plain: Float32Array; mirrored: Float32Array } {
  const plain = normalise(p.p16);
  const mirrored = new Float32Array(plain.length);
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) mirrored[y * SIDE + x] = plain[y * SIDE + SIDE - 1 - x];
  }
  return { plain, mirrored };
}

/**
 * Every pair (i < j) whose fingerprints correlate in either orientation. All pairs are scored:
 * with a few thousand images that is a few seconds of dot products and, unlike hash buckets,
 * cannot miss a pair that sits just across a bucket edge.
 */
export function candidatePairs(
  prints: readonly { plain: Float32Array; mirrored: Float32Array }[],
  threshold = CANDIDATE_CORRELATION,
): Candidate[] {
  const out: Candidate[] = [];
  const len = SIDE * SIDE;
  for (let i = 0; i < prints.length; i++) {
    const a = prints[i].plain;
    for (let j = i + 1; j < prints.length; j++) {
      const b = prints[j].plain;
      const m = prints[j].mirrored;
      let plain = 0;
      let mirrored = 0;
      for (let k = 0; k < len; k++) {
        plain += a[k] * b[k];
        mirrored += a[k] * m[k];
      }
      if (plain >= threshold) out.push({ i, j, mirrored: false, score: plain });
      if (mirrored >= threshold) out.push({ i, j, mirrored: true, score: mirrored });
    }
  }
  return out;
}

function normalise(v: Float32Array): Float32Array {
  let mean = 0;
  for (const x of v) mean += x;
  mean /= v.length;
  let norm = 0;
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    out[i] = v[i] - mean;
    norm += out[i] * out[i];
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < v.length; i++) out[i] /= norm;
  return out;
}
