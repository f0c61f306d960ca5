import * as tf from '@tensorflow/tfjs';
import { denseInit, efficientNetFeatures, seededInitialisers } from './efficientnet.ts';
import { type LoadedWeights, loadImagenetWeights } from './imagenet-weights.ts';
import { FlipTta, TtaMean } from './layers.ts';

export { KERAS_B0_NOTOP_URL, type LoadedWeights, loadImagenetWeights } from './imagenet-weights.ts';
export { ChannelScale, DropConnect, FlipTta, Normalization, TtaMean } from './layers.ts';

export interface ClassifierOptions {
  /** Square input size in pixels; inputs are raw RGB in [0, 255] (the model rescales itself). */
  imageSize: number;
  numClasses: number;
  /** Dropout before the final dense layer. Default 0.2 (Keras B0). */
  dropout?: number;
  /** Final stochastic-depth rate, ramped over the blocks. Default 0.2 (Keras). */
  dropConnect?: number;
  /** Width multiplier. Default 1.0 (B0); smaller values give tiny test models. */
  width?: number;
  /** Depth multiplier. Default 1.0 (B0). */
  depth?: number;
  /** `flip`: predictions average the image and its mirror (inside the model; training unaffected). Default none. */
  tta?: 'none' | 'flip';
  /** Seeds the random initial weights (same seed, same weights). Default: unseeded (Math.random). */
  seed?: number;
  /** Keras `efficientnetb0_notop.h5` path or URL; read by `createClassifier`, not `buildClassifier`. */
  weightsPath?: string;
}

/**
 * EfficientNetB0 (Keras layer names) + head: global average pooling -> dropout -> dense softmax.
 * Randomly initialised; see `createClassifier` for ImageNet weights.
 */
export function buildClassifier(opts: ClassifierOptions): tf.LayersModel {
  return seededInitialisers(opts.seed, () => build(opts));
}

function build(opts: ClassifierOptions): tf.LayersModel {
  const { imageSize, numClasses } = opts;
  if (!Number.isInteger(imageSize) || imageSize < 32)
    throw new Error(`imageSize must be an integer >= 32, got ${imageSize}`);
  if (!Number.isInteger(numClasses) || numClasses < 2)
    throw new Error(`numClasses must be an integer >= 2, got ${numClasses}`);
  const dropout = opts.dropout ?? 0.2;
  const input = tf.input({ shape: [imageSize, imageSize, 3], name: 'input_1' });
  const tta = opts.tta === 'flip';
  let x = tta ? (new FlipTta({ name: 'tta_flip' }).apply(input) as tf.SymbolicTensor) : input;
  x = efficientNetFeatures(x, {
    imageSize,
    width: opts.width,
    depth: opts.depth,
    dropConnect: opts.dropConnect,
  });
  x = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as tf.SymbolicTensor;
  if (dropout > 0)
    x = tf.layers.dropout({ rate: dropout, name: 'top_dropout' }).apply(x) as tf.SymbolicTensor;
  let output = tf.layers
    .dense({ units: numClasses, activation: 'softmax', kernelInitializer: denseInit(), name: 'predictions' })
    .apply(x) as tf.SymbolicTensor;
  if (tta) output = new TtaMean({ name: 'tta_mean' }).apply(output) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: 'efficientnetb0' });
}

/** `buildClassifier` plus, when `weightsPath` is set, the Keras ImageNet weights. */
export async function createClassifier(
  opts: ClassifierOptions,
): Promise<{ model: tf.LayersModel; weights?: LoadedWeights }> {
  const model = buildClassifier(opts);
  if (!opts.weightsPath) return { model };
  return { model, weights: await loadImagenetWeights(model, opts.weightsPath) };
}
