import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { listImageFolder } from '../data/image-folder.ts';
import { LABELS, type Label } from '../labels.ts';

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
 * Lists `<dir>/<class folder>/<image>` for one split with the trainer's own image-folder reader,
 * so the audit and the trainer see the same files. A folder that is not a known class is reported
 * as skipped (the trainer ignores it too); a non-image file is later named as undecodable.
 */
export async function listSplit(
  split: string,
  dir: string,
): Promise<{ files: ImageFile[]; skipped: SkippedFile[] }> {
  let folder: Awaited<ReturnType<typeof listImageFolder>>;
  try {
    folder = await listImageFolder(dir);
  } catch (err) {
    throw new Error(`cannot read split '${split}': ${(err as Error).message}`);
  }
  const files = folder.files.map((f) => ({
    path: `${split}/${f.relPath}`,
    absolute: f.path,
    split,
    label: f.label,
  }));
  const skipped = folder.ignoredFolders.map((name) => ({
    path: `${split}/${name}`,
    reason: `not a class folder (expected one of ${LABELS.join(', ')}, or SARTAJ names such as glioma_tumor)`,
  }));
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
