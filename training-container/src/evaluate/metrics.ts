import { argmax } from './predict.ts';

export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/** The evaluation summary; `brain-tumor evaluate --json` writes exactly this shape. */
export interface Metrics {
  n: number;
  accuracy: number;
  /** Mean recall over the classes present (scikit-learn's balanced_accuracy_score). */
  balancedAccuracy: number;
  perClass: Record<string, ClassMetrics>;
  confusionMatrix: { labels: string[]; matrix: number[][] };
}

/** Rows are true labels, columns predictions. */
export function confusionMatrix(truth: ArrayLike<number>, predicted: ArrayLike<number>, numClasses: number) {
  const matrix = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < truth.length; i++) matrix[truth[i]][predicted[i]]++;
  return matrix;
}

/** Everything else follows from the confusion matrix; undefined ratios (0/0) count as 0. */
export function metricsFromConfusion(matrix: number[][], labels: readonly string[]): Metrics {
  const k = labels.length;
  const n = matrix.flat().reduce((a, b) => a + b, 0);
  const diagonal = matrix.reduce((sum, row, i) => sum + row[i], 0);
  const perClass: Record<string, ClassMetrics> = {};
  const recalls: number[] = [];
  for (let c = 0; c < k; c++) {
    const support = matrix[c].reduce((a, b) => a + b, 0);
    const predicted = matrix.reduce((sum, row) => sum + row[c], 0);
    const tp = matrix[c][c];
    const precision = ratio(tp, predicted);
    const recall = ratio(tp, support);
    const f1 = ratio(2 * precision * recall, precision + recall);
    perClass[labels[c]] = { precision, recall, f1, support };
    if (support > 0) recalls.push(recall);
  }
  return {
    n,
    accuracy: ratio(diagonal, n),
    balancedAccuracy: ratio(
      recalls.reduce((a, b) => a + b, 0),
      recalls.length,
    ),
    perClass,
    confusionMatrix: { labels: [...labels], matrix: matrix.map((row) => [...row]) },
  };
}

/** Metrics of row-major probabilities `[n, labels.length]` against true label indices. */
export function metricsFromProbabilities(
  probs: Float32Array,
  truth: ArrayLike<number>,
  labels: readonly string[],
): Metrics {
  const k = labels.length;
  const predicted = Array.from({ length: truth.length }, (_, i) =>
    argmax(probs.subarray(i * k, (i + 1) * k)),
  );
  return metricsFromConfusion(confusionMatrix(truth, predicted, k), labels);
}

/** `metricsFromProbabilities` on the rows `subset` picks (the leak-free part of a test set). */
export function metricsOfSubset(
  probs: Float32Array,
  truth: ArrayLike<number>,
  subset: readonly number[],
  labels: readonly string[],
): Metrics {
  const k = labels.length;
  const picked = new Float32Array(subset.length * k);
  subset.forEach((idx, j) => {
    picked.set(probs.subarray(idx * k, (idx + 1) * k), j * k);
  });
  return metricsFromProbabilities(
    picked,
    subset.map((i) => truth[i]),
    labels,
  );
}

export interface WrongPrediction {
  file: string;
  label: string;
  predicted: string;
  /** Probability the model gave its (wrong) prediction. */
  confidence: number;
}

/** The misclassified files the model was surest about: where label noise and leaks show up. */
export function mostConfidentlyWrong(
  probs: Float32Array,
  truth: ArrayLike<number>,
  files: readonly string[],
  labels: readonly string[],
  limit = 20,
): WrongPrediction[] {
  const k = labels.length;
  const wrong: WrongPrediction[] = [];
  for (let i = 0; i < truth.length; i++) {
    const row = probs.subarray(i * k, (i + 1) * k);
    const p = argmax(row);
    if (p !== truth[i])
      wrong.push({ file: files[i], label: labels[truth[i]], predicted: labels[p], confidence: row[p] });
  }
  return wrong.sort((a, b) => b.confidence - a.confidence).slice(0, limit);
}

function ratio(a: number, b: number): number {
  return b === 0 ? 0 : a / b;
}
