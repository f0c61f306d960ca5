/** Shape of one convolution: the 18 numbers `convShape()` in onednn-conv.ts packs. */
export type ConvShape = Int32Array;

export interface OnednnAddon {
  info(): { dnnlVersion: string; cpuRuntime: string; threads: number };
  /** y = conv(x, filter); NHWC activations, tfjs filter layout. Writes into `y`. */
  conv2dForward(shape: ConvShape, x: Float32Array, filter: Float32Array, y: Float32Array): void;
  /** dx from dy and the filter. Writes into `dx`. */
  conv2dBackwardData(shape: ConvShape, dy: Float32Array, filter: Float32Array, dx: Float32Array): void;
  /** dFilter from x and dy, in tfjs's filter layout. Writes into `dw`. */
  conv2dBackwardWeights(shape: ConvShape, x: Float32Array, dy: Float32Array, dw: Float32Array): void;
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
