import sharp from 'sharp';
import { mulberry32 } from '../../training-container/src/audit/split.ts';

/**
 * Synthetic "MRI slices" for audit tests: a head (bright skull ring around textured tissue) with
 * random blobs (ventricles, a lesion) that make each slice asymmetric, so a mirrored copy differs
 * from its original in the plain orientation.
 */
export interface SliceSpec {
  /** Head shape, texture and blob layout. */
  seed: number;
  /**
   * A neighbouring slice of the same head: blobs move by up to this many pixels and change
   * strength, and the tissue texture shifts with them. 0 (default) is the slice itself.
   */
  drift?: number;
}

interface Blob {
  x: number;
  y: number;
  sigma: number;
  amplitude: number;
}

export async function syntheticSlice(spec: SliceSpec, size = 256): Promise<Buffer> {
  const random = mulberry32(spec.seed);
  const cx = size * (0.48 + random() * 0.04);
  const cy = size * (0.48 + random() * 0.04);
  const rx = size * (0.36 + random() * 0.06);
  const ry = size * (0.42 + random() * 0.05);
  const waves = Array.from({ length: 4 }, () => ({
    fx: 0.05 + random() * 0.15,
    fy: 0.05 + random() * 0.15,
    phase: random() * Math.PI * 2,
    amplitude: 8 + random() * 10,
  }));
  const blobs: Blob[] = Array.from({ length: 6 }, () => {
    const angle = random() * Math.PI * 2;
    const r = random() * 0.75;
    return {
      x: cx + Math.cos(angle) * r * rx,
      y: cy + Math.sin(angle) * r * ry,
      sigma: 8 + random() * 14,
      amplitude: (random() < 0.5 ? -1 : 1) * (50 + random() * 40),
    };
  });
  const drift = spec.drift ?? 0;
  if (drift) {
    const move = mulberry32(spec.seed + 1000);
    for (const b of blobs) {
      b.x += (move() - 0.5) * 2 * drift;
      b.y += (move() - 0.5) * 2 * drift;
      b.amplitude *= 0.6 + move() * 0.8;
    }
    for (const w of waves) w.phase += drift * 0.05;
  }
  const pixels = Buffer.alloc(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const d = Math.hypot((x - cx) / rx, (y - cy) / ry);
      let v = 0;
      if (d < 0.9) {
        v = 95;
        for (const w of waves) v += w.amplitude * Math.sin(w.fx * x + w.fy * y + w.phase);
        for (const b of blobs)
          v += b.amplitude * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.sigma ** 2));
      } else if (d < 1) {
        v = 210;
      }
      pixels[y * size + x] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return sharp(pixels, { raw: { width: size, height: size, channels: 1 } })
    .jpeg({ quality: 95 })
    .toBuffer();
}
