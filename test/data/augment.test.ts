import { describe, expect, it } from 'vitest';
import {
  type AugmentOptions,
  augmentInto,
  NO_AUGMENTATION,
} from '../../training-container/src/data/augment.ts';
import { createRng, type Rng } from '../../training-container/src/data/rng.ts';

const size = 32;
/** A grey disc ("head", value 100) with a bright spot (200) on black: MRI-like. */
function phantom(): Uint8Array {
  const img = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const r = Math.hypot(x - 15.5, y - 15.5);
      const v = r < 4 ? 200 : r < 12 ? 100 : 0;
      img.fill(v, (y * size + x) * 3, (y * size + x + 1) * 3);
    }
  }
  return img;
}

function run(options: Partial<AugmentOptions>, rng: Rng): Float32Array {
  const out = new Float32Array(size * size * 3);
  augmentInto(phantom(), size, out, 0, { ...NO_AUGMENTATION, ...options }, rng);
  return out;
}

const at = (img: Float32Array, x: number, y: number) => img[(y * size + x) * 3];
/**
 * Pins each random choice: four geometric draws that leave the image as it is (angle, scale,
 * shift x, shift y; no flip or stretch is asked for), then the given photometric ones.
 */
const fixed = (...values: number[]): Rng => {
  const all = [0.5, 0.5, 0.5, 0.5, ...values];
  let i = 0;
  return () => all[i++ % all.length];
};

describe('photometric augmentation', () => {
  it('applies the drawn gamma and keeps the black background black', () => {
    // Draws: gamma (1 -> g = e^0.5), contrast (0.5 -> k = 1), no low-res, no filter, no noise.
    const out = run({ gamma: 0.5 }, fixed(1, 0.5, 0.9, 0.5, 0.9, 0.5, 0));
    const g = Math.exp(0.5);
    expect(at(out, 16, 16)).toBeCloseTo(255 * (200 / 255) ** g, 3);
    expect(at(out, 16, 6)).toBeCloseTo(255 * (100 / 255) ** g, 3);
    expect(at(out, 0, 0)).toBe(0);
  });

  it('stretches contrast about the image mean and clips to [0, 255]', () => {
    const plain = phantom();
    let mean = 0;
    for (const v of plain) mean += v;
    mean /= plain.length;
    // contrast draw 1 -> k = 1 + 0.9
    const out = run({ contrast: 0.9 }, fixed(0.5, 1, 0.9, 0.5, 0.9, 0.5, 0));
    expect(at(out, 16, 6)).toBeCloseTo(Math.max(0, mean + (100 - mean) * 1.9), 3);
    expect(at(out, 16, 16)).toBe(255);
    expect(Math.min(...out)).toBeGreaterThanOrEqual(0);
  });

  it('lowers the resolution or blurs only when drawn, and the result differs from the source', () => {
    const source = Float32Array.from(phantom());
    const notDrawn = run({ degrade: 0.3 }, fixed(0.5, 0.5, 0.9, 0.5, 0.9, 0.5, 0));
    expect(Array.from(notDrawn)).toEqual(Array.from(source));
    const lowRes = run({ degrade: 0.3 }, fixed(0.5, 0.5, 0.1, 0, 0.9, 0.5, 0));
    const blurred = run({ degrade: 0.3 }, fixed(0.5, 0.5, 0.9, 0.5, 0.1, 0, 0));
    for (const img of [lowRes, blurred]) {
      // The sharp disc edge softens: an edge pixel takes a value between the two sides.
      const edge = at(img, 16, 4);
      expect(edge).toBeGreaterThan(0);
      expect(edge).toBeLessThan(100);
      // Mean intensity is roughly kept.
      const mean = (a: Float32Array) => a.reduce((s, v) => s + v, 0) / a.length;
      expect(mean(img)).toBeCloseTo(mean(source), -1);
    }
  });

  it('adds noise with about the drawn standard deviation', () => {
    const out = run({ noise: 10 }, createRng(3));
    const source = phantom();
    const diffs: number[] = [];
    // Inside the head, away from clipping.
    for (let y = 10; y < 22; y++)
      for (let x = 10; x < 22; x++) diffs.push(at(out, x, y) - source[(y * size + x) * 3]);
    const sd = Math.sqrt(diffs.reduce((s, d) => s + d * d, 0) / diffs.length);
    expect(sd).toBeGreaterThan(0.5);
    expect(sd).toBeLessThan(15);
    expect(at(out, 0, 0)).toBe(0);
  });

  it('remaps grey levels through the drawn knots, in any order, and keeps the background black', () => {
    // Draws: gamma 1, contrast 1, no low-res, no filter, no noise; remap drawn (0.1 < 0.5), then
    // the five knot values (levels 48, 96, 144, 192, 255; level 0 stays 0): descending, inverted.
    const knots = [1, 0.75, 0.5, 0.25, 0];
    const out = run({ remap: 0.5 }, fixed(0.5, 0.5, 0.9, 0.5, 0.9, 0.5, 0, 0.1, ...knots));
    const value = (u: number) => 24 + u * (255 - 24);
    const level = (v: number, a: number, b: number, ua: number, ub: number) =>
      value(ua) + ((value(ub) - value(ua)) * (v - a)) / (b - a);
    expect(at(out, 16, 6)).toBeCloseTo(level(100, 96, 144, 0.75, 0.5), 3); // head: 100 -> 192.4
    expect(at(out, 16, 16)).toBeCloseTo(level(200, 192, 255, 0.25, 0), 3); // spot: 200 -> 74.4
    expect(at(out, 16, 16)).toBeLessThan(at(out, 16, 6)); // the bright spot is now darker than the head
    expect(at(out, 0, 0)).toBe(0);
  });

  it('leaves the image as it is when the remap is not drawn, and draws nothing when it is off', () => {
    const source = Array.from(phantom());
    expect(Array.from(run({ remap: 0.5 }, fixed(0.5, 0.5, 0.9, 0.5, 0.9, 0.5, 0, 0.9)))).toEqual(source);
    // Off, it draws nothing: seeded runs from before the option keep their random sequence.
    const draws = (options: Partial<AugmentOptions>) => {
      let n = 0;
      run(options, () => {
        n++;
        return 0.5;
      });
      return n;
    };
    const before = draws({ gamma: 0.5 }); // 4 geometric + 7 photometric draws
    expect(before).toBe(11);
    expect(draws({ gamma: 0.5, remap: 0 })).toBe(before);
    expect(draws({ gamma: 0.5, remap: 0.25 })).toBe(before + 1); // 0.5 >= 0.25: not drawn, no knots
    expect(draws({ gamma: 0.5, remap: 1 })).toBe(before + 6); // drawn: five knot values
  });

  it('stretches the aspect ratio: the disc becomes wider than tall', () => {
    // Geometric draws: angle 0 (0.5), no flip (0.9), scale 1 (0.5), shift 0 (0.5, 0.5), aspect 1 + 0.3.
    const draws = [0.5, 0.9, 0.5, 0.5, 0.5, 1];
    const out = run(
      { stretch: 0.3, rotationDeg: 10, zoom: 0.1, shift: 0.1, flip: true },
      () => draws.shift() ?? 0.5,
    );
    const width = Array.from({ length: size }, (_, x) => at(out, x, 16)).filter((v) => v > 50).length;
    const height = Array.from({ length: size }, (_, y) => at(out, 16, y)).filter((v) => v > 50).length;
    expect(width).toBeGreaterThan(height + 4);
  });
});
