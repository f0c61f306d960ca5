import { existsSync, statSync } from 'node:fs';
import path from 'node:path';

export const DATA_ENV = 'BRAIN_TUMOR_DATA';

/** Where the shared SARTAJ copy sits relative to the repository root on our machines. */
export const DEFAULT_DATA_DIR = path.resolve(
  import.meta.dirname,
  '../../../shared/datasets/sartaj-brain-tumor-mri',
);

/**
 * Resolves the dataset folder: `--data`, else `$BRAIN_TUMOR_DATA`, else the shared SARTAJ copy
 * beside the repository, else an error that says where to get the data and how to point at it.
 * The folder must hold `Training/` (and usually `Testing/`) with one sub-folder per class.
 */
export function resolveDataDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  const [dir, source] = flag
    ? [path.resolve(flag), '--data']
    : env[DATA_ENV]
      ? [path.resolve(env[DATA_ENV] as string), DATA_ENV]
      : [DEFAULT_DATA_DIR, 'the default location'];
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    if (source === 'the default location') {
      throw new Error(
        'no dataset found. Download the "Brain Tumor Classification (MRI)" dataset by Sartaj Bhuvaji et al. ' +
          '(Kaggle: sartajbhuvaji/brain-tumor-classification-mri), unpack it so that it holds Training/ and Testing/, ' +
          `then pass --data DIR or set ${DATA_ENV}=DIR (looked in ${DEFAULT_DATA_DIR})`,
      );
    }
    throw new Error(`dataset folder ${dir} (from ${source}) does not exist`);
  }
  if (!existsSync(path.join(dir, 'Training'))) {
    throw new Error(
      `dataset folder ${dir} has no Training/ folder: expected Training/<class>/*.jpg and Testing/<class>/*.jpg`,
    );
  }
  return dir;
}
