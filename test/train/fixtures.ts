import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';

/**
 * A tiny image-folder dataset the tests generate: each class has its own bright blob position on
 * a noisy dark background, so even a tiny model can learn it in a few steps.
 */
const BLOB: Record<string, [number, number]> = {
  glioma_tumor: [0.3, 0.3],
  meningioma_tumor: [0.7, 0.3],
  no_tumor: [-1, -1],
  pituitary_tumor: [0.5, 0.75],
};

export async function makeImageFolder(
  perClass: number,
  options: { root?: string; size?: number; seed?: number; folders?: string[] } = {},
): Promise<string> {
  const root = options.root ?? (await mkdtemp(path.join(os.tmpdir(), 'bt-data-')));
  const size = options.size ?? 40;
  let seed = options.seed ?? 1;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  for (const folder of options.folders ?? Object.keys(BLOB)) {
    await mkdir(path.join(root, folder), { recursive: true });
    const [bx, by] = BLOB[folder] ?? [-1, -1];
    for (let n = 0; n < perClass; n++) {
      const px = Buffer.alloc(size * size);
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const d = Math.hypot(x / size - bx, y / size - by);
          px[y * size + x] = Math.min(255, Math.round(rand() * 40 + (d < 0.15 ? 180 : 0)));
        }
      }
      const jpeg = await sharp(px, { raw: { width: size, height: size, channels: 1 } })
        .jpeg()
        .toBuffer();
      await writeFile(path.join(root, folder, `img${n}.jpg`), jpeg);
    }
  }
  return root;
}

/** An /opt/ml tree with the given hyperparameters and channels (symlinked like local mode). */
export async function makeOptMl(
  hyperparameters: Record<string, string>,
  channels: Record<string, string>,
): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'bt-optml-'));
  await mkdir(path.join(root, 'input/config'), { recursive: true });
  await mkdir(path.join(root, 'input/data'), { recursive: true });
  await writeFile(path.join(root, 'input/config/hyperparameters.json'), JSON.stringify(hyperparameters));
  const { symlink } = await import('node:fs/promises');
  for (const [name, dir] of Object.entries(channels)) await symlink(dir, path.join(root, 'input/data', name));
  return root;
}

/** Hyperparameters for a model small enough to train in seconds on the cpu backend. */
export const TINY: Record<string, string> = {
  engine: 'cpu',
  weights: 'none',
  image_size: '32',
  width: '0.1',
  depth: '0.1',
  batch_size: '8',
  epochs: '2',
  learning_rate: '0.01',
  validation_fraction: '0.25',
  // The audit's near-duplicate search costs seconds even here; one test exercises it.
  grouping: 'sha256',
};
