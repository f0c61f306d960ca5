import sharp, { type Sharp } from 'sharp';
import { z } from 'zod';

/**
 * The one preprocessing path shared by the trainer, the evaluator and the server, so a model
 * sees exactly the same pixels in training and in production.
 *
 * Output: `size x size x 3` RGB values in [0, 255] as float32, HWC order, whole numbers (the
 * trainer caches them as uint8). No normalisation: EfficientNet rescales internally (as Keras'
 * `efficientnet.py` does), so callers never scale.
 *
 * Versions (recorded in the model artifact's preprocessing.json, so a model is always fed as it
 * was trained):
 * - 1: decode, EXIF rotation, alpha onto black, sRGB, stretch to a square with a cubic kernel.
 *   Every model trained before the options existed; it takes no options.
 * - 2: the same plus source-invariant options, each independently switchable (issue 12: SARTAJ's
 *   sources differ in head framing, black-background share, contrast and aspect ratio, which a
 *   model can learn instead of the tumour). Applied in this order: `background` (`border`: a flat
 *   grey or white background, and a figure's frame, turned black), `crop` (`head`: to the head's
 *   bounding box), `resize` (`pad`: to a black-padded centred square before resizing, keeping the
 *   aspect ratio; `stretch`: as version 1), `grey` (one grey channel, the mean of R, G and B,
 *   replicated into all three), `intensity` (`standardize`: foreground mean 128 and standard
 *   deviation 48; `equalize`: the foreground's histogram flattened over [32, 255]; black stays black
 *   in both). Version 2 with every option off gives version 1's pixels. `equalize` came later
 *   within version 2, and so did `background`: a model recorded without them reads and preprocesses
 *   exactly as before.
 */
const optionsShape = {
  version: z.union([z.literal(1), z.literal(2)]),
  background: z.enum(['keep', 'border']).default('keep'),
  crop: z.enum(['none', 'head']).default('none'),
  resize: z.enum(['stretch', 'pad']).default('stretch'),
  intensity: z.enum(['raw', 'standardize', 'equalize']).default('raw'),
  grey: z.boolean().default(false),
};

type OptionFields = { [K in keyof typeof optionsShape]: z.output<(typeof optionsShape)[K]> };

function hasNoOptions(o: Omit<OptionFields, 'version'>): boolean {
  return (
    o.background === 'keep' && o.crop === 'none' && o.resize === 'stretch' && o.intensity === 'raw' && !o.grey
  );
}

const versionOneHasNoOptions = [
  (o: OptionFields) => o.version === 2 || hasNoOptions(o),
  {
    message:
      'preprocessing version 1 takes no options (background keep, crop none, resize stretch, intensity raw, grey false)',
  },
] as const;

/** How a model's images are preprocessed, less the image size (preprocessing.json's `preprocessing`). */
export const PreprocessOptionsSchema = z.strictObject(optionsShape).refine(...versionOneHasNoOptions);
export type PreprocessOptions = z.output<typeof PreprocessOptionsSchema>;

/** Everything `imageToRgb` and `pixelsToRgb` need. */
export const PreprocessConfigSchema = z
  .strictObject({ imageSize: z.number().int().positive(), ...optionsShape })
  .refine(...versionOneHasNoOptions);
export type PreprocessConfig = z.output<typeof PreprocessConfigSchema>;
/** A config as callers may write it: options left out take their defaults. */
export type PreprocessConfigInput = z.input<typeof PreprocessConfigSchema>;

/** Version 1: what a bare image size means, and what a preprocessing.json without options means. */
export const PREPROCESS_V1: Readonly<PreprocessOptions> = Object.freeze({
  version: 1,
  background: 'keep',
  crop: 'none',
  resize: 'stretch',
  intensity: 'raw',
  grey: false,
});

/**
 * The options a training job records: version 1 when it asks for none (so its artifact reads the
 * same as every earlier one), else version 2.
 */
export function preprocessOptions(
  o: Omit<OptionFields, 'version' | 'background'> & Partial<Pick<OptionFields, 'background'>>,
): PreprocessOptions {
  const { background = 'keep', crop, resize, intensity, grey } = o;
  const options = { background, crop, resize, intensity, grey };
  return { version: hasNoOptions(options) ? 1 : 2, ...options };
}

/** A bare number is version 1 at that size (every caller before the options existed). */
export function toPreprocessConfig(sizeOrConfig: number | PreprocessConfigInput): PreprocessConfig {
  return typeof sizeOrConfig === 'number'
    ? PreprocessConfigSchema.parse({ imageSize: sizeOrConfig, ...PREPROCESS_V1 })
    : PreprocessConfigSchema.parse(sizeOrConfig);
}

/** One-line description for logs, e.g. `v2 crop=head resize=pad intensity=standardize grey`. */
export function describePreprocessing(o: PreprocessOptions): string {
  if (o.version === 1) return 'v1';
  const background = o.background === 'keep' ? '' : `background=${o.background} `;
  return `v2 ${background}crop=${o.crop} resize=${o.resize} intensity=${o.intensity}${o.grey ? ' grey' : ''}`;
}

/** Thrown for input that is not a decodable image; callers map it to a 4xx or a skipped file. */
export class ImageDecodeError extends Error {
  constructor(
    message: string,
    readonly code: 'EMPTY' | 'UNDECODABLE' | 'TOO_LARGE' | 'BAD_PIXELS' = 'UNDECODABLE',
  ) {
    super(message);
    this.name = 'ImageDecodeError';
  }
}

/** Refuse decompression bombs before sharp allocates them (about 8k x 8k). */
export const MAX_INPUT_PIXELS = 8192 * 8192;

/**
 * Decodes JPEG/PNG/WebP/... bytes (grayscale, RGBA and CMYK included; EXIF orientation applied)
 * and resizes to `size x size` RGB (version 1 stretches, like Keras `image_dataset_from_directory`).
 * `sizeOrConfig`: a bare number means version 1 at that size.
 */
export async function imageToRgb(
  bytes: Uint8Array,
  sizeOrConfig: number | PreprocessConfigInput,
): Promise<Float32Array> {
  return (await imageInput(bytes, sizeOrConfig)).pixels;
}

/** The model's input, and where it lies in the decoded image (what explanations overlay). */
export interface ModelInput {
  pixels: Float32Array;
  /** The input square in the decoded (EXIF-rotated) image's pixels; padding makes it reach outside. */
  frame: Box;
}

/** `imageToRgb` with the frame of the model's input in the image. */
export async function imageInput(
  bytes: Uint8Array,
  sizeOrConfig: number | PreprocessConfigInput,
): Promise<ModelInput> {
  const config = toPreprocessConfig(sizeOrConfig);
  if (bytes.byteLength === 0) throw new ImageDecodeError('empty image', 'EMPTY');
  const open = () => openImage(bytes);
  try {
    return await modelInput(open, config);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const tooLarge = /pixel limit|exceeds/i.test(reason);
    throw new ImageDecodeError(`cannot decode image: ${reason}`, tooLarge ? 'TOO_LARGE' : 'UNDECODABLE');
  }
}

/** The decode every image input starts from: EXIF orientation applied, alpha onto black, sRGB. */
function openImage(bytes: Uint8Array): Sharp {
  return sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'truncated' })
    .rotate() // apply EXIF orientation
    .flatten({ background: { r: 0, g: 0, b: 0 } }) // drop alpha onto black, as MRI backgrounds are
    .toColourspace('srgb');
}

/**
 * The full-size decoded image (`width x height x 3` sRGB bytes) that preprocessing starts from:
 * what an overlay is drawn on, so it lines up with the model input's `frame`.
 */
export async function decodeImage(bytes: Uint8Array): Promise<RgbImage> {
  return fullRgb(openImage(bytes));
}

/**
 * Turns flattened pixel values with shape [h, w, c] (c = 1, 3 or 4; values 0-255, as the
 * reference notebook sent them) into the model's input, through the same resize as images.
 */
export async function pixelsToRgb(
  pixels: ArrayLike<number>,
  shape: readonly [number, number, number],
  sizeOrConfig: number | PreprocessConfigInput,
): Promise<Float32Array> {
  return (await pixelsInput(pixels, shape, sizeOrConfig)).pixels;
}

/** `pixelsToRgb` with the frame of the model's input in the image. */
export async function pixelsInput(
  pixels: ArrayLike<number>,
  shape: readonly [number, number, number],
  sizeOrConfig: number | PreprocessConfigInput,
): Promise<ModelInput> {
  const config = toPreprocessConfig(sizeOrConfig);
  const [h, w, c] = shape;
  if (![1, 3, 4].includes(c))
    throw new ImageDecodeError(`channels must be 1, 3 or 4, got ${c}`, 'BAD_PIXELS');
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) {
    throw new ImageDecodeError(`shape must hold positive integers, got [${shape.join(', ')}]`, 'BAD_PIXELS');
  }
  if (h * w > MAX_INPUT_PIXELS) throw new ImageDecodeError(`image of ${h}x${w} is too large`, 'TOO_LARGE');
  if (pixels.length !== h * w * c) {
    throw new ImageDecodeError(
      `expected ${h * w * c} pixel values for shape [${h}, ${w}, ${c}], got ${pixels.length}`,
      'BAD_PIXELS',
    );
  }
  const bytes = Buffer.alloc(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const v = pixels[i];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 255) {
      throw new ImageDecodeError(
        // typeof for non-numbers: String() of a deeply nested array overflows the stack.
        `pixel ${i} is ${typeof v === 'number' ? String(v) : `of type ${v === null ? 'null' : typeof v}`}: values must be finite numbers in [0, 255]`,
        'BAD_PIXELS',
      );
    }
    bytes[i] = Math.round(v);
  }
  const open = () =>
    sharp(bytes, { raw: { width: w, height: h, channels: c as 1 | 3 | 4 } })
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .toColourspace('srgb');
  return modelInput(open, config);
}

/**
 * The one path from a decoded pipeline to the model's input: crop/pad on the full-size pixels when
 * the options reframe, else one cubic resize; then the per-pixel options. The frame comes from the
 * same crop and pad, so an overlay cannot drift from what the model saw.
 */
async function modelInput(open: () => Sharp, config: PreprocessConfig): Promise<ModelInput> {
  const size = config.imageSize;
  if (reframes(config)) {
    const { image, frame } = reframe(await fullRgb(open()), config);
    return { pixels: toFloat(adjust(await resizeSquare(image, size), config), size, 3), frame };
  }
  const raw = await open()
    .resize(size, size, { fit: 'fill', kernel: 'cubic' })
    .removeAlpha()
    .raw()
    .toBuffer();
  // Metadata is the stored image's: orientations 5-8 rotate it by a quarter turn.
  const meta = await open().metadata();
  const turned = (meta.orientation ?? 1) >= 5;
  const width = (turned ? meta.height : meta.width) ?? size;
  const height = (turned ? meta.width : meta.height) ?? size;
  return { pixels: toFloat(adjust(raw, config), size, 3), frame: { left: 0, top: 0, width, height } };
}

/** A decoded image: `width x height x 3` sRGB bytes, HWC. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Whether the image is cropped or padded before resizing (needs the full-size pixels in hand). */
function reframes(config: PreprocessConfig): boolean {
  return config.background !== 'keep' || config.crop !== 'none' || config.resize !== 'stretch';
}

async function fullRgb(pipeline: Sharp): Promise<RgbImage> {
  const { data, info } = await pipeline.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoder returned ${info.channels} channels, expected 3`);
  return { data, width: info.width, height: info.height };
}

function reframe(image: RgbImage, config: PreprocessConfig): { image: RgbImage; frame: Box } {
  let out = config.background === 'border' ? blackenBackground(image) : image;
  let frame: Box = { left: 0, top: 0, width: image.width, height: image.height };
  if (config.crop === 'head') {
    frame = headBox(greyOf(out.data), out.width, out.height);
    out = extractBox(out, frame);
  }
  if (config.resize === 'pad') {
    const padded = padToSquare(out);
    frame = {
      left: frame.left - padded.left,
      top: frame.top - padded.top,
      width: padded.image.width,
      height: padded.image.height,
    };
    out = padded.image;
  }
  return { image: out, frame };
}

/** Stretches to `size x size` with the cubic kernel (a square input keeps its aspect ratio). */
function resizeSquare(image: RgbImage, size: number): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(size, size, { fit: 'fill', kernel: 'cubic' })
    .raw()
    .toBuffer();
}

/** The per-pixel options, applied in place on the resized `size x size x 3` bytes. */
function adjust(raw: Buffer, config: PreprocessConfig): Buffer {
  if (config.grey) {
    for (let i = 0; i < raw.length; i += 3) {
      raw.fill(Math.round((raw[i] + raw[i + 1] + raw[i + 2]) / 3), i, i + 3);
    }
  }
  if (config.intensity === 'standardize') standardize(raw);
  if (config.intensity === 'equalize') equalize(raw);
  return raw;
}

/** The ring along the image's edges where the background level is read, as a share of the shorter side. */
const BACKGROUND_RING_FRACTION = 0.05;
/** A ring median at or below this grey level is already black enough: the image is left as it is. */
const BACKGROUND_DARK_LEVEL = 24;
/** Grey levels within this distance of the ring's median count as background. */
const BACKGROUND_TOLERANCE = 12;
/** The ring must be this uniform (share of its pixels near its median) to be a background at all. */
const BACKGROUND_UNIFORM_SHARE = 0.7;
/**
 * An edge line belongs to a figure's frame when this share of its pixels is white (FRAME_LEVEL or
 * lighter) or black (BACKGROUND_DARK_LEVEL or darker): a white rule with a black hairline outside it.
 */
const FRAME_SHARE = 0.9;
const FRAME_LEVEL = 200;

/**
 * `background=border`: a flat grey or white background (textbook figures, screenshots, some
 * archives) becomes black like an MRI's, so the head crop and the standardisation find the head
 * and the background level does not tell the source. First a frame is taken off: edge rows and
 * columns that are nearly all white or all black, up to the ring's width. The level is then the median grey
 * of a ring along the edges inside it (5 % of the shorter side); when that is lighter than 24 and at
 * least 70 % of the ring is within 12 levels of it, every pixel within 12 levels of it that is
 * connected to the ring through such pixels is set to black, and so is the frame. Anything else (a
 * black background, a head cut by the frame, a textured ring) is returned unchanged.
 */
export function blackenBackground<T extends RgbImage>(image: T): T {
  const { width, height } = image;
  const grey = greyOf(image.data);
  const ring = Math.max(1, Math.round(BACKGROUND_RING_FRACTION * Math.min(width, height)));
  const frame = frameInsets(grey, width, height, ring);
  const [x0, y0, x1, y1] = [frame.left, frame.top, width - frame.right, height - frame.bottom];
  if (x1 - x0 <= 2 * ring || y1 - y0 <= 2 * ring) return image;
  const inFrame = (x: number, y: number) => x < x0 || y < y0 || x >= x1 || y >= y1;
  const inRing = (x: number, y: number) =>
    !inFrame(x, y) && (x < x0 + ring || y < y0 + ring || x >= x1 - ring || y >= y1 - ring);
  const histogram = new Uint32Array(256);
  let ringPixels = 0;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      if (inRing(x, y)) {
        histogram[grey[y * width + x]]++;
        ringPixels++;
      }
  let level = 0;
  for (let v = 0, seen = 0; v < 256; v++) {
    seen += histogram[v];
    if (seen * 2 >= ringPixels) {
      level = v;
      break;
    }
  }
  if (level <= BACKGROUND_DARK_LEVEL) return image;
  const near = (g: number) => Math.abs(g - level) <= BACKGROUND_TOLERANCE;
  let nearShare = 0;
  for (
    let v = Math.max(0, level - BACKGROUND_TOLERANCE);
    v <= Math.min(255, level + BACKGROUND_TOLERANCE);
    v++
  )
    nearShare += histogram[v];
  if (nearShare < BACKGROUND_UNIFORM_SHARE * ringPixels) return image;
  // Flood fill from the ring's background pixels through 4-connected background pixels.
  const filled = new Uint8Array(width * height);
  const queue = new Int32Array(width * height);
  let head = 0;
  let tail = 0;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      if (inFrame(x, y)) filled[p] = 1;
      else if (inRing(x, y) && near(grey[p])) {
        filled[p] = 1;
        queue[tail++] = p;
      }
    }
  while (head < tail) {
    const p = queue[head++];
    const x = p % width;
    const visit = (q: number) => {
      if (!filled[q] && near(grey[q])) {
        filled[q] = 1;
        queue[tail++] = q;
      }
    };
    if (x > 0) visit(p - 1);
    if (x < width - 1) visit(p + 1);
    if (p >= width) visit(p - width);
    if (p < width * (height - 1)) visit(p + width);
  }
  const data = Uint8Array.from(image.data);
  for (let p = 0; p < filled.length; p++) if (filled[p]) data.fill(0, p * 3, p * 3 + 3);
  return { ...image, data };
}

/** How many edge lines on each side are a frame: nearly all white or all black (at most `max`). */
function frameInsets(grey: Uint8Array, width: number, height: number, max: number) {
  const isFrameLine = (x0: number, y0: number, dx: number, dy: number, n: number) => {
    let white = 0;
    let black = 0;
    for (let k = 0; k < n; k++) {
      const g = grey[(y0 + k * dy) * width + x0 + k * dx];
      if (g >= FRAME_LEVEL) white++;
      else if (g <= BACKGROUND_DARK_LEVEL) black++;
    }
    return Math.max(white, black) >= FRAME_SHARE * n;
  };
  // Two more lines past a frame: JPEG and resampling blur its inner edge into the background.
  const count = (isFrame: (i: number) => boolean) => {
    let i = 0;
    while (i < max && isFrame(i)) i++;
    return i > 0 ? Math.min(max, i + 2) : 0;
  };
  return {
    top: count((i) => isFrameLine(0, i, 1, 0, width)),
    bottom: count((i) => isFrameLine(0, height - 1 - i, 1, 0, width)),
    left: count((i) => isFrameLine(i, 0, 0, 1, height)),
    right: count((i) => isFrameLine(width - 1 - i, 0, 0, 1, height)),
  };
}

/** Mean of the channels per pixel, rounded: the grey image that finds the head. */
export function greyOf(rgb: Uint8Array): Uint8Array {
  const grey = new Uint8Array(rgb.length / 3);
  // round(s / 3) for an integer sum s is floor((s + 1) / 3); the multiply-shift is exact for s <= 765.
  for (let p = 0, i = 0; p < grey.length; p++, i += 3)
    grey[p] = ((rgb[i] + rgb[i + 1] + rgb[i + 2] + 1) * 21846) >>> 16;
  return grey;
}

/**
 * Grey level above which a pixel is foreground (head, not background): 10% of the image's 99th
 * percentile, and at least 10 (so JPEG noise in a black background never counts).
 */
export function foregroundThreshold(grey: Uint8Array): number {
  const histogram = new Uint32Array(256);
  for (let i = 0; i < grey.length; i++) histogram[grey[i]]++;
  const rank = Math.ceil(0.99 * grey.length);
  let seen = 0;
  let p99 = 0;
  for (let v = 0; v < 256; v++) {
    seen += histogram[v];
    if (seen >= rank) {
      p99 = v;
      break;
    }
  }
  return Math.max(10, 0.1 * p99);
}

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** A row (column) belongs to the head when more than this share of its pixels is foreground. */
const HEAD_LINE_FRACTION = 0.02;
/** Head rows (columns) this close (share of the side) are one span; farther ones are text or specks. */
const HEAD_GAP_FRACTION = 0.05;
/** Margin added around the head on each side, as a share of the head's own extent (not the image's: framing-independent). */
const HEAD_MARGIN_FRACTION = 0.02;

/**
 * The head's bounding box in a `width x height` grey image, with a margin of 2% of the head's extent.
 * Rows and columns count as head when more than 2% of their pixels are foreground (so specks and
 * thin lines do not stretch the box); of the spans they form, the one with the most foreground
 * wins (so a text label apart from the head is left out). No foreground: the whole image.
 */
export function headBox(grey: Uint8Array, width: number, height: number): Box {
  const whole = { left: 0, top: 0, width, height };
  if (grey.length !== width * height)
    throw new Error(`grey image has ${grey.length} pixels, expected ${width * height}`);
  const threshold = foregroundThreshold(grey);
  const rows = new Uint32Array(height);
  const cols = new Uint32Array(width);
  for (let y = 0, i = 0; y < height; y++) {
    let row = 0;
    for (let x = 0; x < width; x++, i++) {
      const fg = grey[i] > threshold ? 1 : 0;
      row += fg;
      cols[x] += fg;
    }
    rows[y] = row;
  }
  const ys = mainSpan(rows, width);
  const xs = mainSpan(cols, height);
  if (!ys || !xs) return whole;
  const my = Math.round(HEAD_MARGIN_FRACTION * (ys[1] - ys[0] + 1));
  const mx = Math.round(HEAD_MARGIN_FRACTION * (xs[1] - xs[0] + 1));
  const left = Math.max(0, xs[0] - mx);
  const top = Math.max(0, ys[0] - my);
  return {
    left,
    top,
    width: Math.min(width - 1, xs[1] + mx) - left + 1,
    height: Math.min(height - 1, ys[1] + my) - top + 1,
  };
}

/** First and last index of the heaviest span of lines holding more than HEAD_LINE_FRACTION of `across`. */
function mainSpan(counts: Uint32Array, across: number): [number, number] | undefined {
  const min = HEAD_LINE_FRACTION * across;
  const maxGap = Math.round(HEAD_GAP_FRACTION * counts.length);
  let best: [number, number] | undefined;
  let bestMass = 0;
  let start = -1;
  let end = -1;
  let mass = 0;
  const close = () => {
    if (start >= 0 && mass > bestMass) {
      best = [start, end];
      bestMass = mass;
    }
  };
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] <= min) continue;
    if (start < 0 || i - end - 1 > maxGap) {
      close();
      start = i;
      mass = 0;
    }
    end = i;
    mass += counts[i];
  }
  close();
  return best;
}

function extractBox(image: RgbImage, box: Box): RgbImage {
  if (box.left === 0 && box.top === 0 && box.width === image.width && box.height === image.height)
    return image;
  const data = new Uint8Array(box.width * box.height * 3);
  for (let y = 0; y < box.height; y++) {
    const from = ((box.top + y) * image.width + box.left) * 3;
    data.set(image.data.subarray(from, from + box.width * 3), y * box.width * 3);
  }
  return { data, width: box.width, height: box.height };
}

/** Centres the image on a black square (the odd pixel of padding goes right or bottom). */
function padToSquare(image: RgbImage): { image: RgbImage; left: number; top: number } {
  const side = Math.max(image.width, image.height);
  if (image.width === side && image.height === side) return { image, left: 0, top: 0 };
  const left = Math.floor((side - image.width) / 2);
  const top = Math.floor((side - image.height) / 2);
  const data = new Uint8Array(side * side * 3);
  for (let y = 0; y < image.height; y++) {
    const from = y * image.width * 3;
    data.set(image.data.subarray(from, from + image.width * 3), ((top + y) * side + left) * 3);
  }
  return { image: { data, width: side, height: side }, left, top };
}

/** Foreground intensities map to mean 128 and standard deviation 48. */
const STANDARD_MEAN = 128;
const STANDARD_STD = 48;

/**
 * Per-image intensity standardisation that keeps whole numbers in [0, 255]: mean and standard
 * deviation over the foreground pixels' values, then `v -> 128 + 48 * (v - mean) / std` for
 * values above the foreground threshold, clipped and rounded. Values below it ramp linearly from
 * 0 to where the foreground starts, so black (background, padding) stays 0, near-black stays
 * near 0 and the mapping stays monotonic.
 */
function standardize(raw: Buffer): void {
  const grey = greyOf(raw);
  const threshold = foregroundThreshold(grey);
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  for (let p = 0; p < grey.length; p++) {
    if (grey[p] <= threshold) continue;
    for (let i = p * 3; i < p * 3 + 3; i++) {
      sum += raw[i];
      sumSq += raw[i] * raw[i];
    }
    n += 3;
  }
  if (n === 0) return; // nothing but background: leave it black
  const mean = sum / n;
  const std = Math.max(1, Math.sqrt(Math.max(0, sumSq / n - mean * mean)));
  const map = (v: number) => STANDARD_MEAN + (STANDARD_STD * (v - mean)) / std;
  const atThreshold = Math.max(0, map(threshold));
  const table = new Uint8Array(256);
  for (let v = 0; v < 256; v++) {
    const out = v > threshold ? map(v) : (atThreshold * v) / threshold;
    table[v] = Math.min(255, Math.max(0, Math.round(out)));
  }
  for (let i = 0; i < raw.length; i++) raw[i] = table[raw[i]];
}

/** Where equalised foreground values start: apart from black, so the head's edge stays visible. */
const EQUALIZE_FLOOR = 32;

/**
 * Per-image histogram equalisation of the foreground (issue 12: sources differ in the whole shape
 * of their intensity histogram, not only its mean and spread, which `standardize` removes): a
 * foreground value maps to `32 + 223 * F(v)`, where F is the share of foreground channel values at
 * or below it, rounded. Background values ramp linearly from 0 to where the foreground starts, as
 * in `standardize`, so black stays black and the mapping stays monotonic.
 */
function equalize(raw: Buffer): void {
  const grey = greyOf(raw);
  const threshold = foregroundThreshold(grey);
  const histogram = new Float64Array(256);
  let n = 0;
  for (let p = 0; p < grey.length; p++) {
    if (grey[p] <= threshold) continue;
    for (let i = p * 3; i < p * 3 + 3; i++) histogram[raw[i]]++;
    n += 3;
  }
  if (n === 0) return; // nothing but background: leave it black
  const table = new Uint8Array(256);
  let seen = 0;
  for (let v = 0; v < 256; v++) {
    seen += histogram[v];
    table[v] =
      v > threshold
        ? Math.round(EQUALIZE_FLOOR + ((255 - EQUALIZE_FLOOR) * seen) / n)
        : Math.round((EQUALIZE_FLOOR * v) / threshold);
  }
  for (let i = 0; i < raw.length; i++) raw[i] = table[raw[i]];
}

function toFloat(raw: Buffer, size: number, channels: number): Float32Array {
  const expected = size * size * channels;
  if (raw.length !== expected) {
    throw new ImageDecodeError(`decoder returned ${raw.length} bytes, expected ${expected}`);
  }
  const out = new Float32Array(expected);
  for (let i = 0; i < expected; i++) out[i] = raw[i];
  return out;
}
