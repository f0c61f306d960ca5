import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { LABELS, type Label, labelFromFolder } from '../labels.ts';

/** Extensions the audit reads; anything else in a class folder (README, .DS_Store) is ignored. */
const IMAGE_EXTENSIONS = /\.(jpe?g|png|webp|tiff?|gif|avif|bmp)$/i;

export interface ImageFile {
  /** Report path: `<split>/<class folder>/<file>`, always with forward slashes. */
  path: string;
  absolute: string;
  split: string;
  label: Label;
}

export interface SkippedFile {
  path: string;
  reason: string;
}

/**
 * Lists `<dir>/<class folder>/<image>` for one split. An unknown class folder is an error (a typo
 * there would silently drop a class); stray images outside class folders are skipped and reported.
 */
export async function listSplit(
  split: string,
  dir: string,
): Promise<{ files: ImageFile[]; skipped: SkippedFile[] }> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new Error(`cannot read split '${split}' at ${dir}: ${(err as Error).message}`);
  }
  const files: ImageFile[] = [];
  const skipped: SkippedFile[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.name.startsWith('.')) continue;
    if (!entry.isDirectory()) {
      if (IMAGE_EXTENSIONS.test(entry.name)) {
        skipped.push({ path: `${split}/${entry.name}`, reason: 'image is not inside a class folder' });
      }
      continue;
    }
    const label = labelFromFolder(entry.name);
    if (!label) {
      throw new Error(
        `unknown class folder '${split}/${entry.name}' in ${dir} (expected one of ${LABELS.join(', ')}, ` +
          'or the SARTAJ names such as glioma_tumor)',
      );
    }
    const names = (await readdir(path.join(dir, entry.name), { withFileTypes: true }))
      .filter((f) => f.isFile() && !f.name.startsWith('.') && IMAGE_EXTENSIONS.test(f.name))
      .map((f) => f.name)
      .sort((a, b) => a.localeCompare(b));
    for (const name of names) {
      files.push({
        path: `${split}/${entry.name}/${name}`,
        absolute: path.join(dir, entry.name, name),
        split,
        label,
      });
    }
  }
  return { files, skipped };
}

/** Split folders of a dataset root (`Training`, `Testing`, ...): every non-hidden directory. */
export async function listSplitDirs(root: string): Promise<Record<string, string>> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    throw new Error(`cannot read dataset folder ${root}: ${(err as Error).message}`);
  }
  const splits: Record<string, string> = {};
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.isDirectory() && !e.name.startsWith('.')) splits[e.name] = path.join(root, e.name);
  }
  if (Object.keys(splits).length === 0) {
    throw new Error(`${root} has no split folders (expected e.g. Training/ and Testing/ with class folders)`);
  }
  return splits;
}
