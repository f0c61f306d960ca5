import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import type { Label } from '../labels.ts';
import { AuditCache, defaultCacheDir } from './cache.ts';
import { CANDIDATE_CORRELATION } from './candidates.ts';
import { LEVEL_GATES, SAME_SCAN } from './compare.ts';
import { type ImageFile, listSplit, listSplitDirs, type SkippedFile } from './files.ts';
import { findSameScans, type SimilarityResult, UnionFind } from './similarity.ts';
import { normalisedThumbnail, THUMB_SIZE } from './thumbnail.ts';

/**
 * Dataset audit: byte-identical, re-encoded/resized and mirrored copies of a scan, Testing images
 * leaking from Training, and copies filed under different labels. See docs/audit.md.
 */

export type PairKind = 'exact' | 're-encoded' | 'mirrored';

export interface AuditedImage {
  /** `<split>/<class folder>/<file>`. */
  path: string;
  split: string;
  label: Label;
  sha256: string;
}

export interface AuditPair {
  a: string;
  b: string;
  kind: PairKind;
  /** Aligned pixel correlation at thumbnail resolution (1 for exact copies). */
  correlation: number;
}

export interface LabelConflict {
  /** Every member of the cluster. */
  paths: string[];
  /** `labels[i]` is the label of `paths[i]`. */
  labels: Label[];
}

export interface AuditReport {
  /** Split name -> folder audited. */
  splits: Record<string, string>;
  /** The splits treated as train and test for leakage; absent when the dataset lacks one. */
  trainSplit?: string;
  testSplit?: string;
  /** Number of images audited (decodable ones). */
  images: number;
  files: AuditedImage[];
  /** Files that could not be audited, with the reason. */
  skipped: SkippedFile[];
  /** Groups of two or more images showing the same scan; members sorted, paths relative to the root. */
  clusters: string[][];
  /** Every pair judged the same scan directly (clusters are their transitive closure). */
  pairs: AuditPair[];
  /** Test-split images with a copy in the train split. */
  leakyTest: string[];
  labelConflicts: LabelConflict[];
  /** The closest rejected candidates, for checking the threshold by eye. */
  nearMisses: { a: string; b: string; mirrored: boolean; correlation: number; worstBlock: number }[];
  summary: {
    /** Images per split and label. */
    imagesPerSplit: Record<string, Partial<Record<Label, number>>>;
    /**
     * Pair counts by split ("Training", or "Testing ~ Training" across splits), then by label
     * ("glioma", or "glioma ~ meningioma" across labels), then by kind.
     */
    pairCounts: Record<string, Record<string, Record<PairKind, number>>>;
    leakyTestPerLabel: Partial<Record<Label, number>>;
    clusters: number;
    imagesInClusters: number;
    /** Distinct scans: images minus the copies every cluster adds beyond its first member. */
    distinctScans: number;
  };
  timing: {
    totalMs: number;
    thumbnailsMs: number;
    compareMs: number;
    decoded: number;
    thumbnailsFromCache: number;
    comparisonsFromCache: boolean;
    candidatePairs: number;
  };
}

export interface AuditOptions {
  /** Fingerprint cache folder. Default: `defaultCacheDir()`; `false` disables caching. */
  cacheDir?: string | false;
  /** Called as work advances; `phase` tells the image pass from the comparison pass. */
  onProgress?: (done: number, total: number, phase: 'images' | 'compare') => void;
  /** Train split name for leakage. Default: the first of Training, train, training that exists. */
  trainSplit?: string;
  /** Test split name for leakage. Default: the first of Testing, test, testing that exists. */
  testSplit?: string;
  /** Images decoded at once. Default: twice the CPU count, at least 2 (sharp runs on libuv's pool). */
  concurrency?: number;
  /** Receives non-fatal warnings (an unwritable cache). Default: ignore. */
  onWarning?: (message: string) => void;
}

/** Audits a dataset root whose sub-folders are splits (`Training/`, `Testing/`) of class folders. */
export async function auditDataset(root: string, opts: AuditOptions = {}): Promise<AuditReport> {
  return auditSplits(await listSplitDirs(root), opts);
}

/**
 * Audits named split folders, each holding class folders, as one dataset: e.g. the trainer's
 * channels `{ train: '/opt/ml/input/data/train', test: '/opt/ml/input/data/test' }`. Report paths
 * are `<split>/<class folder>/<file>`.
 */
export async function auditSplits(
  splits: Record<string, string>,
  opts: AuditOptions = {},
): Promise<AuditReport> {
  const started = performance.now();
  const names = Object.keys(splits);
  if (names.length === 0) throw new Error('auditSplits needs at least one split');
  const trainSplit = pickSplit(names, opts.trainSplit, ['Training', 'train', 'training']);
  const testSplit = pickSplit(names, opts.testSplit, ['Testing', 'test', 'testing']);

  const listed: ImageFile[] = [];
  const skipped: SkippedFile[] = [];
  for (const name of names) {
    const { files, skipped: s } = await listSplit(name, splits[name]);
    listed.push(...files);
    skipped.push(...s);
  }

  const cache = new AuditCache(
    opts.cacheDir === false ? undefined : (opts.cacheDir ?? defaultCacheDir()),
    opts.onWarning,
  );
  const thumbs = await thumbnails(listed, cache, opts);
  skipped.push(...thumbs.skipped);
  const files = listed.flatMap((f, k) => {
    const sha256 = thumbs.shas[k];
    return sha256 ? [{ path: f.path, split: f.split, label: f.label, sha256 }] : [];
  });
  const thumbnailsMs = performance.now() - started;

  // Byte-identical files need no pixels: compare each distinct content once.
  const contents = [...new Set(files.map((f) => f.sha256))].sort();
  const resultKey = createHash('sha256')
    .update(JSON.stringify({ SAME_SCAN, LEVEL_GATES, CANDIDATE_CORRELATION, THUMB_SIZE, contents }))
    .digest('hex');
  let similarity = await cache.getResult<SimilarityResult>(resultKey);
  const comparisonsFromCache = similarity !== undefined;
  if (!similarity) {
    similarity = findSameScans(
      contents.map((sha) => thumbs.bySha.get(sha) as Uint8Array),
      opts.onProgress && ((d, t) => opts.onProgress?.(d, t, 'compare')),
    );
    await cache.putResult(resultKey, similarity);
  }
  const compareMs = performance.now() - started - thumbnailsMs;

  const report = assemble(files, contents, similarity, trainSplit, testSplit);
  return {
    splits,
    trainSplit,
    testSplit,
    images: files.length,
    files,
    skipped,
    ...report,
    timing: {
      totalMs: Math.round(performance.now() - started),
      thumbnailsMs: Math.round(thumbnailsMs),
      compareMs: Math.round(compareMs),
      decoded: thumbs.decoded,
      thumbnailsFromCache: thumbs.fromCache,
      comparisonsFromCache,
      candidatePairs: similarity.candidates,
    },
  };
}

function pickSplit(names: string[], wanted: string | undefined, defaults: string[]): string | undefined {
  if (wanted !== undefined) {
    if (!names.includes(wanted)) throw new Error(`split '${wanted}' not found (have ${names.join(', ')})`);
    return wanted;
  }
  return defaults.find((d) => names.includes(d));
}

/** Hashes every file and gets each distinct content's thumbnail from the cache or by decoding. */
async function thumbnails(files: ImageFile[], cache: AuditCache, opts: AuditOptions) {
  const shas: (string | undefined)[] = new Array(files.length);
  const bySha = new Map<string, Uint8Array>();
  const pending = new Map<string, Promise<Uint8Array>>();
  const skipped: SkippedFile[] = [];
  let decoded = 0;
  let fromCache = 0;
  let done = 0;
  const one = async (k: number) => {
    const file = files[k];
    let bytes: Buffer;
    try {
      bytes = await readFile(file.absolute);
    } catch (err) {
      skipped.push({ path: file.path, reason: `cannot read: ${(err as Error).message}` });
      return;
    }
    const sha = createHash('sha256').update(bytes).digest('hex');
    let job = pending.get(sha);
    if (!job) {
      job = (async () => {
        const hit = await cache.getThumbnail(sha, THUMB_SIZE);
        if (hit) {
          fromCache++;
          return hit;
        }
        const thumb = await normalisedThumbnail(bytes);
        decoded++;
        await cache.putThumbnail(sha, thumb);
        return thumb;
      })();
      pending.set(sha, job);
    }
    try {
      bySha.set(sha, await job);
      shas[k] = sha;
    } catch (err) {
      skipped.push({ path: file.path, reason: (err as Error).message });
    }
  };
  const concurrency = opts.concurrency ?? Math.max(2, 2 * os.availableParallelism());
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const k = next++;
      await one(k);
      opts.onProgress?.(++done, files.length, 'images');
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  skipped.sort((a, b) => a.path.localeCompare(b.path));
  return { shas, bySha, skipped, decoded, fromCache };
}

type Assembled = Pick<
  AuditReport,
  'clusters' | 'pairs' | 'leakyTest' | 'labelConflicts' | 'nearMisses' | 'summary'
>;

/** Turns content-level matches into file-level pairs, clusters, leakage and label conflicts. */
function assemble(
  files: AuditedImage[],
  contents: string[],
  similarity: SimilarityResult,
  trainSplit: string | undefined,
  testSplit: string | undefined,
): Assembled {
  const bySha = new Map<string, number[]>();
  files.forEach((f, k) => {
    const list = bySha.get(f.sha256);
    if (list) list.push(k);
    else bySha.set(f.sha256, [k]);
  });
  const uf = new UnionFind(files.length);
  const pairs: AuditPair[] = [];
  const addPair = (x: number, y: number, kind: PairKind, correlation: number) => {
    const [a, b] = [files[x].path, files[y].path].sort();
    pairs.push({ a, b, kind, correlation: round(correlation) });
    uf.union(x, y);
  };
  for (const group of bySha.values()) {
    for (let p = 0; p < group.length; p++)
      for (let q = p + 1; q < group.length; q++) addPair(group[p], group[q], 'exact', 1);
  }
  const filesOf = (content: number) => bySha.get(contents[content]) ?? [];
  for (const s of similarity.same) {
    for (const x of filesOf(s.i)) {
      for (const y of filesOf(s.j)) addPair(x, y, s.mirrored ? 'mirrored' : 're-encoded', s.correlation);
    }
  }
  pairs.sort((p, q) => p.a.localeCompare(q.a) || p.b.localeCompare(q.b));

  const members = new Map<number, number[]>();
  files.forEach((_, k) => {
    const root = uf.find(k);
    const list = members.get(root);
    if (list) list.push(k);
    else members.set(root, [k]);
  });
  const groups = [...members.values()]
    .filter((g) => g.length > 1)
    .map((g) => g.sort((x, y) => files[x].path.localeCompare(files[y].path)))
    .sort((g, h) => files[g[0]].path.localeCompare(files[h[0]].path));

  const leakyTest: string[] = [];
  const labelConflicts: LabelConflict[] = [];
  for (const g of groups) {
    if (trainSplit && testSplit && g.some((k) => files[k].split === trainSplit)) {
      for (const k of g) if (files[k].split === testSplit) leakyTest.push(files[k].path);
    }
    if (new Set(g.map((k) => files[k].label)).size > 1) {
      labelConflicts.push({ paths: g.map((k) => files[k].path), labels: g.map((k) => files[k].label) });
    }
  }
  leakyTest.sort();

  const byPath = new Map(files.map((f) => [f.path, f]));
  const imagesPerSplit: AuditReport['summary']['imagesPerSplit'] = {};
  for (const f of files) {
    imagesPerSplit[f.split] ??= {};
    const split = imagesPerSplit[f.split];
    split[f.label] = (split[f.label] ?? 0) + 1;
  }
  const pairCounts: AuditReport['summary']['pairCounts'] = {};
  for (const p of pairs) {
    const a = byPath.get(p.a) as AuditedImage;
    const b = byPath.get(p.b) as AuditedImage;
    const splitKey = a.split === b.split ? a.split : [a.split, b.split].sort().join(' ~ ');
    const labelKey = a.label === b.label ? a.label : [a.label, b.label].sort().join(' ~ ');
    pairCounts[splitKey] ??= {};
    const bySplit = pairCounts[splitKey];
    bySplit[labelKey] ??= { exact: 0, 're-encoded': 0, mirrored: 0 };
    const counts = bySplit[labelKey];
    counts[p.kind]++;
  }
  const leakyTestPerLabel: Partial<Record<Label, number>> = {};
  for (const path of leakyTest) {
    const label = (byPath.get(path) as AuditedImage).label;
    leakyTestPerLabel[label] = (leakyTestPerLabel[label] ?? 0) + 1;
  }
  const imagesInClusters = groups.reduce((n, g) => n + g.length, 0);
  return {
    clusters: groups.map((g) => g.map((k) => files[k].path)),
    pairs,
    leakyTest,
    labelConflicts,
    nearMisses: similarity.nearMisses.flatMap((m) => {
      const [x, y] = [filesOf(m.i)[0], filesOf(m.j)[0]];
      if (x === undefined || y === undefined) return [];
      const { correlation, worstBlock, mirrored } = m;
      return [
        {
          a: files[x].path,
          b: files[y].path,
          mirrored,
          correlation: round(correlation),
          worstBlock: round(worstBlock),
        },
      ];
    }),
    summary: {
      imagesPerSplit,
      pairCounts,
      leakyTestPerLabel,
      clusters: groups.length,
      imagesInClusters,
      distinctScans: files.length - imagesInClusters + groups.length,
    },
  };
}

function round(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

export { defaultCacheDir } from './cache.ts';
export type { SkippedFile } from './files.ts';
