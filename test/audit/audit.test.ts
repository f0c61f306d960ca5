import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditReport, auditDataset, auditSplits } from '../../training-container/src/audit/index.ts';
import { renderHtml, samplePairs } from '../../training-container/src/audit/sheet.ts';
import { leakFreeTest } from '../../training-container/src/audit/split.ts';
import { syntheticSlice } from './synthetic.ts';

let root: string;
let cacheDir: string;
let report: AuditReport;

const A = 'Training/glioma_tumor/scan-a.jpg';
const COPIES = {
  mirrored: 'Training/glioma_tumor/scan-a-mirrored.jpg',
  requality: 'Training/glioma_tumor/scan-a-q55.jpg',
  resized: 'Testing/glioma_tumor/scan-a-small.jpg',
  exact: 'Testing/meningioma_tumor/scan-a-copy.jpg',
};
const OTHER_SLICE = 'Training/meningioma_tumor/scan-b.jpg';
const NEIGHBOUR_SLICE = 'Training/pituitary_tumor/scan-a-next-slice.jpg';
const UNIQUE_TEST = 'Testing/no_tumor/scan-d.jpg';

async function put(rel: string, bytes: Buffer): Promise<void> {
  await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
  await writeFile(path.join(root, rel), bytes);
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'audit-test-'));
  cacheDir = path.join(root, '.cache');
  const a = await syntheticSlice({ seed: 1 });
  await put(A, a);
  await put(COPIES.mirrored, await sharp(a).flop().jpeg({ quality: 90 }).toBuffer());
  await put(COPIES.requality, await sharp(a).jpeg({ quality: 55 }).toBuffer());
  // Smaller and re-padded: the crop to the head must undo both.
  await put(
    COPIES.resized,
    await sharp(a)
      .resize(170, 170)
      .extend({ top: 10, bottom: 30, left: 25, right: 5, background: '#000000' })
      .jpeg({ quality: 80 })
      .toBuffer(),
  );
  await mkdir(path.join(root, 'Testing/meningioma_tumor'), { recursive: true });
  await copyFile(path.join(root, A), path.join(root, COPIES.exact));
  await put(OTHER_SLICE, await syntheticSlice({ seed: 2 }));
  await put(NEIGHBOUR_SLICE, await syntheticSlice({ seed: 1, drift: 20 }));
  await put(UNIQUE_TEST, await syntheticSlice({ seed: 3 }));
  await put('Testing/no_tumor/broken.jpg', Buffer.from('not a jpeg'));
  report = await auditDataset(root, { cacheDir });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const kindOf = (r: AuditReport, x: string, y: string) =>
  r.pairs.find((p) => (p.a === x && p.b === y) || (p.a === y && p.b === x))?.kind;

describe('auditDataset', () => {
  it('finds the mirrored, re-encoded, resized and byte-identical copies of a scan as one cluster', () => {
    expect(report.clusters).toEqual([[...Object.values(COPIES), A].sort()]);
    expect(kindOf(report, A, COPIES.exact)).toBe('exact');
    expect(kindOf(report, A, COPIES.mirrored)).toBe('mirrored');
    expect(kindOf(report, A, COPIES.requality)).toBe('re-encoded');
    expect(kindOf(report, A, COPIES.resized)).toBe('re-encoded');
  });

  it('keeps different slices apart, including a neighbouring slice of the same head', () => {
    const clustered = new Set(report.clusters.flat());
    expect(clustered.has(OTHER_SLICE)).toBe(false);
    expect(clustered.has(NEIGHBOUR_SLICE)).toBe(false);
    expect(clustered.has(UNIQUE_TEST)).toBe(false);
  });

  it('reports Testing images with a copy in Training, and the label conflict', () => {
    expect(report.trainSplit).toBe('Training');
    expect(report.testSplit).toBe('Testing');
    expect(report.leakyTest).toEqual([COPIES.resized, COPIES.exact].sort());
    expect(report.summary.leakyTestPerLabel).toEqual({ glioma: 1, meningioma: 1 });
    expect(report.labelConflicts).toHaveLength(1);
    const [conflict] = report.labelConflicts;
    expect(conflict.paths).toEqual(report.clusters[0]);
    expect(conflict.labels[conflict.paths.indexOf(COPIES.exact)]).toBe('meningioma');
    expect(conflict.labels[conflict.paths.indexOf(A)]).toBe('glioma');
  });

  it('names the undecodable file instead of failing', () => {
    expect(report.images).toBe(8);
    expect(report.skipped).toEqual([
      { path: 'Testing/no_tumor/broken.jpg', reason: expect.stringMatching(/decode/) },
    ]);
  });

  it('leaves one leak-free Testing image per cluster', () => {
    expect(leakFreeTest(report)).toEqual([UNIQUE_TEST]);
  });

  it('serves a re-run from the fingerprint cache with the same result', async () => {
    // The byte-identical copy is decoded once.
    expect(report.timing.decoded).toBe(7);
    const again = await auditDataset(root, { cacheDir });
    expect(again.timing.decoded).toBe(0);
    expect(again.timing.thumbnailsFromCache).toBe(7);
    expect(again.timing.comparisonsFromCache).toBe(true);
    expect(again.clusters).toEqual(report.clusters);
    expect(again.pairs).toEqual(report.pairs);
  });

  it('audits separate channel folders as named splits', async () => {
    const r = await auditSplits(
      { train: path.join(root, 'Training'), test: path.join(root, 'Testing') },
      { cacheDir: false },
    );
    expect(r.trainSplit).toBe('train');
    expect(r.leakyTest).toEqual([
      'test/glioma_tumor/scan-a-small.jpg',
      'test/meningioma_tumor/scan-a-copy.jpg',
    ]);
    expect(r.files.every((f) => /^(train|test)\//.test(f.path))).toBe(true);
  });

  it('names a folder that is not a class as skipped, as the trainer ignores it', async () => {
    const bad = await mkdtemp(path.join(os.tmpdir(), 'audit-bad-'));
    try {
      await mkdir(path.join(bad, 'Training', 'tumour'), { recursive: true });
      const r = await auditDataset(bad, { cacheDir: false });
      expect(r.images).toBe(0);
      expect(r.skipped).toEqual([
        { path: 'Training/tumour', reason: expect.stringMatching(/not a class folder/) },
      ]);
    } finally {
      await rm(bad, { recursive: true, force: true });
    }
  });

  it('renders an HTML sheet with the sample pairs embedded', async () => {
    const pairs = samplePairs(report);
    expect(pairs.some((p) => p.section === 'label conflicts')).toBe(true);
    const html = await renderHtml(report, pairs);
    expect(html).toContain('data:image/jpeg;base64,');
    expect(html).toContain(COPIES.mirrored);
  });
});
