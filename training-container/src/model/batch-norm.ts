import * as tf from '@tensorflow/tfjs';
import { BATCH_NORM_TRAINING, BATCH_NORM_TRAINING_GRAD } from '../engine/fused-kernels.ts';

/**
 * tfjs-layers' BatchNormalization with one optional fast path for training. tfjs computes the
 * batch statistics with `moments` (mean, subtract, square, mean) and then normalizes, and
 * backpropagates through each of those full-size ops separately: in EfficientNet that is the
 * largest share of a training step once convolutions are fast. A backend that registers the two
 * batch-norm kernels of ../engine/fused-kernels.ts gets the whole layer as one kernel forward and
 * one backward instead; every other backend, and inference, runs tfjs-layers' own code unchanged.
 *
 * The class keeps tfjs's class name and config, so a saved model is an ordinary tfjs-layers
 * model. Importing this module also registers it under that name, so models loaded with
 * `tf.loadLayersModel` (a resumed training job) get the fast path too.
 */

type BatchNormalizationArgs = Parameters<typeof tf.layers.batchNormalization>[0];
type TfjsBatchNormalization = ReturnType<typeof tf.layers.batchNormalization>;

// tfjs-layers does not export the class itself; its serialization registry has it.
const Base = tf.serialization.SerializationMap.getMap().classNameMap.BatchNormalization?.[0] as unknown as
  | (new (
      args?: BatchNormalizationArgs,
    ) => TfjsBatchNormalization)
  | undefined;
if (!Base) throw new Error('tfjs-layers did not register BatchNormalization');

/** The private fields of tfjs-layers' BatchNormalization this layer reads. */
interface Internals {
  axis: number;
  momentum: number;
  epsilon: number;
  gamma?: tf.LayerVariable;
  beta?: tf.LayerVariable;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
}

type Kwargs = Record<string, unknown>;

export class BatchNormalization extends Base {
  static className = 'BatchNormalization';

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const self = this as unknown as Internals;
    const lastAxis = self.axis === -1 || self.axis === x.rank - 1;
    if (
      kwargs.training !== true ||
      !lastAxis ||
      !self.gamma ||
      !self.beta ||
      x.dtype !== 'float32' ||
      !tf.getKernel(BATCH_NORM_TRAINING, tf.getBackend()) ||
      !tf.getKernel(BATCH_NORM_TRAINING_GRAD, tf.getBackend())
    ) {
      return super.call(inputs, kwargs);
    }
    const { gamma, beta } = self;
    return tf.tidy(() => {
      const [y, mean, variance] = batchNormTraining(x, gamma.read(), beta.read(), self.epsilon);
      // Keras' moving averages, as tfjs-layers updates them: v -= (v - batch) * (1 - momentum).
      for (const [moving, batch] of [
        [self.movingMean, mean],
        [self.movingVariance, variance],
      ] as const) {
        const current = moving.read();
        moving.write(tf.sub(current, tf.mul(tf.sub(current, batch), 1 - self.momentum)));
      }
      return y;
    });
  }
}

/** One kernel forward, one backward; returns [y, batch mean, batch variance]. */
function batchNormTraining(
  x: tf.Tensor,
  scale: tf.Tensor,
  offset: tf.Tensor,
  varianceEpsilon: number,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  let stats: tf.Tensor[] = [];
  // customGrad takes one output; the statistics leave through the closure (no gradient flows
  // through the moving averages, exactly as in tfjs-layers).
  const op = tf.customGrad(((x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, mean, variance] = tf
      .engine()
      .runKernel(BATCH_NORM_TRAINING, { x, scale, offset }, { varianceEpsilon }) as tf.Tensor[];
    save([x, mean, variance, scale]);
    stats = [mean, variance];
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sMean, sVariance, sScale] = saved;
        return tf
          .engine()
          .runKernel(
            BATCH_NORM_TRAINING_GRAD,
            { dy, x: sx, mean: sMean, variance: sVariance, scale: sScale },
            { varianceEpsilon },
          ) as tf.Tensor[];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (...t: tf.Tensor[]) => tf.Tensor;
  const y = op(x, scale, offset);
  return [y, stats[0], stats[1]];
}

tf.serialization.registerClass(
  BatchNormalization as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>,
);
