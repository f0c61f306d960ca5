import { createRng, shuffle } from '../data/rng.ts';
import type { AuditReport } from './index.ts';

/** The seeded PRNG of the whole container, under the name the audit's callers know. */
export { createRng as mulberry32 };

/**
 * Splits that respect the audit's clusters: no scan (or any copy of it) on both sides.
 */

/**
 * Maps a report path to its cluster id. Copies share an id (`cluster:<n>`); an image in no cluster
 * (or unknown to the report) is its own group, keyed by its path.
 */
export function clusterIdOf(report: Pick<AuditReport, 'clusters'>): (path: string) => string {
  const ids = new Map<string, string>();
  report.clusters.forEach((members, n) => {
    for (const p of members) ids.set(p, `cluster:${n}`);
  });
  return (path) => ids.get(path) ?? `image:${path}`;
}

/**
 * Splits items into train and validation so that every group lands wholly on one side, each label
 * gets about `validationFraction` of its items in validation, and the same seed gives the same split.
 *
 * Groups are visited in a seeded random order (so validation is not biased towards large
 * clusters) and each goes to validation when that brings the per-label validation counts closer
 * to their targets; a group mixing labels (a label conflict) counts towards each of its labels.
 */
export function groupedStratifiedSplit<T extends { label: string; group: string }>(
  items: readonly T[],
  validationFraction: number,
  seed: number,
): { train: T[]; validation: T[] } {
  if (!(validationFraction >= 0 && validationFraction < 1)) {
    throw new Error(`validationFraction must be in [0, 1), got ${validationFraction}`);
  }
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const g = groups.get(item.group);
    if (g) g.push(item);
    else groups.set(item.group, [item]);
  }
  const target = new Map<string, number>();
  for (const item of items) target.set(item.label, (target.get(item.label) ?? 0) + validationFraction);
  const taken = new Map<string, number>();

  // Sorting the keys first makes the order depend on the seed only, not on the input order.
  const order = shuffle([...groups.keys()].sort(), createRng(seed));
  const validationGroups = new Set<string>();
  for (const key of order) {
    const members = groups.get(key) as T[];
    const add = new Map<string, number>();
    for (const m of members) add.set(m.label, (add.get(m.label) ?? 0) + 1);
    let before = 0;
    let after = 0;
    for (const [label, n] of add) {
      const t = target.get(label) ?? 0;
      const have = taken.get(label) ?? 0;
      before += Math.abs(t - have);
      after += Math.abs(t - have - n);
    }
    // Ties go to validation, as rounding half up would (a 1.5-image target takes 2).
    if (after <= before) {
      validationGroups.add(key);
      for (const [label, n] of add) taken.set(label, (taken.get(label) ?? 0) + n);
    }
  }
  const train: T[] = [];
  const validation: T[] = [];
  for (const item of items) (validationGroups.has(item.group) ? validation : train).push(item);
  return { train, validation };
}

/**
 * The leak-free view of the test split: test images with no copy in the train split, keeping one
 * image (the first path) per cluster so no scan is counted twice. `testPaths` defaults to every
 * test-split image in the report; order is preserved.
 */
export function leakFreeTest(report: AuditReport, testPaths?: readonly string[]): string[] {
  const paths = testPaths ?? report.files.filter((f) => f.split === report.testSplit).map((f) => f.path);
  const leaky = new Set(report.leakyTest);
  const idOf = clusterIdOf(report);
  const seen = new Set<string>();
  const out: string[] = [];
  for (const p of [...paths].sort()) {
    const id = idOf(p);
    if (leaky.has(p) || seen.has(id)) continue;
    seen.add(id);
    out.push(p);
  }
  const keep = new Set(out);
  return paths.filter((p) => keep.has(p));
}
