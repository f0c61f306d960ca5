import { describe, expect, it } from 'vitest';
import { cosineRate, epochsThatFit } from '../../training-container/src/train/loop.ts';

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

describe('epochsThatFit', () => {
  it('counts the epochs done plus those the time left holds, with 5 % to spare, within [done, max]', () => {
    // 11 minutes, 60 s gone after a 49-s first epoch: 600 / 51.45 = 11 more.
    expect(epochsThatFit(600, 49, 1, 15)).toBe(12);
    // After a 38-s second epoch with 550 s left: 550 / 39.9 = 13 more, capped at 15.
    expect(epochsThatFit(550, 38, 2, 15)).toBe(15);
    expect(epochsThatFit(400, 38, 2, 15)).toBe(12);
    // Past the limit already: the schedule ends with the epochs done.
    expect(epochsThatFit(-5, 38, 2, 15)).toBe(2);
  });
});
