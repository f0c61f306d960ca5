import { describe, expect, it } from 'vitest';
import { cosineRate } from '../../training-container/src/train/loop.ts';

describe('cosine learning-rate schedule with warm-up', () => {
  const base = 0.002;
  const min = 1e-5;

  it('ramps linearly over the warm-up steps, reaching the base rate at its end', () => {
    expect(cosineRate(base, min, 0, 10, 100)).toBeCloseTo(base / 10, 12);
    expect(cosineRate(base, min, 4, 10, 100)).toBeCloseTo(base / 2, 12);
    expect(cosineRate(base, min, 10, 10, 100)).toBeCloseTo(base, 12);
  });

  it('decays along half a cosine to the minimum at the last step', () => {
    expect(cosineRate(base, min, 55, 10, 100)).toBeCloseTo((base + min) / 2, 12);
    expect(cosineRate(base, min, 100, 10, 100)).toBeCloseTo(min, 12);
    expect(cosineRate(base, min, 150, 10, 100)).toBeCloseTo(min, 12);
    const rates = Array.from({ length: 90 }, (_, i) => cosineRate(base, min, 10 + i, 10, 100));
    for (let i = 1; i < rates.length; i++) expect(rates[i]).toBeLessThan(rates[i - 1]);
  });

  it('starts at the base rate without warm-up', () => {
    expect(cosineRate(base, min, 0, 0, 100)).toBeCloseTo(base, 12);
  });
});
