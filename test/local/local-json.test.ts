import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_BUCKET, localJobName } from '../../lib/pipeline/local.ts';
import { hashDataset } from '../../lib/storage/dataset-files.ts';
import { startLocalS3 } from '../../lib/storage/local-s3.ts';
import { uploadFile } from '../../lib/storage/s3-transfer.ts';
import { sampleImage, saveTinyModel } from '../serve/fixtures.ts';

const execFileAsync = promisify(execFile);
const CLI = path.resolve('bin/brain-tumor.js');
const CLASSES = ['glioma_tumor', 'meningioma_tumor', 'no_tumor', 'pituitary_tumor'];

/**
 * `brain-tumor local --json | jq` must work: stdout holds exactly one JSON document, and every
 * other line (phases, tables, the predict Lambda's JSON log lines) goes to stderr. No training:
 * a tiny model is put in the local S3 under the job name the run will look for, so the run
 * reuses it (as a second run does) and goes through audit, serve, API and sample predictions.
 */
describe('brain-tumor local --json', () => {
  let tmp: string;
  let result: { code: number; stdout: string; stderr: string };

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bt-local-json-'));
    const data = path.join(tmp, 'data');
    const work = path.join(tmp, 'work');
    for (const [split, n] of [
      ['Training', 2],
      ['Testing', 1],
    ] as const) {
      for (const [ci, cls] of CLASSES.entries()) {
        await mkdir(path.join(data, split, cls), { recursive: true });
        for (let i = 0; i < n; i++) {
          const seed = 1 + ci * 3 + i + (split === 'Testing' ? 2 : 0);
          await writeFile(path.join(data, split, cls, `${i}.jpg`), await sampleImage('jpeg', 48, seed));
        }
      }
    }
    // The model a previous run would have left: jobs/<name>/output/model.tar.gz in the local S3.
    const modelDir = await saveTinyModel(path.join(tmp, 'model'));
    const tarball = path.join(tmp, 'model.tar.gz');
    await tar.c({ gzip: true, file: tarball, cwd: modelDir, portable: true }, await readdir(modelDir));
    const jobName = localJobName(await hashDataset(data), { profile: 'quick' });
    const s3 = await startLocalS3({ directory: path.join(work, 's3'), buckets: [LOCAL_BUCKET] });
    try {
      await uploadFile(s3.client, LOCAL_BUCKET, `jobs/${jobName}/output/model.tar.gz`, tarball);
    } finally {
      await s3.close();
    }

    const args = ['local', '--data', data, '--work', work, '--api-port', '0', '--serve-port', '0'];
    const env = { ...process.env, POWERTOOLS_LOG_LEVEL: 'INFO', BRAIN_TUMOR_ENGINE: 'cpu' };
    try {
      const { stdout, stderr } = await execFileAsync(
        process.execPath,
        [CLI, ...args, '--api-key', 'k', '--exit', '--json'],
        { env, timeout: 150_000, maxBuffer: 64 * 1024 * 1024 },
      );
      result = { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      result = { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }, 200_000);

  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('prints exactly one JSON document on stdout', () => {
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary).toMatchObject({
      predictUrl: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/predict$/),
      unauthenticatedStatus: 403,
    });
    expect(summary.samples).toHaveLength(4);
    for (const sample of summary.samples) expect(sample.status).toBe(200);
    expect(result.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('writes the progress lines and the predict Lambda log lines to stderr', () => {
    expect(result.stderr).toContain('== data');
    expect(result.stderr).toContain('reusing s3://');
    expect(result.stderr).toContain('== sample predictions through the API');
    // The handler's structured lines (with their EMF metric fields), one per API request.
    const logLines = result.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { service?: string; message?: string; StatusClass?: string });
    const handlerLines = logLines.filter((l) => l.service === 'brain-tumor-predict');
    expect(handlerLines.filter((l) => l.message === 'prediction')).toHaveLength(4);
    expect(handlerLines.every((l) => l.StatusClass)).toBe(true);
  });
});
