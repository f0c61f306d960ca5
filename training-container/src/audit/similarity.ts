import { candidatePairs, fingerprints } from './candidates.ts';
import { compare, Pyramid } from './compare.ts';

/** Two distinct images (by index into the input) judged to show the same scan. */
export interface SameScan {
  i: number;
  j: number;
  mirrored: boolean;
  correlation: number;
}

/** A candidate that reached full-resolution verification and was rejected: the calls worth checking. */
export interface NearMiss {
  i: number;
  j: number;
  mirrored: boolean;
  correlation: number;
  worstBlock: number;
}

export interface SimilarityResult {
  same: SameScan[];
  nearMisses: NearMiss[];
  candidates: number;
}

/** How many rejected near misses to keep for the report's sheet. */
const NEAR_MISSES = 24;

/**
 * Finds every pair of thumbnails showing the same scan, directly or mirrored. Inputs should be
 * distinct contents (byte-identical files are grouped before this, they need no pixels).
 */
export function findSameScans(
  thumbs: readonly Uint8Array[],
  onProgress?: (done: number, total: number) => void,
): SimilarityResult {
  const pyramids = thumbs.map((t) => new Pyramid(t));
  const candidates = candidatePairs(pyramids.map(fingerprints));
  // Plain orientation first: when it already matches, the mirrored check is moot.
  candidates.sort((a, b) => a.i - b.i || a.j - b.j || Number(a.mirrored) - Number(b.mirrored));
  const same: SameScan[] = [];
  const misses: NearMiss[] = [];
  let lastMatched = '';
  for (let k = 0; k < candidates.length; k++) {
    const c = candidates[k];
    const key = `${c.i},${c.j}`;
    if (key === lastMatched) continue;
    const v = compare(pyramids[c.i], pyramids[c.j], c.mirrored);
    if (v.same) {
      same.push({ i: c.i, j: c.j, mirrored: c.mirrored, correlation: v.correlation });
      lastMatched = key;
    } else if (Number.isFinite(v.worstBlock)) {
      misses.push({
        i: c.i,
        j: c.j,
        mirrored: c.mirrored,
        correlation: v.correlation,
        worstBlock: v.worstBlock,
      });
    }
    if (onProgress && (k % 500 === 0 || k === candidates.length - 1)) onProgress(k + 1, candidates.length);
  }
  misses.sort((a, b) => b.correlation - a.correlation);
  // A pair rejected in one orientation but matched in the other is no near miss.
  const matched = new Set(same.map((s) => `${s.i},${s.j}`));
  const nearMisses = misses.filter((m) => !matched.has(`${m.i},${m.j}`)).slice(0, NEAR_MISSES);
  return { same, nearMisses, candidates: candidates.length };
}

/** Disjoint sets with path compression: clusters are the connected components of "same scan". */
export class UnionFind {
  private readonly parent: Int32Array;

  constructor(n: number) {
    this.parent = Int32Array.from({ length: n }, (_, i) => i);
  }

  find(i: number): number {
    let root = i;
    while (this.parent[root] !== root) root = this.parent[root];
    while (this.parent[i] !== root) {
      const next = this.parent[i];
      this.parent[i] = root;
      i = next;
    }
    return root;
  }

  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent[Math.max(ra, rb)] = Math.min(ra, rb);
  }
}
