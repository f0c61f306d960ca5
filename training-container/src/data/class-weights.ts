/**
 * Keras/scikit-learn "balanced" class weights: n_samples / (n_classes * count). On the
 * reference's 2296 training images this gives glioma 0.864 ... no tumor 1.811. A class with no
 * images gets weight 0 (it never appears in a batch anyway).
 */
export function balancedClassWeights(counts: readonly number[]): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => (c > 0 ? total / (counts.length * c) : 0));
}

export function countLabels(
  labels: ArrayLike<number>,
  indices: readonly number[],
  numClasses: number,
): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (const i of indices) counts[labels[i]]++;
  return counts;
}
