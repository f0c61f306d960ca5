import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeImages } from '../../training-container/src/data/decode.ts';
import { listImageFolder } from '../../training-container/src/data/image-folder.ts';
import {
  blackenBackground,
  foregroundThreshold,
  greyOf,
  headBox,
  ImageDecodeError,
  imageToRgb,
  PREPROCESS_V1,
  type PreprocessConfig,
  PreprocessConfigSchema,
  PreprocessOptionsSchema,
  pixelsToRgb,
  preprocessOptions,
} from '../../training-container/src/preprocess.ts';

const V2: PreprocessConfig = {
  imageSize: 32,
  version: 2,
  background: 'keep',
  crop: 'none',
  resize: 'stretch',
  intensity: 'raw',
  grey: false,
};
const v2 = (options: Partial<PreprocessConfig>): PreprocessConfig => ({ ...V2, ...options });

/** `width x height` RGB bytes, black, with `paint(x, y)` giving the pixel wherever it is defined. */
function canvas(
  width: number,
  height: number,
  paint: (x: number, y: number) => [number, number, number] | undefined,
): Buffer {
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const rgb = paint(x, y);
      if (rgb) px.set(rgb, (y * width + x) * 3);
    }
  }
  return px;
}

const png = (px: Buffer, width: number, height: number) =>
  sharp(px, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();

const inRect = (x: number, y: number, left: number, top: number, w: number, h: number) =>
  x >= left && x < left + w && y >= top && y < top + h;

/** Channel 0 of row `y` of a `size x size x 3` output. */
const row = (out: Float32Array, size: number, y: number) =>
  Array.from({ length: size }, (_, x) => out[(y * size + x) * 3]);

function stats(values: number[]): { mean: number; std: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) };
}

describe('version 1 (every model trained before the options)', () => {
  it('gives exactly the pixels of sharp fill/cubic resize, for a number, a v1 config and v2 with no options', async () => {
    const w = 40;
    const h = 20;
    const px = canvas(w, h, (x, y) => [x * 6, y * 12, (x * y) % 256]);
    for (const bytes of [
      await png(px, w, h),
      await sharp(px, { raw: { width: w, height: h, channels: 3 } })
        .jpeg()
        .toBuffer(),
    ]) {
      const direct = await sharp(bytes)
        .rotate()
        .flatten({ background: { r: 0, g: 0, b: 0 } })
        .toColourspace('srgb')
        .resize(32, 32, { fit: 'fill', kernel: 'cubic' })
        .removeAlpha()
        .raw()
        .toBuffer();
      const expected = Float32Array.from(direct);
      expect(await imageToRgb(bytes, 32)).toEqual(expected);
      expect(await imageToRgb(bytes, { imageSize: 32, ...PREPROCESS_V1 })).toEqual(expected);
      expect(await imageToRgb(bytes, V2)).toEqual(expected);
    }
    const pixels = Array.from(px);
    const direct = await sharp(px, { raw: { width: w, height: h, channels: 3 } })
      .resize(32, 32, { fit: 'fill', kernel: 'cubic' })
      .raw()
      .toBuffer();
    expect(await pixelsToRgb(pixels, [h, w, 3], 32)).toEqual(Float32Array.from(direct));
    expect(await pixelsToRgb(pixels, [h, w, 3], V2)).toEqual(Float32Array.from(direct));
  });

  it('refuses options under version 1, unknown versions and unknown keys', () => {
    expect(() => PreprocessConfigSchema.parse({ ...V2, version: 1, crop: 'head' })).toThrow(
      /version 1 takes no options/,
    );
    expect(() => PreprocessOptionsSchema.parse({ version: 3 })).toThrow();
    expect(() => PreprocessOptionsSchema.parse({ version: 2, equalize: true })).toThrow();
    expect(PreprocessOptionsSchema.parse({ version: 2, crop: 'head' })).toEqual({
      version: 2,
      background: 'keep',
      crop: 'head',
      resize: 'stretch',
      intensity: 'raw',
      grey: false,
    });
  });

  it('records version 1 for a job without options and version 2 otherwise', () => {
    const none = { crop: 'none', resize: 'stretch', intensity: 'raw', grey: false } as const;
    expect(preprocessOptions(none)).toEqual(PREPROCESS_V1);
    expect(preprocessOptions({ ...none, grey: true })).toEqual({ ...PREPROCESS_V1, version: 2, grey: true });
    expect(preprocessOptions({ ...none, resize: 'pad' }).version).toBe(2);
  });
});

describe('crop: head', () => {
  // 100 x 80, head 40 x 30 at (30, 20); a speck at (5, 5) and a 6 x 2 "text label" at (90, 75).
  const W = 100;
  const H = 80;
  const paint = (x: number, y: number): [number, number, number] | undefined =>
    inRect(x, y, 30, 20, 40, 30) || (x === 5 && y === 5) || inRect(x, y, 90, 75, 6, 2)
      ? [200, 200, 200]
      : undefined;

  it('finds the bounding box plus a 2% margin, ignoring specks and a text label', () => {
    const grey = greyOf(canvas(W, H, paint));
    // Margin: 2% of the head's extent, round(0.02 * 40) = 1 column and round(0.02 * 30) = 1 row.
    expect(headBox(grey, W, H)).toEqual({ left: 29, top: 19, width: 42, height: 32 });
    // A bigger head gets a bigger margin: 100 x 50 at (10, 20) in 120 x 80 -> 2 columns, 1 row.
    const big = greyOf(canvas(120, 80, (x, y) => (inRect(x, y, 10, 20, 100, 50) ? [90, 90, 90] : undefined)));
    expect(headBox(big, 120, 80)).toEqual({ left: 8, top: 19, width: 104, height: 52 });
  });

  it('keeps the whole image when there is no foreground (black, or only JPEG-level noise)', () => {
    expect(headBox(new Uint8Array(W * H), W, H)).toEqual({ left: 0, top: 0, width: W, height: H });
    const noise = Uint8Array.from({ length: W * H }, (_, i) => (i * 7) % 10);
    expect(foregroundThreshold(noise)).toBe(10);
    expect(headBox(noise, W, H)).toEqual({ left: 0, top: 0, width: W, height: H });
  });

  it('makes the head fill the frame whatever its framing in the source', async () => {
    const bytes = await png(canvas(W, H, paint), W, H);
    const brightShare = (out: Float32Array) => {
      let n = 0;
      for (let i = 0; i < out.length; i += 3) if (out[i] > 100) n++;
      return n / (out.length / 3);
    };
    const uncropped = await imageToRgb(bytes, 32);
    const cropped = await imageToRgb(bytes, v2({ crop: 'head' }));
    expect(brightShare(uncropped)).toBeLessThan(0.2);
    expect(brightShare(cropped)).toBeGreaterThan(0.8);
    // Same head, framed tighter in another source: about the same input after cropping.
    const tight = await png(
      canvas(60, 46, (x, y) => (inRect(x, y, 10, 8, 40, 30) ? [200, 200, 200] : undefined)),
      60,
      46,
    );
    const croppedTight = await imageToRgb(tight, v2({ crop: 'head' }));
    let diff = 0;
    for (let i = 0; i < cropped.length; i++) diff += Math.abs(cropped[i] - croppedTight[i]);
    expect(diff / cropped.length).toBeLessThan(8);
  });
});

describe('resize: pad', () => {
  it('centres a 64 x 32 image on a black square: 16 black rows above and below, nothing stretched', async () => {
    const bytes = await png(
      canvas(64, 32, () => [200, 200, 200]),
      64,
      32,
    );
    const out = await imageToRgb(bytes, v2({ imageSize: 64, resize: 'pad' }));
    for (let y = 0; y < 64; y++) {
      const expected = y >= 16 && y < 48 ? 200 : 0;
      expect(row(out, 64, y), `row ${y}`).toEqual(new Array(64).fill(expected));
    }
    const stretched = await imageToRgb(bytes, v2({ imageSize: 64 }));
    expect(row(stretched, 64, 0)).toEqual(new Array(64).fill(200));
  });

  it('keeps the aspect ratio when it also downsizes (200 x 100 -> bands of 8 of 32 rows)', async () => {
    const bytes = await png(
      canvas(200, 100, () => [200, 200, 200]),
      200,
      100,
    );
    const out = await imageToRgb(bytes, v2({ resize: 'pad' }));
    for (const y of [0, 5, 26, 31]) expect(Math.max(...row(out, 32, y)), `row ${y}`).toBe(0);
    for (const y of [10, 16, 21]) expect(Math.min(...row(out, 32, y)), `row ${y}`).toBeGreaterThan(190);
    // A tall image pads left and right.
    const tall = await pixelsToRgb(
      Array.from(canvas(10, 20, () => [90, 90, 90])),
      [20, 10, 3],
      v2({ resize: 'pad' }),
    );
    expect(row(tall, 32, 16).slice(0, 6)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(row(tall, 32, 16)[16]).toBe(90);
  });
});

describe('intensity: standardize', () => {
  /** A disc on black whose intensity runs from lo to hi left to right. */
  const disc = (lo: number, hi: number) =>
    canvas(96, 96, (x, y) => {
      if (Math.hypot(x - 48, y - 48) > 36) return undefined;
      const v = Math.round(lo + ((hi - lo) * (x - 12)) / 72);
      return [v, v, v];
    });

  it('maps the foreground to mean 128 and std 48 and keeps the background black', async () => {
    const bytes = await png(disc(60, 200), 96, 96);
    const raw = await imageToRgb(bytes, 48);
    const out = await imageToRgb(bytes, v2({ imageSize: 48, intensity: 'standardize' }));
    const grey = greyOf(Uint8Array.from(raw));
    const threshold = foregroundThreshold(grey);
    const foreground: number[] = [];
    grey.forEach((g, p) => {
      if (g > threshold) foreground.push(out[p * 3], out[p * 3 + 1], out[p * 3 + 2]);
    });
    expect(foreground.length).toBeGreaterThan(1000);
    const { mean, std } = stats(foreground);
    expect(mean).toBeCloseTo(128, 0);
    expect(std).toBeGreaterThan(47);
    expect(std).toBeLessThan(49);
    expect(out.every(Number.isInteger)).toBe(true);
    expect([out[0], out[47 * 3], out[out.length - 1]]).toEqual([0, 0, 0]);
    // The raw image's own statistics are far from these.
    expect(
      Math.abs(stats(Array.from(raw).filter((_, i) => grey[Math.floor(i / 3)] > threshold)).mean - 128),
    ).toBeGreaterThan(1);
  });

  it('removes a source difference in brightness and contrast', async () => {
    const a = await imageToRgb(
      await png(disc(60, 200), 96, 96),
      v2({ imageSize: 48, intensity: 'standardize' }),
    );
    const b = await imageToRgb(
      await png(disc(40, 110), 96, 96),
      v2({ imageSize: 48, intensity: 'standardize' }),
    );
    const rawA = await imageToRgb(await png(disc(60, 200), 96, 96), 48);
    const rawB = await imageToRgb(await png(disc(40, 110), 96, 96), 48);
    const meanAbs = (x: Float32Array, y: Float32Array) =>
      x.reduce((s, v, i) => s + Math.abs(v - y[i]), 0) / x.length;
    expect(meanAbs(rawA, rawB)).toBeGreaterThan(20);
    expect(meanAbs(a, b)).toBeLessThan(3);
  });

  it('leaves an all-black image black', async () => {
    const bytes = await png(
      canvas(20, 20, () => undefined),
      20,
      20,
    );
    expect(
      (await imageToRgb(bytes, v2({ intensity: 'standardize', crop: 'head' }))).every((v) => v === 0),
    ).toBe(true);
  });
});

describe('intensity: equalize', () => {
  it('flattens the foreground histogram to known levels and keeps the background black', async () => {
    // Black left quarter; then three equal bands of 60, 61 and 200: the equalised bands are
    // 32 + 223 * 1/3, 2/3 and 3/3 whatever their raw levels.
    const bands = canvas(48, 48, (x) =>
      x < 12 ? undefined : x < 24 ? [60, 60, 60] : x < 36 ? [61, 61, 61] : [200, 200, 200],
    );
    const out = await pixelsToRgb(
      Array.from(bands),
      [48, 48, 3],
      v2({ imageSize: 48, intensity: 'equalize' }),
    );
    expect([row(out, 48, 20)[0], row(out, 48, 20)[18], row(out, 48, 20)[30], row(out, 48, 20)[42]]).toEqual([
      0,
      Math.round(32 + 223 / 3),
      Math.round(32 + (223 * 2) / 3),
      255,
    ]);
  });

  it('gives two sources with different histograms of the same ranks the same pixels', async () => {
    /** A disc on black whose intensity follows `curve` from left (t = 0) to right (t = 1). */
    const disc = (curve: (t: number) => number) =>
      png(
        canvas(96, 96, (x, y) => {
          if (Math.hypot(x - 48, y - 48) > 36) return undefined;
          const v = Math.round(curve((x - 12) / 72));
          return [v, v, v];
        }),
        96,
        96,
      );
    const dimLinear = await disc((t) => 40 + 100 * t);
    const brightGamma = await disc((t) => 60 + 190 * t ** 2.2); // same order of intensities
    const both = async (intensity: PreprocessConfig['intensity']) => {
      const config = v2({ imageSize: 48, intensity });
      return [await imageToRgb(dimLinear, config), await imageToRgb(brightGamma, config)] as const;
    };
    const meanAbs = ([x, y]: readonly [Float32Array, Float32Array]) =>
      x.reduce((s, v, i) => s + Math.abs(v - y[i]), 0) / x.length;
    const [raw, standardized, equalized] = [
      await both('raw'),
      await both('standardize'),
      await both('equalize'),
    ];
    // Standardising removes mean and spread but not the gamma curve's shape; equalising removes both.
    expect(meanAbs(raw)).toBeGreaterThan(8);
    expect(meanAbs(standardized)).toBeGreaterThan(4);
    expect(meanAbs(equalized)).toBeLessThan(2);
    expect(equalized[0].every(Number.isInteger)).toBe(true);
    expect([equalized[0][0], equalized[1][equalized[1].length - 1]]).toEqual([0, 0]);
  });

  it('is recorded as version 2 and refused in version 1', () => {
    expect(
      preprocessOptions({ crop: 'none', resize: 'stretch', intensity: 'equalize', grey: false }).version,
    ).toBe(2);
    expect(PreprocessOptionsSchema.safeParse({ ...PREPROCESS_V1, intensity: 'equalize' }).success).toBe(
      false,
    );
  });
});

describe('background: border', () => {
  // A 60 x 50 "figure": a head (bright skull ring around a mid-grey brain) on a flat background.
  const W = 60;
  const H = 50;
  const head = (x: number, y: number): [number, number, number] | undefined => {
    const r = Math.hypot((x - 30) / 20, (y - 25) / 16);
    if (r > 1) return undefined;
    return r > 0.85 ? [230, 230, 230] : [110, 110, 110];
  };
  const onBackground = (level: number, frame = false) =>
    canvas(W, H, (x, y) => {
      // A 2-pixel white rule with a black hairline outside it, as on a printed figure.
      const edge = Math.min(x, y, W - 1 - x, H - 1 - y);
      if (frame && edge === 0) return [0, 0, 0];
      if (frame && edge <= 2) return [250, 250, 250];
      return head(x, y) ?? [level, level, level];
    });
  const asImage = (px: Buffer) => ({ data: new Uint8Array(px), width: W, height: H });

  it('turns a flat grey or white background black and leaves the head as it was', () => {
    for (const level of [60, 140, 255]) {
      const out = blackenBackground(asImage(onBackground(level)));
      const expected = canvas(W, H, head);
      expect(Buffer.from(out.data).equals(expected), `background ${level}`).toBe(true);
    }
  });

  it('takes off a white frame with a black hairline first', () => {
    const out = blackenBackground(asImage(onBackground(140, true)));
    expect(Buffer.from(out.data).equals(canvas(W, H, head))).toBe(true);
  });

  it('leaves a black background, a dark one and a textured edge unchanged (the same object)', () => {
    for (const px of [
      onBackground(0),
      onBackground(20),
      // The head cut by the frame: the edge is brain texture, not a background.
      canvas(W, H, (x, y) => {
        const v = 60 + ((x * 7 + y * 13) % 120);
        return [v, v, v];
      }),
    ]) {
      const image = asImage(px);
      expect(blackenBackground(image)).toBe(image);
    }
  });

  it('lets the head crop and the standardisation see a grey-background figure as a black-background one', async () => {
    const config = v2({
      imageSize: 40,
      background: 'border',
      crop: 'head',
      resize: 'pad',
      intensity: 'standardize',
    });
    const figure = await imageToRgb(await png(onBackground(140, true), W, H), config);
    const scan = await imageToRgb(await png(canvas(W, H, head), W, H), config);
    expect(figure).toEqual(scan);
    // Without it, the grey background is cropped with the head and standardised as foreground.
    const kept = await imageToRgb(await png(onBackground(140, true), W, H), {
      ...config,
      background: 'keep',
    });
    expect(kept).not.toEqual(scan);
  });

  it('is recorded as version 2; a preprocessing.json written before it means keep', () => {
    expect(
      preprocessOptions({
        background: 'border',
        crop: 'none',
        resize: 'stretch',
        intensity: 'raw',
        grey: false,
      }).version,
    ).toBe(2);
    expect(PreprocessOptionsSchema.safeParse({ ...PREPROCESS_V1, background: 'border' }).success).toBe(false);
    const { background: _, ...before } = { ...V2, crop: 'head' as const };
    expect(PreprocessConfigSchema.parse(before).background).toBe('keep');
  });
});

describe('grey', () => {
  it('replicates the mean of R, G and B into all three channels', async () => {
    const w = 48;
    const h = 40;
    const bytes = await png(
      canvas(w, h, (x, y) => [x * 5, 255 - y * 6, 60]),
      w,
      h,
    );
    const colour = await imageToRgb(bytes, 32);
    const grey = await imageToRgb(bytes, v2({ grey: true }));
    let coloured = 0;
    for (let i = 0; i < grey.length; i += 3) {
      if (colour[i] !== colour[i + 1]) coloured++;
      const mean = Math.round((colour[i] + colour[i + 1] + colour[i + 2]) / 3);
      expect([grey[i], grey[i + 1], grey[i + 2]]).toEqual([mean, mean, mean]);
    }
    expect(coloured).toBeGreaterThan(100);
  });
});

describe('every option together', () => {
  it('gives size x size x 3 whole numbers in [0, 255] and keeps the decode errors', async () => {
    const bytes = await sharp(
      canvas(120, 90, (x, y) => (Math.hypot(x - 70, y - 40) < 30 ? [x * 2, y * 2, 150] : undefined)),
      { raw: { width: 120, height: 90, channels: 3 } },
    )
      .jpeg()
      .toBuffer();
    const config = v2({ imageSize: 40, crop: 'head', resize: 'pad', intensity: 'standardize', grey: true });
    const out = await imageToRgb(bytes, config);
    expect(out).toHaveLength(40 * 40 * 3);
    expect(out.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)).toBe(true);
    await expect(imageToRgb(Buffer.from('not an image'), config)).rejects.toMatchObject({
      name: 'ImageDecodeError',
      code: 'UNDECODABLE',
    });
    await expect(imageToRgb(new Uint8Array(0), config)).rejects.toBeInstanceOf(ImageDecodeError);
    await expect(pixelsToRgb([1, 2], [1, 1, 3], config)).rejects.toMatchObject({ code: 'BAD_PIXELS' });
  });

  it('reach the uint8 decode cache through decodeImages', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'bt-preprocess-'));
    try {
      await mkdir(path.join(root, 'glioma'));
      const bytes = await png(
        canvas(30, 20, (x) => [x * 8, 40, 200]),
        30,
        20,
      );
      await writeFile(path.join(root, 'glioma', 'a.png'), bytes);
      const folder = await listImageFolder(root);
      const preprocessing = { ...PREPROCESS_V1, version: 2 as const, grey: true, resize: 'pad' as const };
      const set = await decodeImages(folder.files, { imageSize: 24, preprocessing });
      expect(set.pixels).toEqual(
        Uint8Array.from(await imageToRgb(bytes, { imageSize: 24, ...preprocessing })),
      );
      expect(set.pixels[0]).toBe(0); // padding
      const v1 = await decodeImages(folder.files, { imageSize: 24 });
      expect(v1.pixels).toEqual(Uint8Array.from(await imageToRgb(bytes, 24)));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
