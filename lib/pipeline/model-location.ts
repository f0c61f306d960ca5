import { rmSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';

/** The file every model folder holds (training-container/src/model-io.ts). */
const MARKER = 'preprocessing.json';

export interface ResolvedModel {
  /** The model folder: model.json, weights.bin, preprocessing.json. */
  dir: string;
  /** What `--model` named. */
  kind: 'model folder' | 'train output folder' | 'model.tar.gz';
  /** Removes the temporary folder a model.tar.gz was unpacked into (also done on process exit). */
  cleanup: () => Promise<void>;
}

/**
 * Resolves `--model` for `evaluate` and `serve`, which accept any of:
 *
 *   - a model folder (model.json, weights.bin, preprocessing.json);
 *   - the folder `train --out` wrote: its `model/` sub-folder, else its `model.tar.gz`;
 *   - a `model.tar.gz` (as `train` and SageMaker pack it: the model files at the root), unpacked
 *     into a temporary folder that `cleanup()` removes, and in any case the process on exit.
 *
 * Anything else is an error that says what was looked for.
 */
export async function resolveModel(input: string): Promise<ResolvedModel> {
  const target = path.resolve(input);
  const info = await stat(target).catch(() => undefined);
  if (!info) {
    throw new Error(
      `no model found in ${target}: no such file or folder (expected a model folder, the folder \`train --out\` wrote, or a model.tar.gz)`,
    );
  }
  if (!info.isDirectory()) return unpack(target, target);
  if (await isFile(path.join(target, MARKER))) return { dir: target, kind: 'model folder', cleanup: noop };
  const sub = path.join(target, 'model');
  if (await isFile(path.join(sub, MARKER))) return { dir: sub, kind: 'train output folder', cleanup: noop };
  const tarball = path.join(target, 'model.tar.gz');
  if (await isFile(tarball)) return unpack(tarball, target);
  throw new Error(
    `no model found in ${target}: looked for ${MARKER} (a model folder), model/${MARKER} and model.tar.gz (the folder \`train --out\` writes)`,
  );
}

async function unpack(tarball: string, named: string): Promise<ResolvedModel> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'brain-tumor-model-'));
  // Removed on exit even when the command ends without calling cleanup (an error, process.exit).
  const onExit = () => rmSync(dir, { recursive: true, force: true });
  process.on('exit', onExit);
  const cleanup = async () => {
    process.off('exit', onExit);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // node-tar refuses absolute paths and `..` by default: the archive cannot write outside `dir`.
    await tar.x({ file: tarball, cwd: dir, strict: true });
  } catch (err) {
    await cleanup();
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      `no model found in ${named}: ${tarball === named ? 'not a model folder, nor' : `${tarball} is not`} a readable model.tar.gz (${reason})`,
    );
  }
  // SageMaker packs the model files at the root; accept an archive of the folder itself too.
  for (const candidate of [dir, path.join(dir, 'model')]) {
    if (await isFile(path.join(candidate, MARKER))) return { dir: candidate, kind: 'model.tar.gz', cleanup };
  }
  await cleanup();
  throw new Error(
    `no model found in ${named}: the archive ${tarball === named ? '' : `${tarball} `}holds no ${MARKER} (looked at its root and in model/)`,
  );
}

async function isFile(file: string): Promise<boolean> {
  return (await stat(file).catch(() => undefined))?.isFile() ?? false;
}

async function noop(): Promise<void> {}
