import * as tf from '@tensorflow/tfjs';

/**
 * A leaner gradient for FusedBatchNorm with per-channel statistics (what tfjs-layers'
 * BatchNormalization produces). tfjs-core 4.22's gradient tiles 1/sqrt(variance) to the full
 * activation size and computes several full-size products it may not need; on the wasm engine
 * Tile alone was a quarter of an EfficientNetB0 training step. Here every per-channel factor is
 * folded first, so each input's gradient costs one or two full-size passes. Same mathematics,
 * so it is registered for every backend; other ranks fall back to the stock gradient.
 */

let stock: tf.GradConfig | undefined;

function leanGrad(
  dy: tf.Tensor,
  saved: tf.Tensor[],
  attrs: tf.NamedAttrMap,
): Record<string, () => tf.Tensor> {
  const [x, mean, variance, scale] = saved;
  if (mean.rank !== 1 || !stock)
    return (stock as tf.GradConfig).gradFunc(dy, saved, attrs) as Record<string, () => tf.Tensor>;
  const { varianceEpsilon } = attrs as unknown as tf.FusedBatchNormAttrs;
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const rsqrtVar = tf.rsqrt(tf.add(variance, varianceEpsilon));
  const gamma = scale ?? tf.scalar(1);
  // Each thunk runs in its own tidy (tfjs disposes everything else it made), so the two
  // reductions are recomputed where needed rather than shared; thunks run only for inputs
  // that need a gradient (a frozen layer asks for x alone: one pass).
  const dyCenteredSum = () => tf.sum(tf.mul(dy, tf.sub(x, mean)), axes);
  return {
    x: () => tf.mul(dy, tf.mul(rsqrtVar, gamma)),
    mean: () => tf.neg(tf.mul(tf.sum(dy, axes), tf.mul(rsqrtVar, gamma))),
    variance: () => tf.mul(dyCenteredSum(), tf.mul(tf.pow(rsqrtVar, 3), tf.mul(gamma, -0.5))),
    scale: () => tf.mul(dyCenteredSum(), rsqrtVar),
    offset: () => tf.sum(dy, axes),
  };
}

/** Replaces the FusedBatchNorm gradient (process-wide, idempotent). */
export function registerLeanBatchNormGradient(): void {
  if (stock) return;
  stock = tf.getGradient('FusedBatchNorm');
  if (!stock) return;
  tf.registerGradient({
    kernelName: 'FusedBatchNorm',
    inputsToSave: ['x', 'mean', 'variance', 'scale'],
    gradFunc: leanGrad as tf.GradConfig['gradFunc'],
  });
}

/** Puts tfjs' own gradient back (tests compare the two). */
export function restoreStockBatchNormGradient(): void {
  if (!stock) return;
  tf.registerGradient(stock);
  stock = undefined;
}
