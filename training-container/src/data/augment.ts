import type { Rng } from './rng.ts';

/** Random geometric augmentation applied to training batches only. */
export interface AugmentOptions {
  /** Maximum rotation either way, in degrees (the reference used random rotation). 0 disables. */
  rotationDeg: number;
  /** Mirror left-right with probability 1/2. */
  flip: boolean;
  /** Maximum relative zoom either way, e.g. 0.1 = scale in [0.9, 1.1]. */
  zoom: number;
  /** Maximum shift either way as a fraction of the image side. */
  shift: number;
}

export const NO_AUGMENTATION: AugmentOptions = { rotationDeg: 0, flip: false, zoom: 0, shift: 0 };

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
  if (angle === 0 && !flip && scale === 1 && tx === 0 && ty === 0) {
    for (let i = 0; i < src.length; i++) dst[offset + i] = src[i];
    return;
  }
  const c = (size - 1) / 2;
  const cos = Math.cos(angle) / scale;
  const sin = Math.sin(angle) / scale;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      // Output pixel -> source pixel: undo the shift, then the rotation and zoom about the centre.
      const dx = x - c - tx;
      const dy = y - c - ty;
      let sx = cos * dx + sin * dy + c;
      const sy = -sin * dx + cos * dy + c;
      if (flip) sx = size - 1 - sx;
      const o = offset + (y * size + x) * 3;
      sampleBilinear(src, size, sx, sy, dst, o);
    }
  }
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
