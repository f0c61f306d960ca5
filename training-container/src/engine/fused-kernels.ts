/**
 * Kernels a backend may provide to speed up a whole layer or optimizer step at once. The model and
 * the trainer use them only when the active backend registers them (`tf.getKernel(name,
 * backend)`), and otherwise run plain tfjs ops, so every engine works without them. The onednn
 * engine implements all of them natively.
 */

/**
 * Batch-norm in training. Inputs `{x, scale, offset}` (per-channel on x's last axis), attr
 * `varianceEpsilon`; outputs `[y, mean, variance]`: the batch's mean and biased variance over all
 * but the last axis (as `tf.moments`) and y = (x - mean) / sqrt(variance + eps) * scale + offset.
 */
export const BATCH_NORM_TRAINING = 'BatchNormTraining';

/**
 * Gradient of BATCH_NORM_TRAINING. Inputs `{dy, x, mean, variance, scale}`, attr
 * `varianceEpsilon`; outputs `[dx, dScale, dOffset]`, dx including the paths through the batch
 * statistics.
 */
export const BATCH_NORM_TRAINING_GRAD = 'BatchNormTrainingGrad';

/**
 * One Adam update of one variable, tfjs's formula in float32. Inputs `{value, gradient, m, v,
 * accBeta1, accBeta2}` (the last two scalars: beta^t before this step's update); attrs
 * `{learningRate, beta1, beta2, epsilon}`; outputs `[value', m', v']`:
 *   m' = beta1 m + (1 - beta1) g            v' = beta2 v + (1 - beta2) g^2
 *   value' = value - lr (m' / (1 - accBeta1)) / (sqrt(v' / (1 - accBeta2)) + epsilon)
 */
export const ADAM_UPDATE = 'AdamUpdate';
