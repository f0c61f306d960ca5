import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Paths of the image's build context that cannot change what a training job produces: the
 * serving code (the `serve` entrypoint), the native oneDNN addon (the image never builds it) and
 * build leftovers. Everything else (Dockerfile, package files, trainer, model, data and
 * preprocessing code shared with serving) is training code.
 */
const NOT_TRAINING = [
  /^src\/serve\//,
  /^native\//,
  /(^|\/)node_modules\//,
  /(^|\/)dist\//,
  /\.test\.ts$/,
  /\.md$/,
];

/**
 * A digest of the training code in `contextDir` (the container's build context) and the image's
 * build arguments. It names the training job, so a change to it trains again and a serving-only
 * change does not.
 */
export function trainerFingerprint(contextDir: string, buildArgs: Record<string, string> = {}): string {
  const hash = createHash('sha256');
  // A different base image (CUDA, libraries) can change what training produces.
  hash.update(`${JSON.stringify(Object.entries(buildArgs).sort())}\0`);
  for (const file of listFiles(contextDir)) {
    if (NOT_TRAINING.some((re) => re.test(file))) continue;
    hash.update(`${file}\0`);
    hash.update(readFileSync(path.join(contextDir, file)));
    hash.update('\0');
  }
  return hash.digest('hex');
}

/** Relative POSIX paths of every file below `dir`, sorted (the digest must not depend on order). */
function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listFiles(dir, rel));
    else if (entry.isFile()) out.push(rel);
  }
  return out.sort();
}
