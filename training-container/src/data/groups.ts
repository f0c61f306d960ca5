import type { DecodedImages } from './decode.ts';

/**
 * Which images are copies of the same scan: the one place the split and the leak-free test
 * subset ask. Exact byte identity (sha256) for now; the dataset audit's near-duplicate clusters
 * (re-encoded and mirrored copies) replace it here when they are wired in.
 */
export const GROUPING = 'sha256 of the file bytes (exact duplicates)';

export function scanGroupIds(set: DecodedImages): string[] {
  return set.hashes;
}

/** Indices of `test` images with no copy anywhere in `train`: the leak-free part of a test set. */
export function leakFreeIndices(test: DecodedImages, train: DecodedImages): number[] {
  const seen = new Set(scanGroupIds(train));
  return scanGroupIds(test)
    .map((id, i) => (seen.has(id) ? -1 : i))
    .filter((i) => i >= 0);
}
