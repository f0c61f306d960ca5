import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tar from 'tar';
import { optMlPaths } from '../../training-container/src/paths.ts';
import { type Profile, parseHyperparameters } from '../../training-container/src/train/hyperparameters.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CONTAINER_MAIN = path.join(REPO, 'training-container/src/main.ts');

export interface LocalTrainingOptions {
  /** Image folder for the `train` channel. */
  data: string;
  /** Optional image folder for the `test` channel (evaluation JSON and charts). */
  test?: string;
  /** Receives model.tar.gz, model/ (unpacked), output/ and, while unfinished, checkpoints/. */
  out: string;
  /** Default 'quick'. */
  profile?: Profile;
  /** Hyperparameter overrides, as SageMaker would pass them (strings). */
  hyperparameters?: Record<string, string>;
  /** Where the `train` process's stdout goes: ours (default) or our stderr (keeps stdout for a result). */
  output?: 'stdout' | 'stderr';
}

export interface LocalTrainingResult {
  modelTarball: string;
  modelDir: string;
  outputDir: string;
}

/**
 * Runs the container's own `train` entrypoint as a child process against a temporary /opt/ml
 * tree, exactly as SageMaker would lay it out, then packs /opt/ml/model into model.tar.gz.
 * Checkpoints live in `<out>/checkpoints`, so re-running an interrupted command resumes it; they
 * are removed once the model is packed.
 */
export async function trainLocally(options: LocalTrainingOptions): Promise<LocalTrainingResult> {
  const out = path.resolve(options.out);
  const hyperparameters = { profile: options.profile ?? 'quick', ...options.hyperparameters };
  parseHyperparameters(hyperparameters); // fail here, with the same message, before any work
  const channels: Record<string, string> = { train: await imageFolder(options.data, '--data') };
  if (options.test) channels.test = await imageFolder(options.test, '--test');

  const root = await mkdtemp(path.join(os.tmpdir(), 'brain-tumor-train-'));
  const paths = optMlPaths(root);
  try {
    await mkdir(path.dirname(paths.hyperparameters), { recursive: true });
    await mkdir(path.dirname(paths.channel('train')), { recursive: true });
    await writeJson(paths.hyperparameters, hyperparameters);
    await writeJson(
      paths.inputDataConfig,
      Object.fromEntries(
        Object.keys(channels).map((name) => [
          name,
          {
            ContentType: 'application/x-image',
            TrainingInputMode: 'File',
            S3DistributionType: 'FullyReplicated',
            RecordWrapperType: 'None',
          },
        ]),
      ),
    );
    await writeJson(paths.resourceConfig, {
      current_host: 'algo-1',
      hosts: ['algo-1'],
      network_interface_name: 'lo',
    });
    for (const [name, dir] of Object.entries(channels)) await symlink(dir, paths.channel(name), 'dir');
    await mkdir(path.join(out, 'checkpoints'), { recursive: true });
    await symlink(path.join(out, 'checkpoints'), paths.checkpoints, 'dir');

    const code = await runContainerTrain(root, options.output ?? 'stdout');
    if (code !== 0) {
      const failure = await readFile(paths.failure, 'utf8').catch(() => '');
      if (code === 143)
        throw new Error(
          `training interrupted; run the same command again to resume from ${path.join(out, 'checkpoints')}`,
        );
      throw new Error(`training failed (exit ${code}): ${failure.trim() || 'see the log above'}`);
    }

    const modelTarball = path.join(out, 'model.tar.gz');
    const modelDir = path.join(out, 'model');
    const outputDir = path.join(out, 'output');
    // SageMaker packs the *contents* of /opt/ml/model at the archive root.
    await tar.c(
      { gzip: true, file: modelTarball, cwd: paths.model, portable: true },
      await readdir(paths.model),
    );
    await rm(modelDir, { recursive: true, force: true });
    await cp(paths.model, modelDir, { recursive: true });
    await rm(outputDir, { recursive: true, force: true });
    await cp(paths.outputData, outputDir, { recursive: true });
    await rm(path.join(out, 'checkpoints'), { recursive: true, force: true });
    return { modelTarball, modelDir, outputDir };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** `main.ts train` with OPT_ML_ROOT, output streamed to ours; Ctrl-C lets it checkpoint first. */
function runContainerTrain(root: string, output: 'stdout' | 'stderr'): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', CONTAINER_MAIN, 'train'], {
    cwd: REPO,
    env: { ...process.env, OPT_ML_ROOT: root },
    stdio: output === 'stderr' ? ['inherit', 2, 'inherit'] : 'inherit',
  });
  // The terminal sends Ctrl-C to the child too; we only keep running until it has saved.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  const ignore = () => {};
  process.on('SIGTERM', forward);
  process.on('SIGINT', ignore);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      process.off('SIGTERM', forward);
      process.off('SIGINT', ignore);
      resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1));
    });
  });
}

async function imageFolder(dir: string, flag: string): Promise<string> {
  const abs = path.resolve(dir);
  const info = await stat(abs).catch(() => undefined);
  if (!info?.isDirectory())
    throw new Error(`${flag} ${dir}: not a folder (expected one sub-folder per class)`);
  return abs;
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}
