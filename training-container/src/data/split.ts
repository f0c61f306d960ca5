import { deriveRng, shuffle } from './rng.ts';

export interface Split {
  /** Indices into the dataset. */
  train: number[];
  validation: number[];
}

/**
 * Stratified, seeded train/validation split that never separates a group: every copy of a scan
 * (same group id) lands on the same side, so validation measures generalisation rather than
 * memory. Per class, whole groups are drawn in seeded random order until the validation share
 * reaches `fraction` of that class; a group counts under the label of its first member.
 */
export function groupedStratifiedSplit(
  labels: ArrayLike<number>,
  groups: readonly string[],
  fraction: number,
  seed: number,
): Split {
  if (labels.length !== groups.length) throw new Error('labels and groups differ in length');
  const members = new Map<string, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const list = members.get(groups[i]);
    if (list) list.push(i);
    else members.set(groups[i], [i]);
  }
  const byClass = new Map<number, number[][]>();
  for (const list of members.values()) {
    const label = labels[list[0]];
    byClass.set(label, [...(byClass.get(label) ?? []), list]);
  }
  const train: number[] = [];
  const validation: number[] = [];
  for (const label of [...byClass.keys()].sort((a, b) => a - b)) {
    const classGroups = byClass.get(label) ?? [];
    const total = classGroups.reduce((n, g) => n + g.length, 0);
    const target = Math.round(total * fraction);
    let taken = 0;
    for (const group of shuffle(classGroups, deriveRng(seed, 0x5eed, label))) {
      if (taken < target) {
        validation.push(...group);
        taken += group.length;
      } else {
        train.push(...group);
      }
    }
  }
  return { train: train.sort((a, b) => a - b), validation: validation.sort((a, b) => a - b) };
}
