import sharp, { type OutputInfo } from 'sharp';
import { ImageDecodeError, MAX_INPUT_PIXELS } from '../preprocess.ts';

/** Side of the stored grayscale thumbnail (the fingerprint cache holds these bytes). */
export const THUMB_SIZE = 128;

/**
 * Images are decoded at most this large before cropping: a head that fills a small part of a big
 * padded frame still keeps enough pixels for a sharp thumbnail, and JPEG shrink-on-load keeps big
 * files fast.
 */
const DECODE_LIMIT = 1024;

/**
 * Decodes an image to the audit's normalised grayscale thumbnail: `size x size` bytes, row-major,
 * cropped to the head and stretched to fill.
 *
 * Cropping makes copies that were resized, re-padded or re-encoded at another size land on the
 * same pixels; stretching is harmless because every copy of a scan gets the same crop. Intensity is
 * left as decoded: comparisons normalise it (see `compare.ts`).
 */
export async function normalisedThumbnail(bytes: Uint8Array, size = THUMB_SIZE): Promise<Uint8Array> {
  if (bytes.byteLength === 0) throw new ImageDecodeError('empty image', 'EMPTY');
  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'truncated' })
      .rotate()
      .flatten({ background: '#000000' })
      .grayscale()
      .resize(DECODE_LIMIT, DECODE_LIMIT, { fit: 'inside', withoutEnlargement: true })
      .toColourspace('b-w')
      .raw()
      .toBuffer({ resolveWithObject: true }));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const tooLarge = /pixel limit|exceeds/i.test(reason);
    throw new ImageDecodeError(`cannot decode image: ${reason}`, tooLarge ? 'TOO_LARGE' : 'UNDECODABLE');
  }
  const box = contentBox(data, info.width, info.height);
  const out = await sharp(data, { raw: { width: info.width, height: info.height, channels: 1 } })
    .extract(box)
    .resize(size, size, { fit: 'fill', kernel: 'lanczos3' })
    // A raw single-band input otherwise comes back as three sRGB bands.
    .toColourspace('b-w')
    .raw()
    .toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * Where the head is: first strip flat borders of any shade (some copies sit on grey padding), then
 * keep the rows and columns holding a real share of bright pixels. "Bright" is relative to the
 * image's own 99th percentile so darker re-encodings crop the same; needing a share of the line,
 * not one pixel, ignores JPEG noise and small burnt-in text.
 */
export function contentBox(gray: Uint8Array, width: number, height: number): Box {
  const flat = flatBorderBox(gray, width, height);
  const hist = new Uint32Array(256);
  for (let y = flat.top; y < flat.top + flat.height; y++) {
    for (let x = flat.left; x < flat.left + flat.width; x++) hist[gray[y * width + x]]++;
  }
  const total = flat.width * flat.height;
  let seen = 0;
  let p99 = 255;
  for (let v = 0; v < 256; v++) {
    seen += hist[v];
    if (seen >= 0.99 * total) {
      p99 = v;
      break;
    }
  }
  const threshold = Math.max(8, p99 * 0.12);
  const rows = new Uint32Array(flat.height);
  const cols = new Uint32Array(flat.width);
  for (let y = 0; y < flat.height; y++) {
    const row = (flat.top + y) * width + flat.left;
    for (let x = 0; x < flat.width; x++) {
      if (gray[row + x] > threshold) {
        rows[y]++;
        cols[x]++;
      }
    }
  }
  const [top, bottom] = span(rows, flat.width);
  const [left, right] = span(cols, flat.height);
  return { left: flat.left + left, top: flat.top + top, width: right - left + 1, height: bottom - top + 1 };
}

/**
 * First and last line that hold at least 2% bright pixels, once the outermost 0.5% of all bright
 * pixels is set aside: burnt-in text in a corner moves neither end. The whole range when nothing
 * qualifies (a blank image).
 */
function span(counts: Uint32Array, lineLength: number): [number, number] {
  const min = Math.max(1, Math.round(lineLength * 0.02));
  let total = 0;
  for (const c of counts) total += c;
  const tail = total * 0.005;
  let lo = 0;
  for (let seen = 0; lo < counts.length; lo++) {
    seen += counts[lo];
    if (seen > tail && counts[lo] >= min) break;
  }
  let hi = counts.length - 1;
  for (let seen = 0; hi > lo; hi--) {
    seen += counts[hi];
    if (seen > tail && counts[hi] >= min) break;
  }
  return lo >= counts.length || hi - lo < 8 ? [0, counts.length - 1] : [lo, hi];
}

/** Strips rows and columns at the edges whose pixels all lie within a small range (padding). */
function flatBorderBox(gray: Uint8Array, width: number, height: number): Box {
  const FLAT = 12;
  const rowFlat = (y: number, x0: number, x1: number) => {
    let lo = 255;
    let hi = 0;
    for (let x = x0; x < x1; x++) {
      const v = gray[y * width + x];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return hi - lo <= FLAT;
  };
  const colFlat = (x: number, y0: number, y1: number) => {
    let lo = 255;
    let hi = 0;
    for (let y = y0; y < y1; y++) {
      const v = gray[y * width + x];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return hi - lo <= FLAT;
  };
  let top = 0;
  let bottom = height;
  let left = 0;
  let right = width;
  while (bottom - top > 16 && rowFlat(top, left, right)) top++;
  while (bottom - top > 16 && rowFlat(bottom - 1, left, right)) bottom--;
  while (right - left > 16 && colFlat(left, top, bottom)) left++;
  while (right - left > 16 && colFlat(right - 1, top, bottom)) right--;
  return { left, top, width: right - left, height: bottom - top };
}
