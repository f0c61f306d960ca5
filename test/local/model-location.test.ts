import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../lib/local/serve-process.ts';
import { resolveModel } from '../../lib/pipeline/model-location.ts';
import { LABELS } from '../../training-container/src/labels.ts';
import { sampleImage, saveTinyModel } from '../serve/fixtures.ts';

const execFileAsync = promisify(execFile);
const CLI = path.resolve('bin/brain-tumor.js');

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CLI, ...args], { timeout: 90_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** model.tar.gz as `train` and SageMaker pack it: the model files at the archive root. */
async function pack(modelDir: string, file: string): Promise<void> {
  await tar.c({ gzip: true, file, cwd: modelDir, portable: true }, await readdir(modelDir));
}

/** `brain-tumor-model-*` folders in the temp dir: what a model.tar.gz is unpacked into. */
async function unpackedFolders(): Promise<string[]> {
  return (await readdir(os.tmpdir())).filter((f) => f.startsWith('brain-tumor-model-'));
}

/**
 * The forms `--model` accepts, laid out as the commands write them: a model folder, the folder
 * `train --out` writes (model/, model.tar.gz, output/), a folder holding only model.tar.gz, and
 * model.tar.gz itself; plus what must be refused.
 */
describe('--model: one resolver for evaluate and serve', () => {
  let tmp: string;
  let modelDir: string;
  let trainOut: string;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bt-model-location-'));
    modelDir = await saveTinyModel(path.join(tmp, 'a-model'));
    trainOut = path.join(tmp, 'train-out');
    await cp(modelDir, path.join(trainOut, 'model'), { recursive: true });
    await pack(modelDir, path.join(trainOut, 'model.tar.gz'));
    await mkdir(path.join(trainOut, 'output'));
    await mkdir(path.join(tmp, 'only-tarball'));
    await pack(modelDir, path.join(tmp, 'only-tarball', 'model.tar.gz'));
    // An archive of the folder itself (model/ inside) rather than of its contents.
    await tar.c({ gzip: true, file: path.join(tmp, 'nested.tar.gz'), cwd: trainOut, portable: true }, [
      'model',
    ]);
    await mkdir(path.join(tmp, 'empty'));
    await writeFile(path.join(tmp, 'not-a-tarball.tar.gz'), 'hello');
    await tar.c({ gzip: true, file: path.join(tmp, 'no-model.tar.gz'), cwd: trainOut, portable: true }, [
      'output',
    ]);
    // Tiny test images, one per class folder.
    for (const [i, label] of LABELS.entries()) {
      await mkdir(path.join(tmp, 'data', label), { recursive: true });
      await writeFile(path.join(tmp, 'data', label, 'a.jpg'), await sampleImage('jpeg', 32, i + 1));
    }
  });
  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('a model folder: used as it is', async () => {
    const model = await resolveModel(modelDir);
    expect(model).toMatchObject({ dir: modelDir, kind: 'model folder' });
  });

  it('the folder `train --out` wrote: its model/ sub-folder', async () => {
    const model = await resolveModel(path.relative(process.cwd(), trainOut));
    expect(model).toMatchObject({ dir: path.join(trainOut, 'model'), kind: 'train output folder' });
  });

  it('a model.tar.gz (also one beside no model/, or of the folder itself): unpacked, removed by cleanup', async () => {
    for (const [input, sub] of [
      [path.join(trainOut, 'model.tar.gz'), ''],
      [path.join(tmp, 'only-tarball'), ''],
      [path.join(tmp, 'nested.tar.gz'), 'model'],
    ]) {
      const model = await resolveModel(input);
      expect(model.kind).toBe('model.tar.gz');
      expect(path.basename(path.dirname(sub ? path.dirname(model.dir) : model.dir))).toBe(
        path.basename(os.tmpdir()),
      );
      expect((await readdir(model.dir)).sort()).toEqual(['model.json', 'preprocessing.json', 'weights.bin']);
      await model.cleanup();
      expect(existsSync(sub ? path.dirname(model.dir) : model.dir)).toBe(false);
    }
  });

  it('refuses anything else, naming what it looked for, and leaves no temporary folder', async () => {
    const before = await unpackedFolders();
    await expect(resolveModel(path.join(tmp, 'empty'))).rejects.toThrow(
      /^no model found in .*empty: looked for preprocessing\.json \(a model folder\), model\/preprocessing\.json and model\.tar\.gz \(the folder `train --out` writes\)$/,
    );
    await expect(resolveModel(path.join(tmp, 'missing'))).rejects.toThrow(
      /^no model found in .*missing: no such file or folder \(expected a model folder, the folder `train --out` wrote, or a model\.tar\.gz\)$/,
    );
    await expect(resolveModel(path.join(tmp, 'not-a-tarball.tar.gz'))).rejects.toThrow(
      /^no model found in .*not-a-tarball\.tar\.gz: not a model folder, nor a readable model\.tar\.gz/,
    );
    await expect(resolveModel(path.join(tmp, 'no-model.tar.gz'))).rejects.toThrow(
      /^no model found in .*no-model\.tar\.gz: the archive holds no preprocessing\.json \(looked at its root and in model\/\)$/,
    );
    expect(await unpackedFolders()).toEqual(before);
  });

  it('removes the unpacked folder when the process exits without calling cleanup', async () => {
    const script = `
      const { resolveModel } = await import(${JSON.stringify(path.resolve('lib/pipeline/model-location.ts'))});
      const model = await resolveModel(${JSON.stringify(path.join(trainOut, 'model.tar.gz'))});
      console.log(model.dir);
      process.exit(3);`;
    const child = await execFileAsync(process.execPath, [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script,
    ]).catch((err: { code: number; stdout: string }) => err);
    expect(child).toMatchObject({ code: 3 });
    const dir = child.stdout.trim();
    expect(path.basename(dir)).toMatch(/^brain-tumor-model-/);
    expect(existsSync(dir)).toBe(false);
  });

  it('`evaluate --model` takes the train output folder and a model.tar.gz', async () => {
    const data = path.join(tmp, 'data');
    const runs = await Promise.all(
      [trainOut, path.join(trainOut, 'model.tar.gz')].map((model) =>
        cli(['evaluate', '--model', model, '--data', data, '--engine', 'cpu']),
      ),
    );
    for (const run of runs) {
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/^images: {12}4\naccuracy: /);
    }
    const empty = await cli(['evaluate', '--model', path.join(tmp, 'empty'), '--data', data]);
    expect(empty.code).toBe(1);
    expect(empty.stderr.trim()).toMatch(/^brain-tumor: error: no model found in .*empty: looked for /);
  });

  it('`serve --model` takes the train output folder and a model.tar.gz (unpacked folder gone after exit)', async () => {
    for (const model of [trainOut, path.join(trainOut, 'model.tar.gz')]) {
      const port = await freePort();
      const child = spawn(
        process.execPath,
        [CLI, 'serve', '--model', model, '--port', String(port), '--engine', 'cpu'],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      try {
        let status = 0;
        for (let i = 0; i < 240 && status !== 200 && child.exitCode === null; i++) {
          status = await fetch(`http://127.0.0.1:${port}/ping`)
            .then(async (r) => {
              await r.arrayBuffer();
              return r.status;
            })
            .catch(() => 0);
          if (status !== 200) await new Promise((r) => setTimeout(r, 250));
        }
        expect(status, stderr).toBe(200);
      } finally {
        child.kill('SIGTERM');
      }
      expect(await exited, stderr).toBe(0);
      const served = /^serving (\S+)/m.exec(stderr)?.[1];
      if (model.endsWith('.tar.gz')) {
        expect(stderr).toContain(`(unpacked from ${model})`);
        expect(path.basename(served ?? '')).toMatch(/^brain-tumor-model-/);
        expect(existsSync(served ?? '/')).toBe(false);
      } else {
        expect(served).toBe(path.join(trainOut, 'model'));
      }
    }
  });
});
