import * as tf from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { OnednnAddon } from '../../native/onednn/index.js';
import { type NativeKernel, output, required, values } from './onednn-conv.ts';

/**
 * The elementwise work that dominates a training step once convolutions are native (profiled on
 * EfficientNetB0: broadcast multiply/add/sub/div from batch-norm, swish and squeeze-excite and
 * their gradients, axis sums/means, and the pad/slice pair of the stride-2 blocks). float32 runs
 * natively; other dtypes and unsupported patterns run the stock cpu kernel.
 */

const BINARY_OPS = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3, SquaredDifference: 4, Maximum: 5, Minimum: 6 };
const TWICE_MUL = 7;
export const BROADCAST_SCALE = 'OnednnBroadcastScale';
export const SQUARE_GRAD = 'OnednnSquareGrad';
const UNARY_OPS = {
  Sigmoid: 0,
  Sqrt: 1,
  Square: 2,
  Rsqrt: 3,
  Exp: 4,
  Neg: 5,
  Relu: 6,
  Log: 7,
  Abs: 8,
  Reciprocal: 9,
};
const REDUCE_OPS = { Sum: 0, Mean: 1, Max: 2 };

function cpuKernel(name: string): NativeKernel {
  const config = tf.getKernel(name, 'cpu');
  if (!config) throw new Error(`tfjs cpu backend has no ${name} kernel`);
  return config.kernelFunc as NativeKernel;
}

function contiguousStrides(shape: number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

/**
 * A broadcast as one loop nest: output dims plus each input's element strides (0 where it is
 * broadcast), with size-1 dims dropped and neighbouring dims merged where both inputs allow it.
 */
export function broadcastPlan(
  aShape: number[],
  bShape: number[],
): { outShape: number[]; dims: Int32Array; aStrides: Int32Array; bStrides: Int32Array } {
  const outShape = tf.backend_util.assertAndGetBroadcastShape(aShape, bShape);
  const n = outShape.length;
  const pad = (s: number[]) => [...new Array<number>(n - s.length).fill(1), ...s];
  const aPad = pad(aShape);
  const bPad = pad(bShape);
  const aContig = contiguousStrides(aPad);
  const bContig = contiguousStrides(bPad);
  const dims: number[] = [];
  const as: number[] = [];
  const bs: number[] = [];
  for (let d = 0; d < n; d++) {
    if (outShape[d] === 1) continue;
    const sa = aPad[d] === 1 ? 0 : aContig[d];
    const sb = bPad[d] === 1 ? 0 : bContig[d];
    const last = dims.length - 1;
    if (last >= 0 && as[last] === sa * outShape[d] && bs[last] === sb * outShape[d]) {
      dims[last] *= outShape[d];
      as[last] = sa;
      bs[last] = sb;
    } else {
      dims.push(outShape[d]);
      as.push(sa);
      bs.push(sb);
    }
  }
  if (dims.length === 0) {
    dims.push(1);
    as.push(0);
    bs.push(0);
  }
  return {
    outShape,
    dims: Int32Array.from(dims),
    aStrides: Int32Array.from(as),
    bStrides: Int32Array.from(bs),
  };
}

/** [outer, reduced, inner] sizes when the reduced axes form one contiguous run (ignoring 1s). */
export function reducePlan(shape: number[], axes: number[]): [number, number, number] | undefined {
  let outer = 1;
  let reduced = 1;
  let inner = 1;
  let phase = 0; // 0: before the reduced run, 1: inside it, 2: after it
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const isReduced = axes.includes(d);
    if (isReduced) {
      if (phase === 2) return undefined;
      phase = 1;
      reduced *= shape[d];
    } else if (phase === 0) {
      outer *= shape[d];
    } else {
      phase = 2;
      inner *= shape[d];
    }
  }
  return [outer, reduced, inner];
}

const isOne = (t: tf.TensorInfo, v: Float32Array) => v.length === 1 && v[0] === 1 && t.shape.length === 0;
const broadcastShape = (a: tf.TensorInfo, b: tf.TensorInfo) =>
  tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);

function float32(backend: MathBackendCPU, ...ts: tf.TensorInfo[]): Float32Array[] | undefined {
  const out: Float32Array[] = [];
  for (const t of ts) {
    if (t.dtype !== 'float32') return undefined;
    const v = values(backend, t);
    if (!v) return undefined;
    out.push(v);
  }
  return out;
}

/** Slice as one native block copy: the cpu kernel goes element by element through TensorBuffer. */
function sliceBlock(
  addon: OnednnAddon,
  src: Float32Array,
  shape: number[],
  begin: number[],
  size: number[],
  out: Float32Array,
): Float32Array {
  const strides = contiguousStrides(shape);
  const offset = begin.reduce((sum, b, d) => sum + b * strides[d], 0);
  addon.stridedCopy(
    src,
    offset,
    Int32Array.from(strides),
    out,
    0,
    Int32Array.from(contiguousStrides(size)),
    Int32Array.from(size),
  );
  return out;
}

/** PadV2 (the zero padding before EfficientNet's stride-2 convolutions): a fill and a block copy. */
function padBlock(
  addon: OnednnAddon,
  src: Float32Array,
  shape: number[],
  paddings: [number, number][],
  value: number,
  out: Float32Array,
): Float32Array {
  const outShape = shape.map((s, d) => s + paddings[d][0] + paddings[d][1]);
  addon.fill(out, value, out.length); // recycled outputs hold old data
  const outStrides = contiguousStrides(outShape);
  const offset = paddings.reduce((sum, [before], d) => sum + before * outStrides[d], 0);
  addon.stridedCopy(
    src,
    0,
    Int32Array.from(contiguousStrides(shape)),
    out,
    offset,
    Int32Array.from(outStrides),
    Int32Array.from(shape),
  );
  return out;
}

/**
 * `src` with shape `shape` reversed along `axes`, written to `out`: a walk over the dims up to the
 * innermost reversed one, copying the contiguous block of the dims after it.
 */
export function reverseBlock(
  src: Float32Array,
  shape: number[],
  axes: number[],
  out: Float32Array,
): Float32Array {
  const reversed = new Set(axes);
  const last = axes.length === 0 ? -1 : Math.max(...axes);
  const strides = contiguousStrides(shape);
  const inner = last < 0 ? src.length : strides[last];
  const walk = (d: number, from: number, to: number) => {
    if (d > last) {
      for (let i = 0; i < inner; i++) out[to + i] = src[from + i];
      return;
    }
    const n = shape[d];
    const stride = strides[d];
    for (let i = 0; i < n; i++) {
      walk(d + 1, from + i * stride, to + (reversed.has(d) ? n - 1 - i : i) * stride);
    }
  };
  if (src.length > 0) walk(0, 0, 0);
  return out;
}

export function elementwiseKernels(addon: OnednnAddon): Record<string, NativeKernel> {
  const kernels: Record<string, NativeKernel> = {};

  for (const [name, op] of Object.entries(BINARY_OPS)) {
    const fallback = cpuKernel(name);
    kernels[name] = (args) => {
      const backend = args.backend as MathBackendCPU;
      const { a, b } = required(args, 'a', 'b');
      const vals = float32(backend, a, b);
      if (!vals || tf.util.sizeFromShape(a.shape) === 0 || tf.util.sizeFromShape(b.shape) === 0)
        return fallback(args);
      // tfjs-layers' swish multiplies by a scalar 1 (and its gradient by 1 again): share the data.
      if (name === 'Multiply') {
        const same = isOne(b, vals[1]) && tf.util.arraysEqual(broadcastShape(a, b), a.shape) ? a : undefined;
        const other = isOne(a, vals[0]) && tf.util.arraysEqual(broadcastShape(a, b), b.shape) ? b : undefined;
        const pass = same ?? other;
        if (pass) {
          backend.incRef(pass.dataId);
          return { dataId: pass.dataId, shape: pass.shape, dtype: 'float32' };
        }
      }
      const plan = broadcastPlan(a.shape, b.shape);
      const out = output(backend, tf.util.sizeFromShape(plan.outShape));
      addon.binary(op, vals[0], vals[1], out, plan.dims, plan.aStrides, plan.bStrides);
      return backend.makeTensorInfo(plan.outShape, 'float32', out);
    };
  }

  const addNFallback = cpuKernel('AddN');
  kernels.AddN = (args) => {
    const backend = args.backend as MathBackendCPU;
    const tensors = Object.values(args.inputs) as tf.TensorInfo[];
    const vals = float32(backend, ...tensors);
    const shape = tensors[0]?.shape ?? [];
    if (!vals || tensors.some((t) => !tf.util.arraysEqual(t.shape, shape))) return addNFallback(args);
    const out = output(backend, vals[0].length);
    out.set(vals[0]);
    const dims = Int32Array.of(out.length);
    const unit = Int32Array.of(1);
    for (let i = 1; i < vals.length; i++) addon.binary(BINARY_OPS.Add, out, vals[i], out, dims, unit, unit);
    return backend.makeTensorInfo(shape, 'float32', out);
  };

  for (const [name, op] of Object.entries(UNARY_OPS)) {
    const fallback = cpuKernel(name);
    kernels[name] = (args) => {
      const backend = args.backend as MathBackendCPU;
      const { x } = required(args, 'x');
      const vals = float32(backend, x);
      if (!vals) return fallback(args);
      const out = output(backend, vals[0].length);
      addon.unary(op, vals[0], out, out.length);
      return backend.makeTensorInfo(x.shape, 'float32', out);
    };
  }

  for (const [name, op] of Object.entries(REDUCE_OPS)) {
    const fallback = cpuKernel(name);
    kernels[name] = (args) => {
      const backend = args.backend as MathBackendCPU;
      const { x } = required(args, 'x');
      const attrs = args.attrs ?? {};
      const axisAttr = (name === 'Max' ? attrs.reductionIndices : attrs.axis) as number | number[];
      const axes = tf.util.parseAxisParam(axisAttr, x.shape);
      const vals = float32(backend, x);
      const plan = reducePlan(x.shape, axes);
      if (!vals || !plan || vals[0].length === 0) return fallback(args);
      let [outShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
      if (attrs.keepDims) outShape = tf.backend_util.expandShapeToKeepDim(outShape, axes);
      const out = output(backend, plan[0] * plan[2]);
      addon.reduce(op, vals[0], out, plan[0], plan[1], plan[2]);
      return backend.makeTensorInfo(outShape, 'float32', out);
    };
  }

  // Mean's gradient: dy spread over the reduced axes and divided by their size, in one pass
  // (tfjs multiplies by a full-size ones tensor, then divides).
  kernels[BROADCAST_SCALE] = (args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = required(args, 'x');
    const shape = args.attrs?.shape as number[];
    const vals = float32(backend, x);
    if (!vals) throw new Error(`${BROADCAST_SCALE}: float32 input expected`);
    const plan = broadcastPlan(x.shape, shape);
    const out = output(backend, tf.util.sizeFromShape(plan.outShape));
    const scale = Float32Array.of(args.attrs?.scale as number);
    addon.binary(
      BINARY_OPS.Multiply,
      vals[0],
      scale,
      out,
      plan.dims,
      plan.aStrides,
      new Int32Array(plan.dims.length),
    );
    return backend.makeTensorInfo(plan.outShape, 'float32', out);
  };

  kernels[SQUARE_GRAD] = (args) => {
    const backend = args.backend as MathBackendCPU;
    const { dy, x } = required(args, 'dy', 'x');
    const vals = float32(backend, dy, x);
    if (!vals) throw new Error(`${SQUARE_GRAD}: float32 inputs expected`);
    const out = output(backend, vals[0].length);
    const unit = Int32Array.of(1);
    addon.binary(TWICE_MUL, vals[0], vals[1], out, Int32Array.of(out.length), unit, unit);
    return backend.makeTensorInfo(dy.shape, 'float32', out);
  };

  const sliceFallback = cpuKernel('Slice');
  kernels.Slice = (args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = required(args, 'x');
    const attrs = args.attrs ?? {};
    const vals = float32(backend, x);
    if (!vals || x.shape.length === 0) return sliceFallback(args);
    const [begin, size] = tf.slice_util.parseSliceParams(
      x as unknown as tf.Tensor,
      attrs.begin as number | number[],
      attrs.size as number | number[],
    );
    tf.slice_util.assertParamsValid(x as unknown as tf.Tensor, begin, size);
    const out = output(backend, tf.util.sizeFromShape(size));
    return backend.makeTensorInfo(size, 'float32', sliceBlock(addon, vals[0], x.shape, begin, size, out));
  };

  const padFallback = cpuKernel('PadV2');
  kernels.PadV2 = (args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = required(args, 'x');
    const attrs = args.attrs ?? {};
    const vals = float32(backend, x);
    if (!vals || x.shape.length === 0) return padFallback(args);
    const paddings = attrs.paddings as [number, number][];
    const outShape = x.shape.map((s, d) => s + paddings[d][0] + paddings[d][1]);
    const out = padBlock(
      addon,
      vals[0],
      x.shape,
      paddings,
      (attrs.constantValue as number) ?? 0,
      output(backend, tf.util.sizeFromShape(outShape)),
    );
    return backend.makeTensorInfo(outShape, 'float32', out);
  };

  // Flip test-time augmentation reverses every validation and test batch along its width; the
  // stock cpu kernel walks a TensorBuffer per element (about 25 s an epoch of the quick profile).
  const reverseFallback = cpuKernel('Reverse');
  kernels.Reverse = (args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = required(args, 'x');
    const vals = float32(backend, x);
    if (!vals || x.shape.length === 0) return reverseFallback(args);
    const axes = tf.util.parseAxisParam(args.attrs?.dims as number | number[], x.shape);
    const out = output(backend, vals[0].length);
    return backend.makeTensorInfo(x.shape, 'float32', reverseBlock(vals[0], x.shape, axes, out));
  };

  return kernels;
}
