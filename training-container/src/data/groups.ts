import { auditSplits } from '../audit/index.ts';
import { clusterIdOf, leakFreeTest } from '../audit/split.ts';
import type { DecodedImages } from './decode.ts';

/**
 * Which images are copies of the same scan: the one place the split and the leak-free test
 * subset ask. `audit` uses the dataset audit's clusters (byte-identical, re-encoded/resized and
 * mirrored copies); `sha256` only catches byte-identical files but costs nothing.
 */
export type GroupingMethod = 'audit' | 'sha256';

export interface ScanGroups {
  method: string;
  /** Group id per image of the train set; equal ids = copies of one scan. */
  train: string[];
  /** Indices of test images with no copy in train, one per scan (when there is a test set). */
  leakFreeTest?: number[];
  /** Copies filed under different labels, as the audit found them (audit only). */
  labelConflicts?: number;
}

export interface Channel {
  dir: string;
  set: DecodedImages;
}

export async function groupScans(
  method: GroupingMethod,
  train: Channel,
  test: Channel | undefined,
  log: (line: string) => void,
): Promise<ScanGroups> {
  if (method === 'audit') {
    try {
      return await auditGroups(train, test);
    } catch (err) {
      log(`warning: dataset audit failed, grouping exact copies only: ${(err as Error).message}`);
    }
  }
  const trainIds = train.set.hashes;
  const seen = new Set(trainIds);
  const testIds = test?.set.hashes;
  return {
    method: 'sha256 of the file bytes (exact copies only)',
    train: trainIds,
    leakFreeTest: testIds
      ?.map((id, i) => (seen.has(id) || testIds.indexOf(id) !== i ? -1 : i))
      .filter((i) => i >= 0),
  };
}

async function auditGroups(train: Channel, test: Channel | undefined): Promise<ScanGroups> {
  const splits: Record<string, string> = { train: train.dir };
  if (test) splits.test = test.dir;
  const report = await auditSplits(splits, { trainSplit: 'train', testSplit: test ? 'test' : undefined });
  const idOf = clusterIdOf(report);
  let leakFree: number[] | undefined;
  if (test) {
    const paths = test.set.files.map((f) => `test/${f.relPath}`);
    const keep = new Set(leakFreeTest(report, paths));
    leakFree = paths.flatMap((p, i) => (keep.has(p) ? [i] : []));
  }
  return {
    method: 'dataset audit clusters (exact, re-encoded and mirrored copies)',
    train: train.set.files.map((f) => idOf(`train/${f.relPath}`)),
    leakFreeTest: leakFree,
    labelConflicts: report.labelConflicts.length,
  };
}
