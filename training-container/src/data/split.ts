import { groupedStratifiedSplit as splitByGroup } from '../audit/split.ts';

export interface Split {
  /** Indices into the dataset. */
  train: number[];
  validation: number[];
}

/**
 * The trainer's view of the audit's grouped split: stratified by class, seeded, and never
 * separating a group (every copy of a scan lands on the same side), over dataset indices.
 */
export function groupedStratifiedSplit(
  labels: ArrayLike<number>,
  groups: readonly string[],
  fraction: number,
  seed: number,
): Split {
  if (labels.length !== groups.length) throw new Error('labels and groups differ in length');
  const items = groups.map((group, index) => ({ index, group, label: String(labels[index]) }));
  const { train, validation } = splitByGroup(items, fraction, seed);
  const indices = (xs: { index: number }[]) => xs.map((x) => x.index).sort((a, b) => a - b);
  return { train: indices(train), validation: indices(validation) };
}
