import type { Rng } from './rng.ts';

/**
 * Random augmentation of training batches: geometric (rotation, flip, zoom, shift, aspect) and
 * photometric (gamma, contrast, resolution, blur/sharpen, noise). The photometric part exists
 * because SARTAJ's classes come from different scanners and archives: without it a model learns
 * the source's sharpness, contrast and resolution instead of the anatomy (docs/training.md).
 */
export interface AugmentOptions {
  /** Maximum rotation either way, in degrees (the reference used random rotation). 0 disables. */
  rotationDeg: number;
  /** Mirror left-right with probability 1/2. */
  flip: boolean;
  /** Maximum relative zoom either way, e.g. 0.1 = scale in [0.9, 1.1]. */
  zoom: number;
  /** Maximum shift either way as a fraction of the image side. */
  shift: number;
  /** Maximum aspect change: x and y scales differ by a factor up to (1 + stretch)^2. */
  stretch?: number;
  /** Maximum |log gamma|: intensities v -> 255 (v / 255)^g with g in [e^-gamma, e^gamma]. */
  gamma?: number;
  /** Maximum relative contrast change about the image mean, e.g. 0.3 = [0.7, 1.3]. */
  contrast?: number;
  /** Probability of each of: down-then-up sampling (lower resolution), and blur-or-sharpen. */
  degrade?: number;
  /** Maximum standard deviation of added Gaussian noise, in grey levels. */
  noise?: number;
  /**
   * Probability of replacing the foreground's grey levels by a random curve through five drawn knots
   * whose values may come in any order, so a bright lesion can turn dark: the look of another MRI
   * contrast (FLAIR, T2) or of CT, which Testing's unseen sources are and Training never shows.
   */
  remap?: number;
}

export const NO_AUGMENTATION: AugmentOptions = { rotationDeg: 0, flip: false, zoom: 0, shift: 0 };

/** True when any photometric option is on. */
function photometric(o: AugmentOptions): boolean {
  return (
    (o.gamma ?? 0) > 0 ||
    (o.contrast ?? 0) > 0 ||
    (o.degrade ?? 0) > 0 ||
    (o.noise ?? 0) > 0 ||
    (o.remap ?? 0) > 0
  );
}

/**
 * Writes one augmented `size x size x 3` image from uint8 `src` into float `dst` at `offset`.
 * One inverse affine map with bilinear sampling; outside the source is black, like the MRI
 * background. Plain loops: about 28k pixels at 96 px, negligible next to a training step.
 */
export function augmentInto(
  src: Uint8Array,
  size: number,
  dst: Float32Array,
  offset: number,
  options: AugmentOptions,
  rng: Rng,
): void {
  const angle = ((rng() * 2 - 1) * options.rotationDeg * Math.PI) / 180;
  const flip = options.flip && rng() < 0.5;
  const scale = 1 + (rng() * 2 - 1) * options.zoom;
  const tx = (rng() * 2 - 1) * options.shift * size;
  const ty = (rng() * 2 - 1) * options.shift * size;
  const aspect = options.stretch ? 1 + (rng() * 2 - 1) * options.stretch : 1;
  if (angle === 0 && !flip && scale === 1 && tx === 0 && ty === 0 && aspect === 1) {
    for (let i = 0; i < src.length; i++) dst[offset + i] = src[i];
  } else {
    const c = (size - 1) / 2;
    // Inverse map: output -> source. Zoom x by scale * aspect and y by scale / aspect.
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    const ix = 1 / (scale * aspect);
    const iy = aspect / scale;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        // Output pixel -> source pixel: undo the shift, then the rotation and zoom about the centre.
        const dx = (x - c - tx) * ix;
        const dy = (y - c - ty) * iy;
        let sx = cos * dx + sin * dy + c;
        const sy = -sin * dx + cos * dy + c;
        if (flip) sx = size - 1 - sx;
        const o = offset + (y * size + x) * 3;
        sampleBilinear(src, size, sx, sy, dst, o);
      }
    }
  }
  if (photometric(options)) photometricInPlace(dst, offset, size, options, rng);
}

/**
 * A random intensity curve (with probability `remap`), gamma and contrast, then (each with
 * probability `degrade`) a lower resolution and a blur or sharpen, then noise; clipped to [0, 255].
 * Black background stays black under the curves, and noise is added to every pixel that is not
 * pure black, background included.
 */
function photometricInPlace(
  dst: Float32Array,
  offset: number,
  size: number,
  o: AugmentOptions,
  rng: Rng,
): void {
  const n = size * size * 3;
  const img = dst.subarray(offset, offset + n);
  const g = Math.exp((rng() * 2 - 1) * (o.gamma ?? 0));
  const k = 1 + (rng() * 2 - 1) * (o.contrast ?? 0);
  const lowRes = rng() < (o.degrade ?? 0);
  const lowFactor = 0.35 + 0.45 * rng();
  const filter = rng() < (o.degrade ?? 0);
  const amount = (rng() * 2 - 1) * 1.0; // < 0 blur, > 0 sharpen
  const sigma = rng() * (o.noise ?? 0);
  // Drawn last and only when asked for, so runs without it keep their random sequence.
  const knots = (o.remap ?? 0) > 0 && rng() < (o.remap ?? 0) ? randomKnots(rng) : undefined;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += img[i];
  mean /= n;
  // A table instead of a pow() per value: the gamma curve was 60 % of a batch's augmentation time.
  const curve = intensityCurve(g, knots);
  // Contrast turns about where the curve takes the mean.
  const gm = knots ? readCurve(curve, mean) : 255 * (mean / 255) ** g;
  for (let i = 0; i < n; i++) {
    const v = img[i];
    if (v <= 0) continue;
    img[i] = gm + (readCurve(curve, v) - gm) * k;
  }
  if (lowRes) resample(img, size, Math.max(8, Math.round(size * lowFactor)));
  if (filter) blurOrSharpen(img, size, amount);
  for (let i = 0; i < n; i += 3) {
    const noisy = sigma > 0 && img[i] + img[i + 1] + img[i + 2] > 0;
    // Sum of three uniforms, scaled to unit variance: close enough to Gaussian, a third of the cost.
    const e = noisy ? sigma * 2 * (rng() + rng() + rng() - 1.5) : 0;
    for (let c = 0; c < 3; c++) {
      const v = img[i + c] + e;
      img[i + c] = Math.min(Math.max(v, 0), 255);
    }
  }
}

/** Box-averages down to `low x low`, then bilinearly back up: the look of a lower-resolution scan. */
function resample(img: Float32Array, size: number, low: number): void {
  const small = new Float32Array(low * low * 3);
  const cell = size / low;
  for (let y = 0; y < low; y++) {
    const y0 = Math.floor(y * cell);
    const y1 = Math.max(y0 + 1, Math.floor((y + 1) * cell));
    for (let x = 0; x < low; x++) {
      const x0 = Math.floor(x * cell);
      const x1 = Math.max(x0 + 1, Math.floor((x + 1) * cell));
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let yy = y0; yy < y1; yy++)
          for (let xx = x0; xx < x1; xx++) sum += img[(yy * size + xx) * 3 + c];
        small[(y * low + x) * 3 + c] = sum / ((y1 - y0) * (x1 - x0));
      }
    }
  }
  const scale = low / size;
  for (let y = 0; y < size; y++) {
    const sy = Math.min(low - 1, Math.max(0, (y + 0.5) * scale - 0.5));
    const ya = Math.floor(sy);
    const yb = Math.min(low - 1, ya + 1);
    const fy = sy - ya;
    for (let x = 0; x < size; x++) {
      const sx = Math.min(low - 1, Math.max(0, (x + 0.5) * scale - 0.5));
      const xa = Math.floor(sx);
      const xb = Math.min(low - 1, xa + 1);
      const fx = sx - xa;
      for (let c = 0; c < 3; c++) {
        const top = small[(ya * low + xa) * 3 + c] * (1 - fx) + small[(ya * low + xb) * 3 + c] * fx;
        const bottom = small[(yb * low + xa) * 3 + c] * (1 - fx) + small[(yb * low + xb) * 3 + c] * fx;
        img[(y * size + x) * 3 + c] = top * (1 - fy) + bottom * fy;
      }
    }
  }
}

/** out = img + amount * (img - blur3x3(img)): amount -1 is a plain 3x3 blur, > 0 sharpens. */
function blurOrSharpen(img: Float32Array, size: number, amount: number): void {
  // [1 2 1] / 4 along rows, then along columns; at the border the missing tap repeats the edge.
  const row = new Float32Array(img.length);
  const stride = size * 3;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = y * stride + x * 3;
      const l = x > 0 ? i - 3 : i;
      const r = x < size - 1 ? i + 3 : i;
      for (let c = 0; c < 3; c++) row[i + c] = (img[l + c] + 2 * img[i + c] + img[r + c]) / 4;
    }
  }
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = y * stride + x * 3;
      const u = y > 0 ? i - stride : i;
      const d = y < size - 1 ? i + stride : i;
      for (let c = 0; c < 3; c++) {
        const blurred = (row[u + c] + 2 * row[i + c] + row[d + c]) / 4;
        img[i + c] += amount * (img[i + c] - blurred);
      }
    }
  }
}

const CURVE_STEPS_PER_LEVEL = 4;
const CURVE_SIZE = 255 * CURVE_STEPS_PER_LEVEL + 2;

/**
 * Grey levels of the remap curve's knots. The first is pinned at 0, so black stays black and the
 * dark surround inside the head crop (levels 1-24) stays below half the first drawn knot; the other
 * five values are drawn.
 */
const KNOT_LEVELS = [0, 48, 96, 144, 192, 255];
/** The lowest value a drawn knot takes: the head stays apart from the black background. */
const KNOT_MIN = 24;

function randomKnots(rng: Rng): number[] {
  return KNOT_LEVELS.map((_, k) => (k === 0 ? 0 : KNOT_MIN + rng() * (255 - KNOT_MIN)));
}

/** The remap curve at level `v` in [0, 255]: linear between knots. */
function remapLevel(v: number, knots: readonly number[]): number {
  let s = 1;
  while (s < KNOT_LEVELS.length - 1 && v > KNOT_LEVELS[s]) s++;
  const [a, b] = [KNOT_LEVELS[s - 1], KNOT_LEVELS[s]];
  return knots[s - 1] + ((knots[s] - knots[s - 1]) * (v - a)) / (b - a);
}

/** 255 (r(v) / 255)^g sampled every quarter grey level, r the remap curve or the identity. */
function intensityCurve(g: number, knots?: readonly number[]): Float32Array {
  const curve = new Float32Array(CURVE_SIZE);
  for (let j = 0; j < CURVE_SIZE; j++) {
    const v = Math.min(j / CURVE_STEPS_PER_LEVEL, 255);
    curve[j] = 255 * ((knots ? remapLevel(v, knots) : v) / 255) ** g;
  }
  return curve;
}

/** The curve at grey level `v`, by linear interpolation between its samples. */
function readCurve(curve: Float32Array, v: number): number {
  const t = v * CURVE_STEPS_PER_LEVEL;
  const j = Math.min(Math.floor(t), CURVE_SIZE - 2);
  return curve[j] + (curve[j + 1] - curve[j]) * (t - j);
}

function sampleBilinear(src: Uint8Array, size: number, sx: number, sy: number, dst: Float32Array, o: number) {
  const x0 = Math.floor(sx);
  const y0 = Math.floor(sy);
  const fx = sx - x0;
  const fy = sy - y0;
  let r = 0;
  let g = 0;
  let b = 0;
  for (let k = 0; k < 4; k++) {
    const xi = x0 + (k & 1);
    const yi = y0 + (k >> 1);
    if (xi < 0 || yi < 0 || xi >= size || yi >= size) continue;
    const w = (k & 1 ? fx : 1 - fx) * (k >> 1 ? fy : 1 - fy);
    const s = (yi * size + xi) * 3;
    r += w * src[s];
    g += w * src[s + 1];
    b += w * src[s + 2];
  }
  dst[o] = r;
  dst[o + 1] = g;
  dst[o + 2] = b;
}
