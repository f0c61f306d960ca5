import { describe, expect, it } from 'vitest';
import type { AuditReport } from '../../training-container/src/audit/index.ts';
import {
  clusterIdOf,
  groupedStratifiedSplit,
  leakFreeTest,
  mulberry32,
} from '../../training-container/src/audit/split.ts';

const LABELS = ['glioma', 'meningioma', 'notumor', 'pituitary'];

/** Items in groups of 1-6 (a few groups mix labels, like label conflicts), uneven class sizes. */
function makeItems(seed: number) {
  const random = mulberry32(seed);
  const items: { id: number; label: string; group: string }[] = [];
  let id = 0;
  for (let g = 0; g < 300; g++) {
    const size = 1 + Math.floor(random() ** 3 * 6);
    const label = LABELS[Math.floor(random() * random() * 4)];
    for (let k = 0; k < size; k++) {
      const mixed = random() < 0.03;
      items.push({
        id: id++,
        label: mixed ? LABELS[(LABELS.indexOf(label) + 1) % 4] : label,
        group: `g${g}`,
      });
    }
  }
  return items;
}

describe('groupedStratifiedSplit', () => {
  const items = makeItems(7);

  it('never puts one group on both sides and loses no item', () => {
    const { train, validation } = groupedStratifiedSplit(items, 0.2, 42);
    const trainGroups = new Set(train.map((i) => i.group));
    expect(validation.some((i) => trainGroups.has(i.group))).toBe(false);
    expect([...train, ...validation].map((i) => i.id).sort((a, b) => a - b)).toEqual(items.map((i) => i.id));
  });

  it('gives every label about the requested validation share', () => {
    const { validation } = groupedStratifiedSplit(items, 0.2, 42);
    for (const label of LABELS) {
      const total = items.filter((i) => i.label === label).length;
      const held = validation.filter((i) => i.label === label).length;
      expect(Math.abs(held - 0.2 * total)).toBeLessThanOrEqual(Math.max(2, 0.02 * total));
    }
  });

  it('is deterministic for a seed and differs between seeds', () => {
    const ids = (seed: number) => groupedStratifiedSplit(items, 0.2, seed).validation.map((i) => i.id);
    expect(ids(42)).toEqual(ids(42));
    expect(ids(42)).not.toEqual(ids(43));
    // Input order does not matter, only the seed.
    const shuffledIds = groupedStratifiedSplit([...items].reverse(), 0.2, 42)
      .validation.map((i) => i.id)
      .sort((a, b) => a - b);
    expect(shuffledIds).toEqual([...ids(42)].sort((a, b) => a - b));
  });

  it('rejects a fraction outside [0, 1)', () => {
    expect(() => groupedStratifiedSplit(items, 1, 1)).toThrow(/validationFraction/);
  });
});

describe('clusterIdOf and leakFreeTest', () => {
  const report = {
    clusters: [
      ['Testing/glioma/a.jpg', 'Training/glioma/a.jpg'],
      ['Testing/glioma/b.jpg', 'Testing/glioma/b2.jpg'],
    ],
    leakyTest: ['Testing/glioma/a.jpg'],
    testSplit: 'Testing',
    files: [
      'Testing/glioma/a.jpg',
      'Testing/glioma/b.jpg',
      'Testing/glioma/b2.jpg',
      'Testing/glioma/c.jpg',
    ].map((path) => ({ path, split: 'Testing', label: 'glioma' as const, sha256: path })),
  } as unknown as AuditReport;

  it('shares an id inside a cluster and gives singletons their own', () => {
    const id = clusterIdOf(report);
    expect(id('Testing/glioma/a.jpg')).toBe(id('Training/glioma/a.jpg'));
    expect(id('Testing/glioma/b.jpg')).not.toBe(id('Testing/glioma/a.jpg'));
    expect(id('Testing/glioma/c.jpg')).not.toBe(id('Testing/glioma/d.jpg'));
  });

  it('drops leaky test images and keeps one image per cluster', () => {
    expect(leakFreeTest(report)).toEqual(['Testing/glioma/b.jpg', 'Testing/glioma/c.jpg']);
    expect(leakFreeTest(report, ['Testing/glioma/c.jpg', 'Testing/glioma/b2.jpg'])).toEqual([
      'Testing/glioma/c.jpg',
      'Testing/glioma/b2.jpg',
    ]);
  });
});
