/** Shape of one convolution: the 18 numbers `convShape()` in onednn-conv.ts packs. */
export type ConvShape = Int32Array;

export interface OnednnAddon {
  /** dnnlVersion: the library loaded; headerVersion: the headers the addon was compiled against. */
  info(): { dnnlVersion: string; headerVersion: string; cpuRuntime: string; threads: number };
  /** y = conv(x, filter); NHWC activations, tfjs filter layout. Writes into `y`. */
  conv2dForward(shape: ConvShape, x: Float32Array, filter: Float32Array, y: Float32Array): void;
  /** dx from dy and the filter. Writes into `dx`. */
  conv2dBackwardData(shape: ConvShape, dy: Float32Array, filter: Float32Array, dx: Float32Array): void;
  /** dFilter from x and dy, in tfjs's filter layout. Writes into `dw`. */
  conv2dBackwardWeights(shape: ConvShape, x: Float32Array, dy: Float32Array, dw: Float32Array): void;
  /**
   * out = a (op) b with broadcasting, over a collapsed shape `dims` and each input's element
   * strides (0 = broadcast). op: 0 add, 1 sub, 2 mul, 3 div, 4 squared difference, 5 max, 6 min, 7 twice the product,
   * 8 swish gradient (a = dy, b = x).
   */
  binary(
    op: number,
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    dims: Int32Array,
    aStrides: Int32Array,
    bStrides: Int32Array,
  ): void;
  /** y = f(x) for n elements. op: 0 sigmoid, 1 sqrt, 2 square, 3 rsqrt, 4 exp, 5 neg, 6 relu, 7 log, 8 abs, 9 reciprocal, 10 swish. */
  unary(op: number, x: Float32Array, y: Float32Array, n: number): void;
  /** out[o, i] = reduce over r of x[o, r, i]. op: 0 sum, 1 mean, 2 max. */
  reduce(op: number, x: Float32Array, out: Float32Array, outer: number, reduced: number, inner: number): void;
  /** y = (x - mean) / sqrt(variance + epsilon) * scale + offset over `channels` (x's last axis). */
  batchNormForward(
    x: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    scale: Float32Array | null,
    offset: Float32Array | null,
    epsilon: number,
    rows: number,
    channels: number,
    y: Float32Array,
  ): void;
  /** All five gradients of batchNormForward in two passes. */
  batchNormBackward(
    x: Float32Array,
    dy: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    scale: Float32Array | null,
    epsilon: number,
    rows: number,
    channels: number,
    dx: Float32Array,
    dMean: Float32Array,
    dVariance: Float32Array,
    dScale: Float32Array,
    dOffset: Float32Array,
  ): void;
  /**
   * Batch-norm in training: writes the batch's per-channel mean and biased variance (as
   * tf.moments) and y = (x - mean) / sqrt(variance + epsilon) * scale + offset.
   */
  batchNormTrainingForward(
    x: Float32Array,
    scale: Float32Array | null,
    offset: Float32Array | null,
    epsilon: number,
    rows: number,
    channels: number,
    y: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
  ): void;
  /** Gradients of batchNormTrainingForward w.r.t. x (through the statistics), scale and offset. */
  batchNormTrainingBackward(
    x: Float32Array,
    dy: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    scale: Float32Array | null,
    epsilon: number,
    rows: number,
    channels: number,
    dx: Float32Array,
    dScale: Float32Array,
    dOffset: Float32Array,
  ): void;
  /** dx = dy * y * (1 - y). */
  sigmoidGrad(dy: Float32Array, y: Float32Array, dx: Float32Array, n: number): void;
  /**
   * Copies the block `dims` from src to dst, each element addressed by offset + index . strides
   * (element strides; the last dim must have stride 1 in both).
   */
  stridedCopy(
    src: Float32Array,
    srcOffset: number,
    srcStrides: Int32Array,
    dst: Float32Array,
    dstOffset: number,
    dstStrides: Int32Array,
    dims: Int32Array,
  ): void;
  /** dst[0..n) = value. */
  fill(dst: Float32Array, value: number, n: number): void;
  /** One Adam step for n parameters, tfjs's formula (see src/engine/fused-kernels.ts ADAM_UPDATE). */
  adamUpdate(
    value: Float32Array,
    gradient: Float32Array,
    m: Float32Array,
    v: Float32Array,
    n: number,
    learningRate: number,
    beta1: number,
    beta2: number,
    oneMinusBeta1: number,
    oneMinusBeta2: number,
    epsilon: number,
    oneMinusAccBeta1: number,
    oneMinusAccBeta2: number,
    outValue: Float32Array,
    outM: Float32Array,
    outV: Float32Array,
  ): void;
  /** Number of cached convolution primitives. */
  convCacheSize(): number;
}

/** The addon, or undefined when it is not built or cannot load (see loadError()). */
export function load(): OnednnAddon | undefined;
/** Why load() returned undefined. */
export function loadError(): Error | undefined;
/** The addon, or a clear error saying why it is unavailable. */
export function requireAddon(): OnednnAddon;
/** Path of the compiled .node file (env ONEDNN_ADDON_PATH overrides it). */
export const BINARY: string;
