import * as tf from '@tensorflow/tfjs';
import { BatchNormalization } from './batch-norm.ts';
import { ChannelScale, DropConnect, IMAGENET_STDDEV_RGB, Normalization } from './layers.ts';

/**
 * EfficientNet in tfjs-layers, following Keras `applications/efficientnet.py` layer for layer so
 * that layer names (and therefore the ImageNet h5 weights) match: `stem_conv`, `block1a_dwconv`,
 * `block2a_expand_conv`, ..., `top_conv`.
 */

interface BlockArgs {
  kernelSize: number;
  repeats: number;
  filtersIn: number;
  filtersOut: number;
  expandRatio: number;
  strides: number;
  seRatio: number;
}

/** Keras' DEFAULT_BLOCKS_ARGS (B0 before width/depth scaling). All blocks use the identity skip. */
const BLOCKS_ARGS: readonly BlockArgs[] = [
  { kernelSize: 3, repeats: 1, filtersIn: 32, filtersOut: 16, expandRatio: 1, strides: 1, seRatio: 0.25 },
  { kernelSize: 3, repeats: 2, filtersIn: 16, filtersOut: 24, expandRatio: 6, strides: 2, seRatio: 0.25 },
  { kernelSize: 5, repeats: 2, filtersIn: 24, filtersOut: 40, expandRatio: 6, strides: 2, seRatio: 0.25 },
  { kernelSize: 3, repeats: 3, filtersIn: 40, filtersOut: 80, expandRatio: 6, strides: 2, seRatio: 0.25 },
  { kernelSize: 5, repeats: 3, filtersIn: 80, filtersOut: 112, expandRatio: 6, strides: 1, seRatio: 0.25 },
  { kernelSize: 5, repeats: 4, filtersIn: 112, filtersOut: 192, expandRatio: 6, strides: 2, seRatio: 0.25 },
  { kernelSize: 3, repeats: 1, filtersIn: 192, filtersOut: 320, expandRatio: 6, strides: 1, seRatio: 0.25 },
];

// Keras: VarianceScaling(2.0, fan_out, truncated normal) for convs, (1/3, fan_out, uniform) for dense.
const convInit = () =>
  tf.initializers.varianceScaling({ scale: 2, mode: 'fanOut', distribution: 'normal', seed: nextSeed?.() });
const denseInit = () =>
  tf.initializers.varianceScaling({
    scale: 1 / 3,
    mode: 'fanOut',
    distribution: 'uniform',
    seed: nextSeed?.(),
  });

/** Set while `seededInitialisers` builds a model: the next initialiser's seed. */
let nextSeed: (() => number) | undefined;

/**
 * Builds with every initialiser seeded from `seed` (one seed per layer, in build order), so the same
 * seed gives the same random weights: tfjs initialisers draw from Math.random otherwise, and from
 * random weights two runs of one recipe differed by several points of accuracy.
 */
export function seededInitialisers<T>(seed: number | undefined, build: () => T): T {
  if (seed === undefined) return build();
  let layer = 0;
  nextSeed = () => seed * 1000 + layer++;
  try {
    return build();
  } finally {
    nextSeed = undefined;
  }
}

export interface EfficientNetOptions {
  /** Square input size in pixels. */
  imageSize: number;
  /** Width multiplier (B0: 1.0). Smaller values make tiny test models. */
  width?: number;
  /** Depth multiplier (B0: 1.0). */
  depth?: number;
  /** Final drop-connect (stochastic depth) rate, ramped linearly over the blocks. Default 0.2. */
  dropConnect?: number;
}

/**
 * The feature extractor without classification head: raw RGB [0, 255] in, the `top_activation`
 * feature map out (1280 channels for B0). Rescaling and ImageNet normalisation are inside.
 */
export function efficientNetFeatures(input: tf.SymbolicTensor, opts: EfficientNetOptions): tf.SymbolicTensor {
  const width = opts.width ?? 1;
  const depth = opts.depth ?? 1;
  const dropConnect = opts.dropConnect ?? 0.2;
  const divisor = 8;
  const roundFilters = (filters: number): number => {
    const scaled = filters * width;
    let rounded = Math.max(divisor, Math.floor((scaled + divisor / 2) / divisor) * divisor);
    if (rounded < 0.9 * scaled) rounded += divisor;
    return rounded;
  };
  const roundRepeats = (repeats: number): number => Math.ceil(depth * repeats);

  let x = tf.layers.rescaling({ scale: 1 / 255, name: 'rescaling' }).apply(input) as tf.SymbolicTensor;
  x = new Normalization({ name: 'normalization' }).apply(x) as tf.SymbolicTensor;
  x = new ChannelScale({
    name: 'rescaling_1',
    scale: IMAGENET_STDDEV_RGB.map((s) => 1 / Math.sqrt(s)),
  }).apply(x) as tf.SymbolicTensor;

  x = tf.layers
    .zeroPadding2d({ padding: correctPad(x, 3), name: 'stem_conv_pad' })
    .apply(x) as tf.SymbolicTensor;
  x = conv(x, roundFilters(32), 3, { strides: 2, padding: 'valid', name: 'stem_conv' });
  x = bnAct(x, 'stem_bn', 'stem_activation');

  const totalBlocks = BLOCKS_ARGS.reduce((n, a) => n + roundRepeats(a.repeats), 0);
  let b = 0;
  BLOCKS_ARGS.forEach((args, i) => {
    for (let j = 0; j < roundRepeats(args.repeats); j++) {
      x = mbConv(x, {
        name: `block${i + 1}${String.fromCharCode(97 + j)}_`,
        filtersIn: j === 0 ? roundFilters(args.filtersIn) : roundFilters(args.filtersOut),
        filtersOut: roundFilters(args.filtersOut),
        kernelSize: args.kernelSize,
        strides: j === 0 ? args.strides : 1,
        expandRatio: args.expandRatio,
        seRatio: args.seRatio,
        dropRate: (dropConnect * b) / totalBlocks,
      });
      b++;
    }
  });

  x = conv(x, roundFilters(1280), 1, { name: 'top_conv' });
  return bnAct(x, 'top_bn', 'top_activation');
}

interface MbConvArgs {
  name: string;
  filtersIn: number;
  filtersOut: number;
  kernelSize: number;
  strides: number;
  expandRatio: number;
  seRatio: number;
  dropRate: number;
}

/** Mobile inverted bottleneck: expand (1x1) -> depthwise -> squeeze-excite -> project (1x1) [+ skip]. */
function mbConv(inputs: tf.SymbolicTensor, a: MbConvArgs): tf.SymbolicTensor {
  const filters = a.filtersIn * a.expandRatio;
  let x = inputs;
  if (a.expandRatio !== 1) {
    x = conv(x, filters, 1, { name: `${a.name}expand_conv` });
    x = bnAct(x, `${a.name}expand_bn`, `${a.name}expand_activation`);
  }

  let padding: 'same' | 'valid' = 'same';
  if (a.strides === 2) {
    x = tf.layers
      .zeroPadding2d({ padding: correctPad(x, a.kernelSize), name: `${a.name}dwconv_pad` })
      .apply(x) as tf.SymbolicTensor;
    padding = 'valid';
  }
  x = tf.layers
    .depthwiseConv2d({
      kernelSize: a.kernelSize,
      strides: a.strides,
      padding,
      useBias: false,
      depthwiseInitializer: convInit(),
      name: `${a.name}dwconv`,
    })
    .apply(x) as tf.SymbolicTensor;
  x = bnAct(x, `${a.name}bn`, `${a.name}activation`);

  if (a.seRatio > 0 && a.seRatio <= 1) {
    const filtersSe = Math.max(1, Math.floor(a.filtersIn * a.seRatio));
    let se = tf.layers.globalAveragePooling2d({ name: `${a.name}se_squeeze` }).apply(x) as tf.SymbolicTensor;
    se = tf.layers
      .reshape({ targetShape: [1, 1, filters], name: `${a.name}se_reshape` })
      .apply(se) as tf.SymbolicTensor;
    se = conv(se, filtersSe, 1, { name: `${a.name}se_reduce`, activation: 'swish', useBias: true });
    se = conv(se, filters, 1, { name: `${a.name}se_expand`, activation: 'sigmoid', useBias: true });
    x = tf.layers.multiply({ name: `${a.name}se_excite` }).apply([x, se]) as tf.SymbolicTensor;
  }

  x = conv(x, a.filtersOut, 1, { name: `${a.name}project_conv` });
  x = new BatchNormalization({ axis: -1, name: `${a.name}project_bn` }).apply(x) as tf.SymbolicTensor;
  if (a.strides === 1 && a.filtersIn === a.filtersOut) {
    if (a.dropRate > 0)
      x = new DropConnect({ rate: a.dropRate, name: `${a.name}drop` }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.add({ name: `${a.name}add` }).apply([x, inputs]) as tf.SymbolicTensor;
  }
  return x;
}

function conv(
  x: tf.SymbolicTensor,
  filters: number,
  kernelSize: number,
  o: {
    name: string;
    strides?: number;
    padding?: 'same' | 'valid';
    activation?: 'swish' | 'sigmoid';
    useBias?: boolean;
  },
): tf.SymbolicTensor {
  return tf.layers
    .conv2d({
      filters,
      kernelSize,
      strides: o.strides ?? 1,
      padding: o.padding ?? 'same',
      useBias: o.useBias ?? false,
      activation: o.activation,
      kernelInitializer: convInit(),
      name: o.name,
    })
    .apply(x) as tf.SymbolicTensor;
}

/**
 * Keras BatchNormalization defaults (momentum 0.99, epsilon 1e-3) match tfjs' defaults. The layer is
 * tfjs-layers' own, with a one-kernel training path where the backend has it (./batch-norm.ts).
 */
function bnAct(x: tf.SymbolicTensor, bnName: string, actName: string): tf.SymbolicTensor {
  const y = new BatchNormalization({ axis: -1, name: bnName }).apply(x) as tf.SymbolicTensor;
  return tf.layers.activation({ activation: 'swish', name: actName }).apply(y) as tf.SymbolicTensor;
}

/** Keras `imagenet_utils.correct_pad`: asymmetric padding so stride-2 'valid' convs match TF's 'same'. */
function correctPad(x: tf.SymbolicTensor, kernelSize: number): [[number, number], [number, number]] {
  const [h, w] = [x.shape[1], x.shape[2]];
  const adjust = [h == null ? 1 : 1 - (h % 2), w == null ? 1 : 1 - (w % 2)];
  const c = Math.floor(kernelSize / 2);
  return [
    [c - adjust[0], c],
    [c - adjust[1], c],
  ];
}

export { denseInit };
