import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalApi, startApi } from '../../lib/local/api.ts';
import { type RunningTestServer, sampleImage, startTestServer } from '../serve/fixtures.ts';

const run = promisify(execFile);
const CLI = path.resolve('bin/brain-tumor.js');
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('brain-tumor predict / serve (CLI)', () => {
  let server: RunningTestServer;
  let api: LocalApi;
  let dir: string;

  beforeAll(async () => {
    server = await startTestServer();
    api = await startApi({ serveUrl: server.url, port: 0, apiKey: 'k' });
    dir = await mkdtemp(path.join(os.tmpdir(), 'bt-cli-'));
    await writeFile(path.join(dir, 'a.jpg'), await sampleImage('jpeg', 40, 1));
    await writeFile(path.join(dir, 'b.png'), Buffer.from('not a png'));
  });
  afterAll(async () => {
    await api?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('prints a table per file through the API and exits 1 when a file fails', async () => {
    const [table, json, missingModel] = await Promise.all([
      cli([
        'predict',
        path.join(dir, 'a.jpg'),
        path.join(dir, 'b.png'),
        '--url',
        api.predictUrl,
        '--api-key',
        'k',
      ]),
      cli(['predict', path.join(dir, 'a.jpg'), '--url', api.predictUrl, '--api-key', 'k', '--json']),
      cli(['serve', '--model', path.join(dir, 'no-model')]),
    ]);
    expect(table.code).toBe(1);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^file\s+label\s+glioma\s+meningioma\s+notumor\s+pituitary$/);
    expect(lines[1]).toMatch(/^a\.jpg\s+(glioma|meningioma|notumor|pituitary)\s+(0\.\d{3}\s*){4}$/);
    expect(lines[2]).toMatch(/^b\.png\s+error\s+400 UNDECODABLE_IMAGE/);
    expect(table.stderr.trim()).toBe('brain-tumor: error: 1 of 2 images failed');

    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject([
      { status: 200, prediction: { label: expect.any(String) } },
    ]);

    expect(missingModel.code).toBe(1);
    expect(missingModel.stderr.trim()).toMatch(/^brain-tumor: error: no model found in .*no-model/);
  });
});
