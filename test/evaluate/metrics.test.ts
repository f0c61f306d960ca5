import { describe, expect, it } from 'vitest';
import {
  confusionMatrix,
  metricsFromConfusion,
  metricsFromProbabilities,
  mostConfidentlyWrong,
} from '../../training-container/src/evaluate/metrics.ts';

const LABELS = ['glioma', 'meningioma', 'notumor', 'pituitary'];

describe('metrics', () => {
  // Rows = truth, columns = prediction. Worked by hand:
  //   glioma:     tp 25, support 100, predicted 26  -> recall .25,   precision 25/26
  //   meningioma: tp 110, support 115, predicted 170 -> recall 110/115, precision 110/170
  //   notumor:    tp 105, support 105, predicted 145 -> recall 1,     precision 105/145
  //   pituitary:  tp 48, support 74, predicted 53    -> recall 48/74, precision 48/53
  const matrix = [
    [25, 40, 30, 5],
    [0, 110, 5, 0],
    [0, 0, 105, 0],
    [1, 20, 5, 48],
  ];

  it('derives accuracy, balanced accuracy and per-class scores from a confusion matrix', () => {
    const m = metricsFromConfusion(matrix, LABELS);
    expect(m.n).toBe(394);
    expect(m.accuracy).toBeCloseTo(288 / 394, 10);
    expect(m.balancedAccuracy).toBeCloseTo((0.25 + 110 / 115 + 1 + 48 / 74) / 4, 10);
    expect(m.perClass.glioma).toEqual({
      precision: expect.closeTo(25 / 26, 10),
      recall: 0.25,
      f1: expect.closeTo((2 * (25 / 26) * 0.25) / (25 / 26 + 0.25), 10),
      support: 100,
    });
    expect(m.perClass.notumor.recall).toBe(1);
    expect(m.perClass.notumor.precision).toBeCloseTo(105 / 145, 10);
    expect(m.perClass.pituitary.support).toBe(74);
    expect(m.confusionMatrix).toEqual({ labels: LABELS, matrix });
  });

  it('counts 0/0 as 0 and leaves absent classes out of the balanced accuracy', () => {
    const m = metricsFromConfusion(
      [
        [2, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
      ],
      LABELS,
    );
    expect(m.perClass.notumor).toEqual({ precision: 0, recall: 0, f1: 0, support: 0 });
    expect(m.balancedAccuracy).toBeCloseTo((1 + 0.5) / 2, 10);
  });

  it('builds the matrix from probabilities and ranks the most confident mistakes', () => {
    const probs = Float32Array.from([
      0.7, 0.1, 0.1, 0.1, 0.1, 0.2, 0.6, 0.1, 0.05, 0.9, 0.03, 0.02, 0.1, 0.1, 0.1, 0.7,
    ]);
    const truth = [0, 1, 2, 3];
    expect(confusionMatrix(truth, [0, 2, 1, 3], 4)[1][2]).toBe(1);
    const m = metricsFromProbabilities(probs, truth, LABELS);
    expect(m.accuracy).toBe(0.5);
    expect(m.confusionMatrix.matrix[2][1]).toBe(1);
    const wrong = mostConfidentlyWrong(probs, truth, ['a', 'b', 'c', 'd'], LABELS);
    expect(wrong.map((w) => [w.file, w.label, w.predicted])).toEqual([
      ['c', 'notumor', 'meningioma'],
      ['b', 'meningioma', 'notumor'],
    ]);
    expect(wrong[0].confidence).toBeCloseTo(0.9, 6);
  });
});
