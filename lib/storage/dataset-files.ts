import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';

/** Image extensions the pipeline reads; everything else in a dataset folder is ignored. */
export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff']);

/** Every image file below `dir`, as sorted POSIX paths relative to it (stable across machines). */
export async function listDatasetFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && IMAGE_EXTENSIONS.has(path.extname(e.name).toLowerCase()))
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .sort();
}

/**
 * A content hash of an image-folder dataset: names and bytes of every image, in sorted order.
 * The same data gives the same hash on every machine, so it can version S3 prefixes and name
 * training jobs (new data means a new job; the same data means none).
 */
export async function hashDataset(dir: string): Promise<string> {
  const files = await listDatasetFiles(dir);
  if (files.length === 0) throw new Error(`no images found in ${dir}`);
  const outer = createHash('sha256');
  for (const file of files) {
    outer.update(file);
    outer.update('\0');
    outer.update(await hashFile(path.join(dir, file)));
    outer.update('\n');
  }
  return outer.digest('hex').slice(0, 16);
}

export function hashFile(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}
