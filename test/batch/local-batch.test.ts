import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listImages, planBatch, runBatch } from '../../lib/local/batch.ts';
import { LABELS } from '../../training-container/src/labels.ts';
import { batchModeFromEnv } from '../../training-container/src/serve/batch-mode.ts';
import { type RunningTestServer, saveTinyModel, startTestServer } from '../serve/fixtures.ts';
import { makeScanFolder, readRows, type ScanFolder, startGate } from './fixtures.ts';

const run = promisify(execFile);
const CLI = path.resolve('bin/brain-tumor.js');
const ENV = { ...process.env, BRAIN_TUMOR_ENGINE: 'cpu' };

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { timeout: 120_000, env: ENV });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Every image exactly once: the same set as the folder's listing, and as many rows as images. */
function expectEachImageOnce(rows: { file: string }[], images: string[]): void {
  expect(rows.map((r) => r.file).sort()).toEqual([...images].sort());
  expect(new Set(rows.map((r) => r.file)).size).toBe(rows.length);
}

async function waitFor(
  check: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('brain-tumor batch', () => {
  let tmp: string;
  let modelDir: string;
  let folder: ScanFolder;
  /** An in-process serve container in batch mode, for the runs that do not start their own. */
  let server: RunningTestServer;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bt-batch-'));
    modelDir = await saveTinyModel(path.join(tmp, 'model'));
    folder = await makeScanFolder(path.join(tmp, 'data'));
    server = await startTestServer({ modelDir, batch: batchModeFromEnv({ SAGEMAKER_BATCH: 'true' }) });
  });
  afterAll(async () => {
    await server?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('lists JPEG and PNG files of any case, recursively, in a fixed order', async () => {
    expect(await listImages(folder.root)).toEqual(folder.images);
    expect(folder.images).toContain('scans/no_tumor/SCAN0.JPG');
    expect(folder.images.some((f) => f.endsWith('.png'))).toBe(true);
    expect(folder.images).not.toContain('notes.txt');
  });

  it('scores every image through its own serve container: one row each, one error row per broken file', async () => {
    const root = path.join(tmp, 'cli');
    await mkdir(root);
    const out = path.join(root, 'results.jsonl');
    // A file too large for the 1 MB payload on its own: an error row, not a crash.
    const data = path.join(root, 'data');
    await mkdir(data);
    const { cp } = await import('node:fs/promises');
    await cp(folder.root, data, { recursive: true, verbatimSymlinks: true });
    await writeFile(path.join(data, 'huge.png'), randomBytes(800_000));
    const images = [...folder.images, 'huge.png'];

    const first = await cli([
      'batch',
      data,
      '--model',
      modelDir,
      '--out',
      out,
      '--max-payload-mb',
      '1',
      '--json',
    ]);
    expect(first.code, first.stderr).toBe(0);
    const rows = await readRows(out);
    expectEachImageOnce(rows, images);
    const byFile = new Map(rows.map((r) => [r.file, r]));
    for (const [file, code] of Object.entries({ ...folder.broken, 'huge.png': 'PAYLOAD_TOO_LARGE' })) {
      expect(byFile.get(file), file).toMatchObject({ error: { code } });
    }
    for (const file of images.filter((f) => f.startsWith('scans/'))) {
      const row = byFile.get(file) as Record<string, unknown>;
      expect(LABELS, file).toContain(row.label);
      expect(Object.keys(row.probabilities as object)).toEqual([...LABELS]);
      expect(row).not.toHaveProperty('error');
    }
    const summary = JSON.parse(first.stdout);
    const scored = images.length - 5;
    expect(summary).toMatchObject({
      images: images.length,
      skipped: 0,
      processed: images.length,
      remaining: 0,
      errors: { PAYLOAD_TOO_LARGE: 1, UNDECODABLE_IMAGE: 2, UNREADABLE_FILE: 2 },
      maxPayloadInMB: 1,
      // The container's /execution-parameters gave the rest.
      concurrency: 2,
      batchStrategy: 'MULTI_RECORD',
      settingsFrom: 'mixed',
      engine: 'cpu',
      interrupted: false,
    });
    expect(Object.values(summary.labels as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(scored);
    expect(summary.imagesPerSecond).toBeGreaterThan(0);
    expect(first.stderr).toMatch(
      /labels: .*\nerrors: PAYLOAD_TOO_LARGE 1, UNDECODABLE_IMAGE 2, UNREADABLE_FILE 2/,
    );

    // Run again: everything is there, nothing is sent, no container is started, the file is unchanged.
    const before = await readFile(out, 'utf8');
    const again = await cli(['batch', data, '--model', modelDir, '--out', out, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ skipped: images.length, processed: 0, requests: 0 });
    expect(again.stderr).not.toMatch(/starting the serve container/);
    expect(await readFile(out, 'utf8')).toBe(before);
  });

  it('fails clearly on a missing folder or model', async () => {
    const out = path.join(tmp, 'never.jsonl');
    const [noDir, noModel] = await Promise.all([
      cli(['batch', path.join(tmp, 'nope'), '--model', modelDir, '--out', out]),
      cli(['batch', folder.root, '--model', path.join(tmp, 'no-model'), '--out', out]),
    ]);
    expect(noDir.code).toBe(1);
    expect(noDir.stderr.trim()).toBe(`brain-tumor: error: no such folder: ${path.join(tmp, 'nope')}`);
    expect(noModel.code).toBe(1);
    expect(noModel.stderr.trim()).toMatch(/^brain-tumor: error: no model found in .*no-model/);
  });

  it('groups records into bodies under MaxPayloadInMB with MaxConcurrentTransforms in flight', async () => {
    const data = path.join(tmp, 'many');
    await mkdir(data);
    // Random bytes decode (fail) fast; 24 files of 200 KB (267 KB as base64): 3 per 1 MB request.
    const files = Array.from({ length: 24 }, (_, i) => `f${String(i).padStart(2, '0')}.jpg`);
    for (const f of files) await writeFile(path.join(data, f), randomBytes(200_000));
    const gate = await startGate(server.url, { delayMs: 100 });
    try {
      const out = path.join(tmp, 'many.jsonl');
      const summary = await runBatch({ plan: await planBatch(data, out), url: gate.url, maxPayloadInMB: 1 });
      expectEachImageOnce(await readRows(out), files);
      expect(summary).toMatchObject({
        processed: 24,
        concurrency: 2,
        requests: 8,
        errors: { UNDECODABLE_IMAGE: 24 },
      });
      expect(gate.requests.map((r) => r.records)).toEqual(Array(8).fill(3));
      for (const r of gate.requests) expect(r.bytes).toBeLessThanOrEqual(1024 * 1024);
      expect(gate.maxInFlight).toBe(2);
    } finally {
      await gate.close();
    }
  });

  it("SINGLE_RECORD holds each file's own bytes to MaxPayloadInMB, as AWS does, not its base64", async () => {
    const data = path.join(tmp, 'single-size');
    await mkdir(data);
    // 800 KB: 1.07 MB as base64 (refused in MULTI_RECORD) but under 1 MB as a raw body.
    await writeFile(path.join(data, 'fits.jpg'), randomBytes(800_000));
    await writeFile(path.join(data, 'over.jpg'), randomBytes(1_100_000));
    const gate = await startGate(server.url);
    try {
      const out = path.join(tmp, 'single-size.jsonl');
      const summary = await runBatch({
        plan: await planBatch(data, out),
        url: gate.url,
        strategy: 'SINGLE_RECORD',
        maxPayloadInMB: 1,
      });
      const byFile = new Map((await readRows(out)).map((r) => [r.file, r]));
      expect(byFile.get('fits.jpg')).toMatchObject({ error: { code: 'UNDECODABLE_IMAGE' } });
      expect(byFile.get('over.jpg')).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
      expect(summary.requests).toBe(1);
      expect(gate.requests).toEqual([
        { bytes: 800_000, records: expect.any(Number), contentType: 'application/x-image' },
      ]);
    } finally {
      await gate.close();
    }
  });

  it('resumes after being killed mid-run: no row duplicated, none missing', async () => {
    const out = path.join(tmp, 'killed.jsonl');
    // One record per request; the gate lets 3 through and holds the rest, so the kill comes at a known point.
    const gate = await startGate(server.url, { pass: 3 });
    let child: ChildProcess | undefined;
    try {
      const args = [
        'batch',
        folder.root,
        '--url',
        gate.url,
        '--out',
        out,
        '--batch-strategy',
        'SINGLE_RECORD',
      ];
      child = spawn(process.execPath, [CLI, ...args], { env: ENV, stdio: 'ignore' });
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      // The broken files that never reach the container (unreadable) are written without a request.
      const sent = folder.images.filter((f) => folder.broken[f] !== 'UNREADABLE_FILE');
      await waitFor(async () => gate.held() === 2, 'two requests held at the gate');
      const rowsBeforeKill = await readRows(out);
      child.kill('SIGKILL');
      await exited;
      const passed = rowsBeforeKill.filter((r) => sent.includes(r.file));
      expect(passed).toHaveLength(3);
      expect(rowsBeforeKill.length).toBeLessThan(folder.images.length);
      // Killed with rows on disk only for answered requests: the two held ones are missing.
      expect(await readRows(out)).toEqual(rowsBeforeKill);

      gate.open();
      const resumed = await cli([...args, '--json']);
      expect(resumed.code, resumed.stderr).toBe(0);
      const summary = JSON.parse(resumed.stdout);
      expect(summary.skipped).toBe(rowsBeforeKill.length);
      expect(summary.processed).toBe(folder.images.length - rowsBeforeKill.length);
      expectEachImageOnce(await readRows(out), folder.images);
    } finally {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await gate.close();
    }
  });

  it('resumes after a truncated last line: the line is dropped and its image done again', async () => {
    const out = path.join(tmp, 'truncated.jsonl');
    await runBatch({ plan: await planBatch(folder.root, out), url: server.url });
    const complete = await readFile(out, 'utf8');
    const lines = complete.trimEnd().split('\n');
    const last = lines.pop() as string;
    await writeFile(out, `${lines.join('\n')}\n`);
    await appendFile(out, last.slice(0, Math.floor(last.length / 2)));

    const plan = await planBatch(folder.root, out);
    expect(plan.droppedPartialLine).toBe(true);
    expect(plan.pending).toEqual([JSON.parse(last).file]);
    const summary = await runBatch({ plan, url: server.url });
    expect(summary).toMatchObject({
      processed: 1,
      skipped: folder.images.length - 1,
      droppedPartialLine: true,
    });
    expectEachImageOnce(await readRows(out), folder.images);
    // Every line is whole again.
    expect((await readFile(out, 'utf8')).endsWith('\n')).toBe(true);

    // A broken line that is not the last one is not guessed at.
    await writeFile(out, `{"file": "x.jpg"\n${complete}`);
    await expect(planBatch(folder.root, out)).rejects.toThrow(/truncated\.jsonl line 1 is not a result row/);
  });

  it('stops on its abort signal, keeping what was written', async () => {
    const out = path.join(tmp, 'aborted.jsonl');
    const stop = new AbortController();
    const gate = await startGate(server.url, { pass: 1 });
    try {
      const running = runBatch({
        plan: await planBatch(folder.root, out),
        url: gate.url,
        strategy: 'SINGLE_RECORD',
        concurrency: 1,
        signal: stop.signal,
      });
      await waitFor(() => gate.held() === 1, 'a request held at the gate');
      stop.abort();
      const summary = await running;
      // SINGLE_RECORD posts each file's own bytes, as a transform job over image objects does.
      expect(gate.requests.map((r) => r.contentType)).toContain('application/x-image');
      expect(gate.requests.every((r) => r.contentType === 'application/x-image')).toBe(true);
      expect(summary.interrupted).toBe(true);
      expect(summary.remaining).toBeGreaterThan(0);
      expect((await readRows(out)).length).toBe(summary.processed);
    } finally {
      await gate.close();
    }
  });
});
