import { THUMB_SIZE } from './thumbnail.ts';

/**
 * Pixel-level comparison of two normalised thumbnails: "are these the same scan?".
 *
 * A perceptual-hash distance cannot answer that on MRI data: neighbouring slices of one patient
 * are closer in hash space than a re-encoded copy with a slightly different crop, and a mirrored
 * copy is far from its original. So candidates are aligned (scale, shift, optional mirror) from
 * coarse to fine and judged on intensity-normalised pixels at full thumbnail resolution.
 */

/** Maps output pixel (x, y) to source (c + (x - c) * sx + tx, c + (y - c) * sy + ty); sx < 0 mirrors. */
export interface Transform {
  sx: number;
  sy: number;
  /** Shift in pixels of a `THUMB_SIZE` thumbnail. */
  tx: number;
  ty: number;
}

export interface Verdict {
  same: boolean;
  mirrored: boolean;
  /** Pearson correlation of the aligned, lightly blurred thumbnails (1 = identical up to intensity). */
  correlation: number;
  /** Worst 16x16-block residual after a per-block intensity fit, as a share of the image's variance. */
  worstBlock: number;
  transform: Transform;
  /** Correlation reached at each pyramid level tried (diagnostics). */
  levels: number[];
}

/** Decision thresholds, chosen by looking at SARTAJ pairs on both sides (see docs/audit.md). */
export const SAME_SCAN = {
  /** Least aligned correlation at 128 pixels (coarser levels have their own gates, see LEVELS). */
  correlation: 0.985,
  /**
   * Most any 16x16 block may leave unexplained at 128 pixels: a guard against a copy with one
   * region changed. Loose, because real copies can differ by a moved watermark (SARTAJ
   * `no_tumor/image (9)` and `image(214)` leave 0.43).
   */
  worstBlock: 0.5,
};

/** Largest scale change and shift the alignment search tries (as a share of the side). */
const MAX_SCALE_DELTA = 0.15;
const MAX_SHIFT = 1 / 12;

/** One image's comparison pyramid: 16, 32, 64 and (lazily) blurred 128 pixels per side. */
export class Pyramid {
  readonly p16: Float32Array;
  readonly p32: Float32Array;
  readonly p64: Float32Array;
  private fine?: Float32Array;

  constructor(readonly thumb: Uint8Array) {
    if (thumb.length !== THUMB_SIZE * THUMB_SIZE) throw new Error(`thumbnail must be ${THUMB_SIZE}^2 bytes`);
    this.p64 = downsample(thumb, THUMB_SIZE, 64);
    this.p32 = downsample(this.p64, 64, 32);
    this.p16 = downsample(this.p32, 32, 16);
  }

  /** Blurred by about one pixel so copies decoded from different resolutions share the same detail. */
  get p128(): Float32Array {
    this.fine ??= gaussianBlur(Float32Array.from(this.thumb), THUMB_SIZE, 1);
    return this.fine;
  }

  /** Frees the fine level (it is 64 KiB per image). */
  release(): void {
    this.fine = undefined;
  }
}

/**
 * Decides whether `b` (mirrored when `mirrored`) shows the same scan as `a`. Cheap levels reject
 * most candidates; only likely copies reach the full-resolution check.
 */
export function compare(a: Pyramid, b: Pyramid, mirrored: boolean): Verdict {
  let t: Transform = { sx: mirrored ? -1 : 1, sy: 1, tx: 0, ty: 0 };
  const levels: number[] = [];
  const last = LEVELS.length - 1;
  for (const [k, level] of LEVELS.entries()) {
    const r = align(level.pick(a), level.pick(b), level.size, t, level.schedule);
    t = r.t;
    levels.push(r.corr);
    if (k < last && r.corr < level.gate) {
      return {
        same: false,
        mirrored,
        correlation: r.corr,
        worstBlock: Number.POSITIVE_INFINITY,
        transform: t,
        levels,
      };
    }
  }
  const warped = new Float32Array(THUMB_SIZE * THUMB_SIZE);
  warp(b.p128, THUMB_SIZE, t, warped);
  const worstBlock = worstBlockResidual(a.p128, warped, THUMB_SIZE, 16);
  const correlation = levels[last];
  return {
    same: correlation >= SAME_SCAN.correlation && worstBlock <= SAME_SCAN.worstBlock,
    mirrored,
    correlation,
    worstBlock,
    transform: t,
    levels,
  };
}

/**
 * Coarse to fine: each level starts from the previous level's transform and rejects pairs that
 * cannot be copies, so most candidates cost a few hundred pixels per evaluation. Shift steps are in
 * 128-pixel units; the last level's gate is the final correlation threshold.
 */
const LEVELS: readonly {
  size: number;
  pick: (p: Pyramid) => Float32Array;
  schedule: readonly (readonly [scaleStep: number, shiftStepAt128: number])[];
  /** Least correlation to go on to the next level (the last level uses `SAME_SCAN.correlation`). */
  gate: number;
}[] = [
  // Most candidates are rejected after this first, coarsest pass.
  { size: 16, pick: (p) => p.p16, schedule: [[0.04, 4]], gate: 0.85 },
  { size: 16, pick: (p) => p.p16, schedule: [[0.02, 2]], gate: 0.9 },
  { size: 32, pick: (p) => p.p32, schedule: [[0.02, 1]], gate: 0.9 },
  {
    size: 64,
    pick: (p) => p.p64,
    schedule: [
      [0.01, 1],
      [0.005, 0.5],
    ],
    gate: 0.95,
  },
  {
    size: THUMB_SIZE,
    pick: (p) => p.p128,
    schedule: [
      [0.005, 0.5],
      [0.0025, 0.25],
    ],
    gate: 0,
  },
];

/** The coarse levels' gates, for cache keys: results depend on them. */
export const LEVEL_GATES = LEVELS.map((l) => l.gate);

/**
 * Greedy coordinate search over (sx, sy, tx, ty) maximising the correlation, one step size after
 * another. Copies are close to the identity after cropping, so a local search is enough and costs
 * a few dozen evaluations instead of a grid's thousands.
 */
export function align(
  a: Float32Array,
  b: Float32Array,
  size: number,
  start: Transform,
  schedule: readonly (readonly [scaleStep: number, shiftStepAt128: number])[],
): { t: Transform; corr: number } {
  // Transforms are expressed in 128-pixel units so levels hand them on unchanged.
  const unit = size / THUMB_SIZE;
  const maxShift = THUMB_SIZE * MAX_SHIFT;
  let t = { ...start };
  let best = warpedCorrelation(a, b, size, t, unit);
  for (const [scaleStep, shiftStep] of schedule) {
    for (let iteration = 0; iteration < 30; iteration++) {
      let moved = false;
      for (let axis = 0; axis < 4; axis++) {
        for (const sign of [-1, 1]) {
          const next = { ...t };
          if (axis === 0) next.sx += sign * scaleStep * Math.sign(t.sx);
          else if (axis === 1) next.sy += sign * scaleStep;
          else if (axis === 2) next.tx += sign * shiftStep;
          else next.ty += sign * shiftStep;
          if (
            Math.abs(Math.abs(next.sx) - 1) > MAX_SCALE_DELTA ||
            Math.abs(next.sy - 1) > MAX_SCALE_DELTA ||
            Math.abs(next.tx) > maxShift ||
            Math.abs(next.ty) > maxShift
          ) {
            continue;
          }
          const corr = warpedCorrelation(a, b, size, next, unit);
          if (corr > best + 1e-7) {
            best = corr;
            t = next;
            moved = true;
          }
        }
      }
      if (!moved) break;
    }
  }
  return { t, corr: best };
}

/** Pearson correlation of `a` with `b` resampled (bilinear) through `t`, over the overlap. */
function warpedCorrelation(
  a: Float32Array,
  b: Float32Array,
  size: number,
  t: Transform,
  unit: number,
): number {
  const c = (size - 1) / 2;
  const last = size - 1;
  let n = 0;
  let sa = 0;
  let sb = 0;
  let saa = 0;
  let sbb = 0;
  let sab = 0;
  for (let y = 0; y < size; y++) {
    const by = c + (y - c) * t.sy + t.ty * unit;
    if (by < 0 || by > last) continue;
    const y0 = by >= last ? last - 1 : by | 0;
    const fy = by - y0;
    const row = y * size;
    for (let x = 0; x < size; x++) {
      const bx = c + (x - c) * t.sx + t.tx * unit;
      if (bx < 0 || bx > last) continue;
      const x0 = bx >= last ? last - 1 : bx | 0;
      const fx = bx - x0;
      const i = y0 * size + x0;
      const top = b[i] + (b[i + 1] - b[i]) * fx;
      const bottom = b[i + size] + (b[i + size + 1] - b[i + size]) * fx;
      const q = top + (bottom - top) * fy;
      const p = a[row + x];
      n++;
      sa += p;
      sb += q;
      saa += p * p;
      sbb += q * q;
      sab += p * q;
    }
  }
  if (n < (size * size) / 2) return -1;
  const cov = sab - (sa * sb) / n;
  const va = saa - (sa * sa) / n;
  const vb = sbb - (sb * sb) / n;
  return va > 0 && vb > 0 ? cov / Math.sqrt(va * vb) : va === vb ? 1 : 0;
}

/** Resamples `b` through `t` into `out` (NaN outside the source). */
export function warp(b: Float32Array, size: number, t: Transform, out: Float32Array): void {
  const unit = size / THUMB_SIZE;
  const c = (size - 1) / 2;
  const last = size - 1;
  for (let y = 0; y < size; y++) {
    const by = c + (y - c) * t.sy + t.ty * unit;
    const y0 = by >= last ? last - 1 : Math.max(0, by | 0);
    const fy = by - y0;
    for (let x = 0; x < size; x++) {
      const bx = c + (x - c) * t.sx + t.tx * unit;
      if (by < 0 || by > last || bx < 0 || bx > last) {
        out[y * size + x] = Number.NaN;
        continue;
      }
      const x0 = bx >= last ? last - 1 : bx | 0;
      const fx = bx - x0;
      const i = y0 * size + x0;
      const top = b[i] + (b[i + 1] - b[i]) * fx;
      const bottom = b[i + size] + (b[i + size + 1] - b[i + size]) * fx;
      out[y * size + x] = top + (bottom - top) * fy;
    }
  }
}

/**
 * The largest residual of any block after fitting `a ~ gain * w + offset` inside that block,
 * relative to `a`'s overall variance. A re-encoded copy leaves only noise everywhere; a different
 * slice that correlates well overall still leaves whole blocks unexplained (a lesion, a ventricle).
 * A per-block fit tolerates re-windowed intensities.
 */
export function worstBlockResidual(a: Float32Array, w: Float32Array, size: number, block: number): number {
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(w[i])) continue;
    n++;
    sum += a[i];
    sumSq += a[i] * a[i];
  }
  const variance = n > 0 ? sumSq / n - (sum / n) ** 2 : 0;
  if (variance <= 0) return 0;
  let worst = 0;
  for (let by = 0; by < size; by += block) {
    for (let bx = 0; bx < size; bx += block) {
      let k = 0;
      let sa = 0;
      let sw = 0;
      let saa = 0;
      let sww = 0;
      let saw = 0;
      for (let y = by; y < by + block; y++) {
        for (let x = bx; x < bx + block; x++) {
          const q = w[y * size + x];
          if (Number.isNaN(q)) continue;
          const p = a[y * size + x];
          k++;
          sa += p;
          sw += q;
          saa += p * p;
          sww += q * q;
          saw += p * q;
        }
      }
      if (k < (block * block) / 2) continue;
      const caa = saa - (sa * sa) / k;
      const cww = sww - (sw * sw) / k;
      const caw = saw - (sa * sw) / k;
      // A negative gain would "explain" inverted structure; treat it as no fit at all.
      const residual = cww > 1e-6 && caw > 0 ? caa - (caw * caw) / cww : caa;
      worst = Math.max(worst, residual / (k * variance));
    }
  }
  return worst;
}

/** Box-filter downsampling by an integer factor. */
export function downsample(src: ArrayLike<number>, size: number, to: number): Float32Array {
  const f = size / to;
  const out = new Float32Array(to * to);
  const norm = 1 / (f * f);
  for (let y = 0; y < size; y++) {
    const row = ((y / f) | 0) * to;
    for (let x = 0; x < size; x++) out[row + ((x / f) | 0)] += src[y * size + x] * norm;
  }
  return out;
}

/** Separable Gaussian blur with clamped edges. */
export function gaussianBlur(src: Float32Array, size: number, sigma: number): Float32Array {
  const r = Math.ceil(sigma * 3);
  const kernel = new Float32Array(2 * r + 1);
  let total = 0;
  for (let i = -r; i <= r; i++) {
    kernel[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
    total += kernel[i + r];
  }
  for (let i = 0; i < kernel.length; i++) kernel[i] /= total;
  const tmp = new Float32Array(src.length);
  const out = new Float32Array(src.length);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let acc = 0;
      for (let i = -r; i <= r; i++)
        acc += src[y * size + Math.min(size - 1, Math.max(0, x + i))] * kernel[i + r];
      tmp[y * size + x] = acc;
    }
  }
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let acc = 0;
      for (let i = -r; i <= r; i++)
        acc += tmp[Math.min(size - 1, Math.max(0, y + i)) * size + x] * kernel[i + r];
      out[y * size + x] = acc;
    }
  }
  return out;
}
