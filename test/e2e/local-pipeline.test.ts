import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DATA_DIR } from '../../lib/pipeline/data-location.ts';
import { type LocalPipeline, runLocalPipeline } from '../../lib/pipeline/local.ts';
import { auditDataset } from '../../training-container/src/audit/index.ts';
import { leakFreeTest } from '../../training-container/src/audit/split.ts';
import { LABELS } from '../../training-container/src/labels.ts';

/** A tiny EfficientNet, 32 px, one epoch on the cpu engine: a few seconds of training. */
const TINY_JOB = {
  image_size: '32',
  epochs: '1',
  batch_size: '8',
  width: '0.25',
  depth: '0.25',
  engine: 'cpu',
  weights: 'none',
};

const CLASSES = ['glioma_tumor', 'meningioma_tumor', 'no_tumor', 'pituitary_tumor'];

/**
 * A tiny dataset with the real layout: a few SARTAJ images per class when the shared copy is
 * there, otherwise generated images, so the pipeline is exercised on every machine.
 */
async function tinyDataset(root: string, perClass: { Training: number; Testing: number }): Promise<void> {
  for (const split of ['Training', 'Testing'] as const) {
    for (const [ci, cls] of CLASSES.entries()) {
      const dir = path.join(root, split, cls);
      await mkdir(dir, { recursive: true });
      const source = path.join(DEFAULT_DATA_DIR, split, cls);
      if (existsSync(source)) {
        const files = (await readdir(source)).sort().slice(0, perClass[split]);
        for (const f of files) await copyFile(path.join(source, f), path.join(dir, f));
      } else {
        for (let i = 0; i < perClass[split]; i++) {
          // Noise from its own seed: every generated scan is distinct to the audit (plain grey
          // squares were all one cluster of copies, so the leak count below was wrong).
          await sharp(noise(48, 48, 1 + 1000 * ci + 100 * (split === 'Testing' ? 1 : 0) + i, 40 + 50 * ci), {
            raw: { width: 48, height: 48, channels: 3 },
          })
            .jpeg()
            .toFile(path.join(dir, `gen-${i}.jpg`));
        }
      }
    }
  }
}

/** width x height RGB noise around `level`, from a small LCG seeded with `seed`. */
function noise(width: number, height: number, seed: number, level: number): Buffer {
  const out = Buffer.alloc(width * height * 3);
  let state = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = Math.min(255, level + (state >>> 25));
  }
  return out;
}

describe('local mode end to end (tiny data, tiny model, one epoch)', () => {
  let tmp: string;
  let run: LocalPipeline;
  const apiKey = 'test-key-123';
  const start = (log: (line: string) => void) =>
    runLocalPipeline({
      dataDir: path.join(tmp, 'data'),
      workDir: path.join(tmp, 'work'),
      hyperparameters: TINY_JOB,
      apiPort: 0,
      servePort: 0,
      apiKey,
      log,
    });

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bt-e2e-'));
    await tinyDataset(path.join(tmp, 'data'), { Training: 5, Testing: 2 });
    // One known leak: a Testing scan also filed in Training, which the leak-free figures must drop.
    const testGlioma = path.join(tmp, 'data', 'Testing', 'glioma_tumor');
    const [leaked] = (await readdir(testGlioma)).sort();
    await copyFile(
      path.join(testGlioma, leaked),
      path.join(tmp, 'data', 'Training', 'glioma_tumor', 'leak-copy.jpg'),
    );
    run = await start(() => {});
  }, 600_000);

  afterAll(async () => {
    await run?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('answers a valid prediction for one image per class through the API', () => {
    expect(run.samples).toHaveLength(4);
    for (const sample of run.samples) {
      expect(sample.status, JSON.stringify(sample.error)).toBe(200);
      const p = sample.prediction;
      expect(p).toBeDefined();
      expect(LABELS).toContain(p?.label);
      const probs = Object.values(p?.probabilities ?? {});
      expect(Object.keys(p?.probabilities ?? {}).sort()).toEqual([...LABELS].sort());
      expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
      // The label is the most probable class.
      expect(p?.probabilities[p.label]).toBe(Math.max(...probs));
    }
  });

  it('rejects a request without the API key', () => {
    expect(run.unauthenticatedStatus).toBe(403);
  });

  it('evaluated the model on all of Testing and on exactly the leak-free part the audit finds', async () => {
    const evaluation = run.evaluation as { overall: { n: number }; leakFree: { n: number } };
    expect(evaluation.overall.n).toBe(8);
    const report = await auditDataset(path.join(tmp, 'data'), { cacheDir: false });
    expect(report.leakyTest).toHaveLength(1);
    expect(evaluation.leakFree.n).toBe(leakFreeTest(report).length);
    expect(evaluation.leakFree.n).toBe(7);
  });

  it('answers the API directly, with 4xx JSON for a bad image', async () => {
    const res = await fetch(run.predictUrl, {
      method: 'POST',
      headers: { 'content-type': 'image/jpeg', 'x-api-key': apiKey },
      body: Buffer.from('definitely not a jpeg'),
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(typeof body.error.code).toBe('string');
    expect(typeof body.error.message).toBe('string');
  });

  it('reuses the trained model on a second run with the same data and hyperparameters', async () => {
    await run.close();
    const lines: string[] = [];
    run = await start((l) => lines.push(l));
    expect(lines.some((l) => l.includes('reusing'))).toBe(true);
    expect(run.timings.map((t) => t.phase)).not.toContain('train');
    expect(run.samples.every((s) => s.status === 200)).toBe(true);
  });
});
