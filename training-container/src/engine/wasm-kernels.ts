import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/**
 * Gradient kernels the stock tfjs wasm backend lacks (tfjs 4.22), without which no convolutional
 * model can train on it: Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter and
 * DepthwiseConv2dNativeBackpropInput.
 *
 * 1x1 stride-1 convolutions (most of EfficientNet's FLOPs) go through the backend's own
 * BatchMatMul (XNNPACK, SIMD): dW = X^T * dY. Everything else is a tight loop over Float32Array
 * views of the wasm heap, with the channel loop innermost because NHWC keeps channels contiguous.
 * Only channelsLast (NHWC) is supported, which is all tfjs-layers produces.
 */

type TensorInfo = tf.TensorInfo;
type Conv2DInfo = tf.backend_util.Conv2DInfo;
interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

/** Reads a tensor's values in place; valid only until the next heap allocation. */
function view(backend: BackendWasm, t: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(t) as Float32Array;
}

function zeros(backend: BackendWasm, shape: number[]): TensorInfo {
  const out = backend.makeOutput(shape, 'float32');
  view(backend, out).fill(0);
  return out;
}

function assertFloatNhwc(kernel: string, tensors: TensorInfo[], dataFormat: unknown): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC' && dataFormat !== 'channelsLast') {
    throw new Error(`${kernel} (wasm training kernels): only NHWC is supported, got ${String(dataFormat)}`);
  }
  for (const t of tensors) {
    if (t.dtype !== 'float32')
      throw new Error(`${kernel} (wasm training kernels): float32 only, got ${t.dtype}`);
  }
}

function isPointwise(info: Conv2DInfo): boolean {
  return (
    info.filterHeight === 1 &&
    info.filterWidth === 1 &&
    info.strideHeight === 1 &&
    info.strideWidth === 1 &&
    info.padInfo.top === 0 &&
    info.padInfo.left === 0 &&
    info.outHeight === info.inHeight &&
    info.outWidth === info.inWidth
  );
}

/** Runs another wasm kernel (Reshape, BatchMatMul) directly, inside the current kernel. */
function runWasmKernel(name: string, args: KernelArgs): TensorInfo {
  const kernel = tf.getKernel(name, 'wasm');
  if (!kernel) throw new Error(`wasm kernel ${name} is not registered`);
  return kernel.kernelFunc(args as Parameters<typeof kernel.kernelFunc>[0]) as TensorInfo;
}

/** Copies a row-major [rows, cols] matrix transposed into `dst` ([cols, rows]), in cache-sized tiles. */
function transposeInto(src: Float32Array, dst: Float32Array, rows: number, cols: number): void {
  const tile = 32;
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = Math.min(r0 + tile, rows);
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const c1 = Math.min(c0 + tile, cols);
      for (let r = r0; r < r1; r++) {
        const rowBase = r * cols;
        for (let c = c0; c < c1; c++) dst[c * rows + r] = src[rowBase + c];
      }
    }
  }
}

function transposed(backend: BackendWasm, t: TensorInfo, rows: number, cols: number): TensorInfo {
  const out = backend.makeOutput([1, cols, rows], 'float32');
  transposeInto(view(backend, t), view(backend, out), rows, cols);
  return out;
}

/**
 * [M, K] x [K, N] through the backend's BatchMatMul. Only the untransposed case reaches XNNPACK's
 * fast path in tfjs 4.22 (a transpose flag is about 8x slower), so callers transpose in JS first.
 */
function matMul(
  backend: BackendWasm,
  a: TensorInfo,
  b: TensorInfo,
  m: number,
  k: number,
  n: number,
): TensorInfo {
  const a3 = runWasmKernel('Reshape', { inputs: { x: a }, backend, attrs: { shape: [1, m, k] } });
  const b3 = runWasmKernel('Reshape', { inputs: { x: b }, backend, attrs: { shape: [1, k, n] } });
  const out = runWasmKernel('BatchMatMul', {
    inputs: { a: a3, b: b3 },
    backend,
    attrs: { transposeA: false, transposeB: false },
  });
  backend.disposeData(a3.dataId);
  backend.disposeData(b3.dataId);
  return out;
}

/** dW = X^T dY for a 1x1 stride-1 convolution, as one matrix product over all N = B*H*W pixels. */
function pointwiseFilterGrad(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, filterShape: number[]) {
  const [, , inC, outC] = filterShape;
  const n = x.shape[0] * x.shape[1] * x.shape[2];
  let product: TensorInfo;
  if (outC <= inC) {
    // Transpose the smaller operand: dW^T = dY^T X ([outC, inC]), then flip the small result.
    const dyT = transposed(backend, dy, n, outC);
    const dwT = matMul(backend, dyT, x, outC, n, inC);
    backend.disposeData(dyT.dataId);
    product = transposed(backend, dwT, outC, inC);
    backend.disposeData(dwT.dataId);
  } else {
    const xT = transposed(backend, x, n, inC);
    product = matMul(backend, xT, dy, inC, n, outC);
    backend.disposeData(xT.dataId);
  }
  return { dataId: product.dataId, shape: filterShape, dtype: product.dtype };
}

/** dX = dY W^T for a 1x1 stride-1 convolution (W^T is tiny, so transposing it is free). */
function pointwiseInputGrad(backend: BackendWasm, dy: TensorInfo, filter: TensorInfo, inputShape: number[]) {
  const [, , inC, outC] = filter.shape;
  const n = dy.shape[0] * dy.shape[1] * dy.shape[2];
  const wT = transposed(backend, filter, inC, outC);
  const dx = matMul(backend, dy, wT, n, outC, inC);
  backend.disposeData(wT.dataId);
  return { dataId: dx.dataId, shape: inputShape, dtype: dx.dtype };
}

function conv2DBackpropFilter({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const wasm = backend as BackendWasm;
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } =
    attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  assertFloatNhwc('Conv2DBackpropFilter', [x, dy], dataFormat);
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  if (isPointwise(info)) return pointwiseFilterGrad(wasm, x, dy, filterShape);

  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const out = zeros(wasm, filterShape);
  const dw = view(wasm, out);
  const xv = view(wasm, x);
  const dyv = view(wasm, dy);
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  for (let b = 0; b < batchSize; b++) {
    for (let oy = 0; oy < outHeight; oy++) {
      for (let fy = 0; fy < filterHeight; fy++) {
        const iy = oy * strideHeight - top + fy * dilationHeight;
        if (iy < 0 || iy >= inHeight) continue;
        for (let ox = 0; ox < outWidth; ox++) {
          const dyBase = ((b * outHeight + oy) * outWidth + ox) * outChannels;
          for (let fx = 0; fx < filterWidth; fx++) {
            const ix = ox * strideWidth - left + fx * dilationWidth;
            if (ix < 0 || ix >= inWidth) continue;
            const xBase = ((b * inHeight + iy) * inWidth + ix) * inChannels;
            const wBase = (fy * filterWidth + fx) * inChannels * outChannels;
            for (let ci = 0; ci < inChannels; ci++) {
              const xval = xv[xBase + ci];
              if (xval === 0) continue;
              const w = wBase + ci * outChannels;
              for (let co = 0; co < outChannels; co++) dw[w + co] += xval * dyv[dyBase + co];
            }
          }
        }
      }
    }
  }
  return out;
}

/** Shared geometry for the two depthwise gradients (x: [B,H,W,C], filter: [fh,fw,C,mult]). */
function depthwiseInfo(
  xShape: number[],
  filterShape: number[],
  attrs: tf.DepthwiseConv2dNativeBackpropFilterAttrs | tf.DepthwiseConv2dNativeBackpropInputAttrs,
): Conv2DInfo {
  const { strides, dilations, pad, dimRoundingMode } = attrs;
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    dilations,
    pad,
    dimRoundingMode,
    true,
  );
}

function depthwiseBackpropFilter({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const wasm = backend as BackendWasm;
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const a = attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  assertFloatNhwc('DepthwiseConv2dNativeBackpropFilter', [x, dy], undefined);
  const info = depthwiseInfo(x.shape, a.filterShape, a);
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const mult = outChannels / inChannels;
  const out = zeros(wasm, a.filterShape);
  const dw = view(wasm, out);
  const xv = view(wasm, x);
  const dyv = view(wasm, dy);
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const xStep = strideWidth * inChannels;
  for (let b = 0; b < batchSize; b++) {
    for (let oy = 0; oy < outHeight; oy++) {
      const dyRow = (b * outHeight + oy) * outWidth * outChannels;
      for (let fy = 0; fy < filterHeight; fy++) {
        const iy = oy * strideHeight - top + fy * dilationHeight;
        if (iy < 0 || iy >= inHeight) continue;
        const xRow = (b * inHeight + iy) * inWidth * inChannels;
        for (let fx = 0; fx < filterWidth; fx++) {
          // Output columns whose input column ix = ox * stride - left + fx * dilation is inside.
          const shift = fx * dilationWidth - left;
          const oxLo = Math.max(0, Math.ceil(-shift / strideWidth));
          const oxHi = Math.min(outWidth - 1, Math.floor((inWidth - 1 - shift) / strideWidth));
          // Filter [fh, fw, C, mult] flattened matches dy's channel order c*mult+q.
          const wBase = (fy * filterWidth + fx) * outChannels;
          let ox = oxLo;
          if (mult === 1) {
            // Four output columns per update of the filter row: fewer loads/stores of dw.
            for (; ox + 3 <= oxHi; ox += 4) {
              const x0 = xRow + (ox * strideWidth + shift) * inChannels;
              const d0 = dyRow + ox * outChannels;
              const [x1, x2, x3] = [x0 + xStep, x0 + 2 * xStep, x0 + 3 * xStep];
              const [d1, d2, d3] = [d0 + outChannels, d0 + 2 * outChannels, d0 + 3 * outChannels];
              for (let c = 0; c < inChannels; c++) {
                dw[wBase + c] +=
                  xv[x0 + c] * dyv[d0 + c] +
                  xv[x1 + c] * dyv[d1 + c] +
                  (xv[x2 + c] * dyv[d2 + c] + xv[x3 + c] * dyv[d3 + c]);
              }
            }
          }
          for (; ox <= oxHi; ox++) {
            const xBase = xRow + (ox * strideWidth + shift) * inChannels;
            const dyBase = dyRow + ox * outChannels;
            for (let c = 0; c < inChannels; c++) {
              const xval = xv[xBase + c];
              for (let q = 0; q < mult; q++) dw[wBase + c * mult + q] += xval * dyv[dyBase + c * mult + q];
            }
          }
        }
      }
    }
  }
  return out;
}

/**
 * For stride 1 (12 of B0's 16 depthwise layers) the input gradient is itself a depthwise
 * convolution of dy with the filter rotated 180 degrees and complementary padding, which the
 * backend's XNNPACK kernel runs about ten times faster than a JS loop. Returns undefined when
 * the geometry does not allow it.
 */
function depthwiseInputGradAsConv(
  backend: BackendWasm,
  dy: TensorInfo,
  filter: TensorInfo,
  info: Conv2DInfo,
): TensorInfo | undefined {
  const { filterHeight: fh, filterWidth: fw, inChannels, outChannels } = info;
  if (
    info.strideHeight !== 1 ||
    info.strideWidth !== 1 ||
    info.dilationHeight !== 1 ||
    info.dilationWidth !== 1
  ) {
    return undefined;
  }
  if (inChannels !== outChannels) return undefined;
  const top = fh - 1 - info.padInfo.top;
  const left = fw - 1 - info.padInfo.left;
  const bottom = info.inHeight - info.outHeight + fh - 1 - top;
  const right = info.inWidth - info.outWidth + fw - 1 - left;
  if (Math.min(top, left, bottom, right) < 0) return undefined;

  const rotated = backend.makeOutput(filter.shape, 'float32');
  const src = view(backend, filter);
  const dst = view(backend, rotated);
  for (let fy = 0; fy < fh; fy++) {
    for (let fx = 0; fx < fw; fx++) {
      const from = (fy * fw + fx) * inChannels;
      const to = ((fh - 1 - fy) * fw + (fw - 1 - fx)) * inChannels;
      dst.set(src.subarray(from, from + inChannels), to);
    }
  }
  const dx = runWasmKernel('DepthwiseConv2dNative', {
    inputs: { x: dy, filter: rotated },
    backend,
    attrs: {
      strides: [1, 1],
      dilations: [1, 1],
      pad: [
        [0, 0],
        [top, bottom],
        [left, right],
        [0, 0],
      ],
      dataFormat: 'NHWC',
    },
  });
  backend.disposeData(rotated.dataId);
  return dx;
}

function depthwiseBackpropInput({ inputs, backend, attrs }: KernelArgs): TensorInfo {
  const wasm = backend as BackendWasm;
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  assertFloatNhwc('DepthwiseConv2dNativeBackpropInput', [dy, filter], undefined);
  const info = depthwiseInfo(a.inputShape, filter.shape, a);
  const fast = depthwiseInputGradAsConv(wasm, dy, filter, info);
  if (fast) return fast;
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const mult = outChannels / inChannels;
  const out = zeros(wasm, a.inputShape);
  const dx = view(wasm, out);
  const dyv = view(wasm, dy);
  const wv = view(wasm, filter);
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  // Scatter form: each dy pixel adds its filter-weighted value to the inputs it read.
  for (let b = 0; b < batchSize; b++) {
    for (let oy = 0; oy < outHeight; oy++) {
      for (let fy = 0; fy < filterHeight; fy++) {
        const iy = oy * strideHeight - top + fy * dilationHeight;
        if (iy < 0 || iy >= inHeight) continue;
        for (let ox = 0; ox < outWidth; ox++) {
          const dyBase = ((b * outHeight + oy) * outWidth + ox) * outChannels;
          for (let fx = 0; fx < filterWidth; fx++) {
            const ix = ox * strideWidth - left + fx * dilationWidth;
            if (ix < 0 || ix >= inWidth) continue;
            const xBase = ((b * inHeight + iy) * inWidth + ix) * inChannels;
            const wBase = (fy * filterWidth + fx) * outChannels;
            if (mult === 1) {
              for (let c = 0; c < inChannels; c++) dx[xBase + c] += dyv[dyBase + c] * wv[wBase + c];
            } else {
              for (let c = 0; c < inChannels; c++) {
                let sum = 0;
                for (let q = 0; q < mult; q++) sum += dyv[dyBase + c * mult + q] * wv[wBase + c * mult + q];
                dx[xBase + c] += sum;
              }
            }
          }
        }
      }
    }
  }
  return out;
}

/**
 * Wraps the stock wasm Conv2DBackpropInput: 1x1 stride-1 cases (the expand/project/SE convs) go
 * through the fast matmul, everything else to the original kernel.
 */
function conv2DBackpropInputWith(original: tf.KernelFunc) {
  return (args: KernelArgs): TensorInfo => {
    const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
    const a = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
    const nhwc = a.dataFormat === undefined || a.dataFormat === 'NHWC';
    if (nhwc && dy.dtype === 'float32' && filter.dtype === 'float32') {
      const info = tf.backend_util.computeConv2DInfo(
        a.inputShape,
        filter.shape as [number, number, number, number],
        a.strides,
        1,
        a.pad,
        a.dimRoundingMode,
      );
      if (isPointwise(info)) return pointwiseInputGrad(args.backend as BackendWasm, dy, filter, a.inputShape);
    }
    return original(args as Parameters<tf.KernelFunc>[0]) as TensorInfo;
  };
}

/**
 * Sum and Mean over the leading axes (e.g. [0, 1, 2] of NHWC: per-channel statistics and
 * gradients in batch norm, bias and broadcast gradients). The stock wasm kernels only reduce
 * innermost axes, so they first transpose the whole tensor; here it is one pass over memory
 * with float64 accumulators. Other reductions go to the stock kernel.
 */
function outerReductionWith(original: tf.KernelFunc, mean: boolean) {
  return (args: KernelArgs): TensorInfo => {
    const { x } = args.inputs as { x: TensorInfo };
    const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
    const rank = x.shape.length;
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((p, q) => p - q);
    const leading = axes.length > 0 && axes.length < rank && axes.every((ax, i) => ax === i);
    if (x.dtype !== 'float32' || !leading)
      return original(args as Parameters<tf.KernelFunc>[0]) as TensorInfo;
    const backend = args.backend as BackendWasm;
    const outer = x.shape.slice(0, axes.length).reduce((p, q) => p * q, 1);
    const innerShape = x.shape.slice(axes.length);
    const inner = innerShape.reduce((p, q) => p * q, 1);
    const outShape = keepDims ? [...axes.map(() => 1), ...innerShape] : innerShape;
    const out = backend.makeOutput(outShape, 'float32');
    const xv = view(backend, x);
    const acc = new Float64Array(inner);
    let n = 0;
    // Four rows per accumulator update: 1.6x faster than one, same float64 sums.
    for (; n + 4 <= outer; n += 4) {
      const b0 = n * inner;
      const b1 = b0 + inner;
      const b2 = b1 + inner;
      const b3 = b2 + inner;
      for (let c = 0; c < inner; c++) acc[c] += xv[b0 + c] + xv[b1 + c] + (xv[b2 + c] + xv[b3 + c]);
    }
    for (; n < outer; n++) {
      const base = n * inner;
      for (let c = 0; c < inner; c++) acc[c] += xv[base + c];
    }
    const ov = view(backend, out);
    const scale = mean && outer > 0 ? 1 / outer : 1;
    for (let c = 0; c < inner; c++) ov[c] = acc[c] * scale;
    return out;
  };
}

const KERNELS: Array<[string, (args: KernelArgs) => TensorInfo]> = [
  ['Conv2DBackpropFilter', conv2DBackpropFilter],
  ['DepthwiseConv2dNativeBackpropFilter', depthwiseBackpropFilter],
  ['DepthwiseConv2dNativeBackpropInput', depthwiseBackpropInput],
];

let registered = false;

/**
 * Registers the missing gradient kernels for the 'wasm' backend (never replacing one a future
 * tfjs release registers itself), plus fast paths wrapped around the stock Conv2DBackpropInput,
 * Sum and Mean. Idempotent.
 */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  registered = true;
  for (const [kernelName, kernelFunc] of KERNELS) {
    if (tf.getKernel(kernelName, 'wasm')) continue;
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as tf.KernelFunc });
  }
  const wrappers: Array<[string, (original: tf.KernelFunc) => (args: KernelArgs) => TensorInfo]> = [
    ['Conv2DBackpropInput', conv2DBackpropInputWith],
    ['Sum', (original) => outerReductionWith(original, false)],
    ['Mean', (original) => outerReductionWith(original, true)],
  ];
  for (const [kernelName, wrap] of wrappers) {
    const stock = tf.getKernel(kernelName, 'wasm');
    if (!stock) continue;
    tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ ...stock, kernelFunc: wrap(stock.kernelFunc) as tf.KernelFunc });
  }
}
