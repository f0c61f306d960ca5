import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { LABELS, type Label, labelFromFolder } from '../labels.ts';

/** One image of an image-folder dataset: `<root>/<class folder>/<...>/<file>`. */
export interface ImageFile {
  /** Absolute path. */
  path: string;
  /** Path relative to the dataset root, with `/` separators: how reports name the file. */
  relPath: string;
  label: Label;
  /** Index of `label` in LABELS, i.e. the model's output index. */
  labelIndex: number;
}

export interface ImageFolder {
  root: string;
  files: ImageFile[];
  /** Files per label, in LABELS order. */
  counts: number[];
  /** Top-level folders whose name is not a known class (reported, not read). */
  ignoredFolders: string[];
}

/**
 * Lists an image-folder dataset. Class folders may be named either way (`glioma` or
 * `glioma_tumor`); files below them are listed recursively, hidden files skipped. Every other
 * file is listed, so a non-image file is later named as a bad file rather than silently ignored.
 */
export async function listImageFolder(root: string): Promise<ImageFolder> {
  const abs = path.resolve(root);
  let entries: Dirent[];
  try {
    entries = await readdir(abs, { withFileTypes: true });
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : String(err);
    throw new Error(`image folder ${abs} ${reason}`);
  }
  const files: ImageFile[] = [];
  const ignoredFolders: string[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.name.startsWith('.')) continue;
    const isDir = entry.isDirectory() || (entry.isSymbolicLink() && (await isDirectory(abs, entry.name)));
    if (!isDir) continue;
    const label = labelFromFolder(entry.name);
    if (!label) {
      ignoredFolders.push(entry.name);
      continue;
    }
    const labelIndex = LABELS.indexOf(label);
    for (const rel of await walk(path.join(abs, entry.name))) {
      const relPath = path.posix.join(entry.name, rel.split(path.sep).join('/'));
      files.push({ path: path.join(abs, entry.name, rel), relPath, label, labelIndex });
    }
  }
  const counts = LABELS.map((_, i) => files.filter((f) => f.labelIndex === i).length);
  return { root: abs, files, counts, ignoredFolders };
}

async function isDirectory(dir: string, name: string): Promise<boolean> {
  return (await stat(path.join(dir, name))).isDirectory();
}

async function walk(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && !e.name.startsWith('.'))
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}
