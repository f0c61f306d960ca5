import { describe, expect, it } from 'vitest';
import { augmentInto } from '../../training-container/src/data/augment.ts';
import { balancedClassWeights } from '../../training-container/src/data/class-weights.ts';
import { groupedStratifiedSplit } from '../../training-container/src/data/split.ts';

/** 4 classes of 50 images; every 3rd image has 1-3 copies (same group id) in the same class. */
function dataset() {
  const labels: number[] = [];
  const groups: string[] = [];
  for (let c = 0; c < 4; c++) {
    for (let i = 0; i < 50; i++) {
      const copies = i % 3 === 0 ? 1 + (i % 4) : 0;
      for (let k = 0; k <= copies; k++) {
        labels.push(c);
        groups.push(`c${c}-scan${i}`);
      }
    }
  }
  return { labels, groups };
}

describe('groupedStratifiedSplit', () => {
  it('never puts copies of one scan on both sides', () => {
    const { labels, groups } = dataset();
    const split = groupedStratifiedSplit(labels, groups, 0.2, 7);
    const trainGroups = new Set(split.train.map((i) => groups[i]));
    const crossing = split.validation.filter((i) => trainGroups.has(groups[i]));
    expect(crossing).toEqual([]);
    expect(split.train.length + split.validation.length).toBe(labels.length);
    expect(new Set([...split.train, ...split.validation]).size).toBe(labels.length);
  });

  it('is stratified and close to the requested fraction in every class', () => {
    const { labels, groups } = dataset();
    const split = groupedStratifiedSplit(labels, groups, 0.2, 7);
    for (let c = 0; c < 4; c++) {
      const total = labels.filter((l) => l === c).length;
      const val = split.validation.filter((i) => labels[i] === c).length;
      expect(Math.abs(val / total - 0.2)).toBeLessThan(0.05);
    }
  });

  it('is reproducible for a seed and differs between seeds', () => {
    const { labels, groups } = dataset();
    expect(groupedStratifiedSplit(labels, groups, 0.2, 7)).toEqual(
      groupedStratifiedSplit(labels, groups, 0.2, 7),
    );
    expect(groupedStratifiedSplit(labels, groups, 0.2, 7).validation).not.toEqual(
      groupedStratifiedSplit(labels, groups, 0.2, 8).validation,
    );
  });
});

describe('class weights', () => {
  it('reproduces the reference weights from its split counts', () => {
    // The reference's 2296 training images; its reported weights were 0.864 0.859 1.811 0.887.
    const w = balancedClassWeights([664, 668, 317, 647]);
    expect(w.map((x) => Number(x.toFixed(3)))).toEqual([0.864, 0.859, 1.811, 0.887]);
  });
});

describe('augmentInto', () => {
  const size = 8;
  const src = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) src.fill(x * 30, (y * size + x) * 3, (y * size + x + 1) * 3);

  it('copies exactly when every transform is off', () => {
    const out = new Float32Array(src.length);
    augmentInto(src, size, out, 0, { rotationDeg: 0, flip: false, zoom: 0, shift: 0 }, Math.random);
    expect(Array.from(out)).toEqual(Array.from(src));
  });

  it('mirrors left-right when the flip is drawn', () => {
    const out = new Float32Array(src.length);
    augmentInto(src, size, out, 0, { rotationDeg: 0, flip: true, zoom: 0, shift: 0 }, () => 0.25);
    for (let x = 0; x < size; x++) expect(out[(3 * size + x) * 3]).toBeCloseTo((size - 1 - x) * 30, 4);
  });

  it('rotates 90 degrees about the centre', () => {
    const out = new Float32Array(src.length);
    // rng 1.0 draws the maximum angle: +90 degrees.
    augmentInto(src, size, out, 0, { rotationDeg: 90, flip: false, zoom: 0, shift: 0 }, () => 1);
    const column = Array.from({ length: size }, (_, y) => Math.round(out[(y * size + 2) * 3]));
    const row = Array.from({ length: size }, (_, x) => Math.round(out[(2 * size + x) * 3]));
    // The horizontal gradient becomes vertical: constant along rows, varying down a column.
    expect(new Set(row).size).toBe(1);
    expect(new Set(column).size).toBe(size);
  });
});
