import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { imageToRgb, PREPROCESS_V1, type PreprocessOptions } from '../preprocess.ts';
import type { ImageFile } from './image-folder.ts';

/**
 * A dataset decoded once into a compact uint8 cache (`size x size x 3` bytes per image, HWC):
 * 2870 SARTAJ images are 79 MB at 96 px and 432 MB at 224 px. Batches are converted to float
 * one at a time, so the dataset is never held as float tensors.
 */
export interface DecodedImages {
  imageSize: number;
  /** The images that decoded, in input order minus the skipped ones. */
  files: ImageFile[];
  /** Label index per image. */
  labels: Int32Array;
  /** sha256 of each file's bytes: exact-duplicate grouping and leak checks. */
  hashes: string[];
  pixels: Uint8Array;
  /** Files that could not be decoded, with the decoder's reason. */
  skipped: SkippedFile[];
}

export interface SkippedFile {
  relPath: string;
  reason: string;
}

export interface DecodeOptions {
  imageSize: number;
  /** Preprocessing options (the model's preprocessing.json records them). Default: version 1. */
  preprocessing?: PreprocessOptions;
  /** Fail once more than this many files are bad. Default: unlimited. */
  maxBadFiles?: number;
  /** Files decoded at once; sharp decodes on its own thread pool. Default: 4. */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
  onSkip?: (file: SkippedFile) => void;
}

export class TooManyBadFilesError extends Error {
  constructor(readonly skipped: SkippedFile[]) {
    const sample = skipped
      .slice(0, 5)
      .map((s) => `${s.relPath} (${s.reason})`)
      .join('; ');
    super(`${skipped.length} files could not be decoded, more than max_bad_files allows: ${sample}`);
    this.name = 'TooManyBadFilesError';
  }
}

/** Decodes every file through the shared preprocessing path, naming and skipping bad ones. */
export async function decodeImages(files: ImageFile[], options: DecodeOptions): Promise<DecodedImages> {
  const { imageSize, maxBadFiles = Number.POSITIVE_INFINITY, concurrency = 4 } = options;
  const config = { imageSize, ...(options.preprocessing ?? PREPROCESS_V1) };
  const bytesPerImage = imageSize * imageSize * 3;
  const slots: (Uint8Array | undefined)[] = new Array(files.length);
  const hashes: string[] = new Array(files.length);
  const skipped: SkippedFile[] = [];
  let next = 0;
  let done = 0;

  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const i = next++;
      const file = files[i];
      try {
        const bytes = await readFile(file.path);
        hashes[i] = createHash('sha256').update(bytes).digest('hex');
        // preprocess.ts yields whole numbers in [0, 255] as float32; storing them as bytes is exact.
        slots[i] = Uint8Array.from(await imageToRgb(bytes, config));
      } catch (err) {
        const entry = { relPath: file.relPath, reason: err instanceof Error ? err.message : String(err) };
        skipped.push(entry);
        options.onSkip?.(entry);
        if (skipped.length > maxBadFiles) throw new TooManyBadFilesError(skipped);
      }
      options.onProgress?.(++done, files.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));

  const kept = files.map((_, i) => i).filter((i) => slots[i] !== undefined);
  const pixels = new Uint8Array(kept.length * bytesPerImage);
  kept.forEach((i, k) => {
    pixels.set(slots[i] as Uint8Array, k * bytesPerImage);
  });
  skipped.sort((a, b) => a.relPath.localeCompare(b.relPath));
  return {
    imageSize,
    files: kept.map((i) => files[i]),
    labels: Int32Array.from(kept, (i) => files[i].labelIndex),
    hashes: kept.map((i) => hashes[i]),
    pixels,
    skipped,
  };
}

/** A view of image `i` in the cache (no copy). */
export function imageAt(set: DecodedImages, i: number): Uint8Array {
  const n = set.imageSize * set.imageSize * 3;
  return set.pixels.subarray(i * n, (i + 1) * n);
}
