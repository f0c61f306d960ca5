import * as tf from '@tensorflow/tfjs';

/**
 * Custom layers EfficientNet needs that tfjs-layers lacks. Each is registered with
 * `tf.serialization.registerClass` on import, so `tf.loadLayersModel` (the server's `loadModel`)
 * can rebuild a saved model: anything that loads a model must import this module first.
 */

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
type Kwargs = Record<string, unknown>;

function single(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0] : inputs;
}

export interface DropConnectArgs extends LayerArgs {
  /** Probability of dropping a sample's whole residual branch. */
  rate: number;
}

/**
 * Stochastic depth ("drop connect" in the EfficientNet paper): during training, zero the residual
 * branch for a random subset of samples and rescale the rest, i.e. Keras'
 * `Dropout(rate, noise_shape=(None, 1, 1, 1))`. Identity at inference.
 */
export class DropConnect extends tf.layers.Layer {
  static className = 'DropConnect';
  readonly rate: number;

  constructor(args: DropConnectArgs) {
    super(args);
    if (!(args.rate >= 0 && args.rate < 1))
      throw new Error(`DropConnect rate must be in [0, 1), got ${args.rate}`);
    this.rate = args.rate;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = single(inputs);
      if (kwargs.training !== true || this.rate === 0) return x;
      const keep = 1 - this.rate;
      const maskShape = [x.shape[0], ...x.shape.slice(1).map(() => 1)];
      // floor(keep + U[0,1)) is 1 with probability `keep`, else 0.
      const mask = tf.floor(tf.add(keep, tf.randomUniform(maskShape)));
      return tf.mul(x, tf.div(mask, keep));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), rate: this.rate };
  }
}

/** ImageNet channel statistics of RGB in [0, 1], as Keras' efficientnet.py uses them. */
export const IMAGENET_MEAN_RGB = [0.485, 0.456, 0.406];
export const IMAGENET_STDDEV_RGB = [0.229, 0.224, 0.225];

export interface NormalizationArgs extends LayerArgs {
  /** Per-channel mean; default ImageNet's. */
  mean?: number[];
  /** Per-channel variance; default ImageNet's (stddev squared). */
  variance?: number[];
}

/**
 * Keras' `Normalization(axis=-1)`: (x - mean) / sqrt(variance) over the last axis, with mean,
 * variance and count as non-trainable weights named as Keras names them, so the parameter count
 * matches Keras B0 and the ImageNet h5 file can overwrite them.
 */
export class Normalization extends tf.layers.Layer {
  static className = 'Normalization';
  private readonly initialMean: number[];
  private readonly initialVariance: number[];
  private meanWeight?: tf.LayerVariable;
  private varianceWeight?: tf.LayerVariable;

  constructor(args: NormalizationArgs = {}) {
    super(args);
    this.initialMean = args.mean ?? IMAGENET_MEAN_RGB;
    this.initialVariance = args.variance ?? IMAGENET_STDDEV_RGB.map((s) => s * s);
    if (this.initialMean.length !== this.initialVariance.length) {
      throw new Error('Normalization: mean and variance must have the same length');
    }
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const channels = shape[shape.length - 1];
    if (channels !== this.initialMean.length) {
      throw new Error(
        `Normalization: input has ${channels} channels, statistics have ${this.initialMean.length}`,
      );
    }
    this.meanWeight = this.addWeight(
      'mean',
      [channels],
      'float32',
      tf.initializers.zeros(),
      undefined,
      false,
    );
    this.varianceWeight = this.addWeight(
      'variance',
      [channels],
      'float32',
      tf.initializers.ones(),
      undefined,
      false,
    );
    tf.tidy(() => {
      this.meanWeight?.write(tf.tensor1d(this.initialMean));
      this.varianceWeight?.write(tf.tensor1d(this.initialVariance));
    });
    // Keras keeps the number of samples `adapt()` saw; unused here but part of the weights.
    this.addWeight('count', [], 'float32', tf.initializers.zeros(), undefined, false);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = single(inputs);
      const mean = (this.meanWeight as tf.LayerVariable).read();
      const std = tf.maximum(tf.sqrt((this.varianceWeight as tf.LayerVariable).read()), 1e-7);
      return tf.div(tf.sub(x, mean), std);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), mean: this.initialMean, variance: this.initialVariance };
  }
}

export interface ChannelScaleArgs extends LayerArgs {
  scale: number[];
}

/**
 * Keras' `Rescaling(scale=[...])` with one factor per channel (tfjs' Rescaling takes a scalar).
 * EfficientNet divides by sqrt(stddev) once more after normalising, to reproduce the input
 * scaling the ImageNet weights were trained with (tensorflow/tensorflow#49930).
 */
export class ChannelScale extends tf.layers.Layer {
  static className = 'ChannelScale';
  readonly scale: number[];

  constructor(args: ChannelScaleArgs) {
    super(args);
    this.scale = args.scale;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => tf.mul(single(inputs), tf.tensor1d(this.scale)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), scale: this.scale };
  }
}

/**
 * Flip test-time augmentation inside the model, so every consumer of a saved model (validation,
 * evaluation, the server) averages the same two views without knowing about it. At inference
 * `FlipTta` stacks each image and its mirror along the batch axis and `TtaMean` averages the two
 * halves of the output; in training both are the identity (training batches are flipped at random
 * already, and batch-norm must not see each image twice).
 */
export class FlipTta extends tf.layers.Layer {
  static className = 'FlipTta';

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = single(inputs);
      if (kwargs.training === true) return x;
      return tf.concat([x, tf.reverse(x, 2)], 0);
    });
  }
}

export class TtaMean extends tf.layers.Layer {
  static className = 'TtaMean';

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = single(inputs);
      if (kwargs.training === true) return x;
      const [a, b] = tf.split(x, 2, 0);
      return tf.div(tf.add(a, b), 2);
    });
  }
}

tf.serialization.registerClass(FlipTta);
tf.serialization.registerClass(TtaMean);
tf.serialization.registerClass(DropConnect);
tf.serialization.registerClass(Normalization);
tf.serialization.registerClass(ChannelScale);
