import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalApi, startApi } from '../../lib/local/api.ts';
import { saveBrightnessModel } from '../serve/brightness-model.ts';
import { type RunningTestServer, startTestServer } from '../serve/fixtures.ts';

/** `brain-tumor predict --explain`: heatmaps blended over their images, saved beside the table. */

const run = promisify(execFile);
const CLI = path.resolve('bin/brain-tumor.js');
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

async function cli(args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { timeout: 60_000, cwd });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** A 48 x 32 black PNG with a bright 8 x 8 square at columns 6-13, rows 12-19 (the model stretches it to 16 x 16). */
async function scan(): Promise<Buffer> {
  const [w, h] = [48, 32];
  const rgb = Buffer.alloc(w * h * 3);
  for (let y = 12; y < 20; y++)
    for (let x = 6; x < 14; x++) rgb.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3);
  return sharp(rgb, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
}

describe('brain-tumor predict --explain', () => {
  let server: RunningTestServer;
  let api: LocalApi;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bt-cli-explain-'));
    await saveBrightnessModel(path.join(dir, 'model'));
    server = await startTestServer({ modelDir: path.join(dir, 'model') });
    api = await startApi({ serveUrl: server.url, port: 0, apiKey: 'k' });
    await writeFile(path.join(dir, 'scan.png'), await scan());
  });
  afterAll(async () => {
    await api?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('saves <name>.heatmap.png in --out, at the image size, hot on the square, and lists it in the table', async () => {
    const out = path.join(dir, 'out');
    const res = await cli([
      'predict',
      path.join(dir, 'scan.png'),
      '--url',
      api.predictUrl,
      '--api-key',
      'k',
      '--explain',
      '--out',
      out,
    ]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const file = path.join(out, 'scan.heatmap.png');
    const lines = res.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^file\s+label\s+glioma\s+meningioma\s+notumor\s+pituitary\s+heatmap$/);
    expect(lines[1]).toMatch(/^scan\.png\s+glioma\s+(0\.\d{3}\s+|1\.000\s+){4}/);
    expect(lines[1].endsWith(file)).toBe(true);

    const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([48, 32]);
    const px = (x: number, y: number) => [
      ...data.subarray((y * 48 + x) * info.channels, (y * 48 + x) * info.channels + 3),
    ];
    const [r1, , b1] = px(9, 15); // in the square: the image is white, the heat red
    const [r2, , b2] = px(40, 28); // far corner: black image, cold (blue) heat
    expect(r1).toBeGreaterThan(200);
    expect(b1).toBeLessThan(r1);
    expect(r2).toBeLessThan(40);
    expect(b2).toBeGreaterThan(r2);
  });

  it('defaults to ./heatmaps and works against serve /invocations too (--json lists the file)', async () => {
    const cwd = await mkdtemp(path.join(dir, 'cwd-'));
    const res = await cli(
      ['predict', path.join(dir, 'scan.png'), '--url', `${server.url}/invocations`, '--explain', '--json'],
      cwd,
    );
    expect(res.code).toBe(0);
    const [result] = JSON.parse(res.stdout);
    expect(result).toMatchObject({ status: 200, heatmapFile: path.join('heatmaps', 'scan.heatmap.png') });
    expect(result.prediction.heatmap).toBeUndefined();
    expect(await readdir(path.join(cwd, 'heatmaps'))).toEqual(['scan.heatmap.png']);
  });
});
