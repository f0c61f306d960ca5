import * as tf from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { OnednnAddon } from '../../native/onednn/index.js';

/**
 * tfjs convolution kernels (forward and both gradients, plain and depthwise, plus the fused
 * variants tfjs-layers calls) on oneDNN. Anything the native path does not cover (NCHW,
 * PReLU/leaky activations, odd bias shapes) runs the stock cpu kernel instead.
 */

type KernelArgs = {
  inputs: Partial<Record<string, tf.TensorInfo>>;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
};
export type NativeKernel = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

type ConvInfo = tf.backend_util.Conv2DInfo;
type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

/** The 18 numbers the addon's ConvShape reads, in its order. */
export function convShape(info: ConvInfo, depthwise: boolean): Int32Array {
  const p = info.padInfo;
  return Int32Array.from([
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.outChannels,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.dilationHeight,
    info.dilationWidth,
    p.top,
    p.left,
    p.bottom,
    p.right,
    depthwise ? info.inChannels : 1,
  ]);
}

/** A kernel output: from the onednn backend's pool when there is one; contents are arbitrary. */
export function output(backend: MathBackendCPU, n: number): Float32Array {
  const pooled = backend as MathBackendCPU & { allocFloat32?: (n: number) => Float32Array };
  return pooled.allocFloat32 ? pooled.allocFloat32(n) : new Float32Array(n);
}

export function values(backend: MathBackendCPU, t: tf.TensorInfo): Float32Array | undefined {
  const v = backend.data.get(t.dataId).values;
  return v instanceof Float32Array ? v : undefined;
}

export function required<K extends string>(args: KernelArgs, ...names: K[]): Record<K, tf.TensorInfo> {
  const out = {} as Record<K, tf.TensorInfo>;
  for (const name of names) {
    const t = args.inputs[name];
    if (!t) throw new Error(`kernel input ${name} is missing`);
    out[name] = t;
  }
  return out;
}

function cpuKernel(name: string): NativeKernel {
  const config = tf.getKernel(name, 'cpu');
  if (!config) throw new Error(`tfjs cpu backend has no ${name} kernel`);
  return config.kernelFunc as NativeKernel;
}

/** Padding must be non-negative for oneDNN; tfjs only produces that, but check rather than trust. */
function nativeOk(info: ConvInfo): boolean {
  const p = info.padInfo;
  return info.dataFormat === 'channelsLast' && p.top >= 0 && p.left >= 0 && p.bottom >= 0 && p.right >= 0;
}

function dilationsOf(attrs: tf.NamedAttrMap): [number, number] | number {
  const d = attrs.dilations as [number, number] | number | null | undefined;
  return d ?? [1, 1];
}

function convInfoFor(
  xShape: number[],
  filterShape: number[],
  attrs: tf.NamedAttrMap,
  depthwise: boolean,
  dilations: [number, number] | number = dilationsOf(attrs),
): ConvInfo {
  const dataFormat = depthwise ? 'NHWC' : ((attrs.dataFormat as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC');
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides as [number, number] | number,
    dilations,
    attrs.pad as Pad,
    attrs.dimRoundingMode as Rounding,
    depthwise,
    tf.backend_util.convertConv2DDataFormat(dataFormat),
  );
}

type Activation = 'linear' | 'relu' | 'relu6' | 'sigmoid';
const SIMPLE_ACTIVATIONS = new Set<string>(['linear', 'relu', 'relu6', 'sigmoid']);

/** Bias add and a simple activation in place: only the small SE/head convolutions carry them. */
function biasAndActivation(
  out: Float32Array,
  channels: number,
  bias: Float32Array | undefined,
  act: Activation,
) {
  if (bias) {
    for (let i = 0; i < out.length; i += channels) {
      for (let c = 0; c < channels; c++) out[i + c] += bias[c];
    }
  }
  if (act === 'linear') return;
  for (let i = 0; i < out.length; i++) {
    const v = out[i];
    out[i] =
      act === 'relu'
        ? Math.max(v, 0)
        : act === 'relu6'
          ? Math.min(Math.max(v, 0), 6)
          : 1 / (1 + Math.exp(-v));
  }
}

export function convKernels(addon: OnednnAddon): Record<string, NativeKernel> {
  const forward = (depthwise: boolean, fused: boolean, fallbackName: string): NativeKernel => {
    const fallback = cpuKernel(fallbackName);
    return (args) => {
      const backend = args.backend as MathBackendCPU;
      const { x, filter } = required(args, 'x', 'filter');
      const { bias, preluActivationWeights } = args.inputs;
      const attrs = args.attrs ?? {};
      const act = ((attrs.activation as string | undefined) ?? 'linear') as Activation;
      const info = convInfoFor(x.shape, filter.shape, attrs, depthwise);
      const xv = values(backend, x);
      const wv = values(backend, filter);
      const bv = bias ? values(backend, bias) : undefined;
      const fusedOk =
        !fused ||
        (preluActivationWeights === undefined &&
          SIMPLE_ACTIVATIONS.has(act) &&
          (bias === undefined ||
            (bv !== undefined && tf.util.sizeFromShape(bias.shape) === info.outChannels)));
      if (!xv || !wv || !fusedOk || !nativeOk(info)) return fallback(args);
      const out = output(backend, tf.util.sizeFromShape(info.outShape));
      addon.conv2dForward(convShape(info, depthwise), xv, wv, out);
      if (fused) biasAndActivation(out, info.outChannels, bv, act);
      return backend.makeTensorInfo(info.outShape, 'float32', out);
    };
  };

  const backwardInput = (depthwise: boolean, fallbackName: string): NativeKernel => {
    const fallback = cpuKernel(fallbackName);
    return (args) => {
      const backend = args.backend as MathBackendCPU;
      const { dy, filter } = required(args, 'dy', 'filter');
      const attrs = args.attrs ?? {};
      const inputShape = attrs.inputShape as number[];
      const info = convInfoFor(
        inputShape,
        filter.shape,
        attrs,
        depthwise,
        depthwise ? dilationsOf(attrs) : 1,
      );
      const dyv = values(backend, dy);
      const wv = values(backend, filter);
      if (!dyv || !wv || !nativeOk(info)) return fallback(args);
      const dx = output(backend, tf.util.sizeFromShape(info.inShape));
      addon.conv2dBackwardData(convShape(info, depthwise), dyv, wv, dx);
      return backend.makeTensorInfo(info.inShape, 'float32', dx);
    };
  };

  const backwardFilter = (depthwise: boolean, fallbackName: string): NativeKernel => {
    const fallback = cpuKernel(fallbackName);
    return (args) => {
      const backend = args.backend as MathBackendCPU;
      const { x, dy } = required(args, 'x', 'dy');
      const attrs = args.attrs ?? {};
      const filterShape = attrs.filterShape as number[];
      const info = convInfoFor(x.shape, filterShape, attrs, depthwise, depthwise ? dilationsOf(attrs) : 1);
      const xv = values(backend, x);
      const dyv = values(backend, dy);
      if (!xv || !dyv || !nativeOk(info)) return fallback(args);
      const dw = output(backend, tf.util.sizeFromShape(filterShape));
      addon.conv2dBackwardWeights(convShape(info, depthwise), xv, dyv, dw);
      return backend.makeTensorInfo(filterShape, 'float32', dw);
    };
  };

  return {
    Conv2D: forward(false, false, 'Conv2D'),
    FusedConv2D: forward(false, true, 'FusedConv2D'),
    DepthwiseConv2dNative: forward(true, false, 'DepthwiseConv2dNative'),
    FusedDepthwiseConv2D: forward(true, true, 'FusedDepthwiseConv2D'),
    Conv2DBackpropInput: backwardInput(false, 'Conv2DBackpropInput'),
    DepthwiseConv2dNativeBackpropInput: backwardInput(true, 'DepthwiseConv2dNativeBackpropInput'),
    Conv2DBackpropFilter: backwardFilter(false, 'Conv2DBackpropFilter'),
    DepthwiseConv2dNativeBackpropFilter: backwardFilter(true, 'DepthwiseConv2dNativeBackpropFilter'),
  };
}
