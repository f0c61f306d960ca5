import sharp from 'sharp';

/**
 * The one preprocessing path shared by the trainer, the evaluator and the server, so a model
 * sees exactly the same pixels in training and in production.
 *
 * Output: `size x size x 3` RGB values in [0, 255] as float32, HWC order. No normalisation:
 * EfficientNet rescales internally (as Keras' `efficientnet.py` does), so callers never scale.
 */
export interface PreprocessConfig {
  imageSize: number;
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
 * and resizes to `size x size` RGB (stretching, like Keras `image_dataset_from_directory`).
 */
export async function imageToRgb(bytes: Uint8Array, size: number): Promise<Float32Array> {
  if (bytes.byteLength === 0) throw new ImageDecodeError('empty image', 'EMPTY');
  let raw: Buffer;
  try {
    raw = await sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'truncated' })
      .rotate() // apply EXIF orientation
      .flatten({ background: { r: 0, g: 0, b: 0 } }) // drop alpha onto black, as MRI backgrounds are
      .toColourspace('srgb')
      .resize(size, size, { fit: 'fill', kernel: 'cubic' })
      .removeAlpha()
      .raw()
      .toBuffer();
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const tooLarge = /pixel limit|exceeds/i.test(reason);
    throw new ImageDecodeError(`cannot decode image: ${reason}`, tooLarge ? 'TOO_LARGE' : 'UNDECODABLE');
  }
  return toFloat(raw, size, 3);
}

/**
 * Turns flattened pixel values with shape [h, w, c] (c = 1, 3 or 4; values 0-255, as the
 * reference notebook sent them) into the model's input, through the same resize as images.
 */
export async function pixelsToRgb(
  pixels: ArrayLike<number>,
  shape: readonly [number, number, number],
  size: number,
): Promise<Float32Array> {
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
  const raw = await sharp(bytes, { raw: { width: w, height: h, channels: c as 1 | 3 | 4 } })
    .flatten({ background: { r: 0, g: 0, b: 0 } })
    .toColourspace('srgb')
    .resize(size, size, { fit: 'fill', kernel: 'cubic' })
    .removeAlpha()
    .raw()
    .toBuffer();
  return toFloat(raw, size, 3);
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
