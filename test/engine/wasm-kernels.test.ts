import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../training-container/src/engine/index.ts';

/**
 * The three gradient kernels we register for wasm, compared with the reference cpu backend on
 * odd shapes. Error is relative to the largest reference value (max|wasm - cpu| / max|cpu|), so
 * near-zero sums do not make the measure meaningless.
 */

function random(shape: number[], seed: number): Float32Array {
  // Small LCG: deterministic inputs without depending on tfjs's RNG on either backend.
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

async function runOn(
  backend: string,
  kernel: string,
  inputs: Record<string, { values: Float32Array; shape: number[] }>,
  attrs: Record<string, unknown>,
): Promise<{ values: Float32Array; shape: number[] }> {
  await tf.setBackend(backend);
  const tensors: Record<string, tf.Tensor> = {};
  for (const [name, { values, shape }] of Object.entries(inputs)) tensors[name] = tf.tensor(values, shape);
  const out = tf.engine().runKernel(kernel, tensors, attrs as tf.NamedAttrMap) as tf.Tensor;
  const values = (await out.data()) as Float32Array;
  const shape = out.shape;
  tf.dispose([out, ...Object.values(tensors)]);
  return { values, shape };
}

function relativeError(actual: Float32Array, expected: Float32Array): number {
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  return maxDiff / Math.max(maxRef, 1e-12);
}

async function compare(
  kernel: string,
  inputs: Record<string, { values: Float32Array; shape: number[] }>,
  attrs: Record<string, unknown>,
): Promise<void> {
  const cpu = await runOn('cpu', kernel, inputs, attrs);
  const wasm = await runOn('wasm', kernel, inputs, attrs);
  expect(wasm.shape).toEqual(cpu.shape);
  // A kernel that returned all zeros would pass a relative check against zeros: rule it out.
  expect(Math.max(...cpu.values.map(Math.abs))).toBeGreaterThan(0);
  expect(relativeError(wasm.values, cpu.values)).toBeLessThan(1e-4);
}

/** Output spatial size of a conv with tfjs's rules. */
function outShape(
  x: number[],
  filter: number[],
  stride: number,
  pad: 'same' | 'valid',
  depthwise: boolean,
): number[] {
  const info = tf.backend_util.computeConv2DInfo(
    x as [number, number, number, number],
    filter as [number, number, number, number],
    stride,
    1,
    pad,
    undefined,
    depthwise,
  );
  return info.outShape;
}

const GEOMETRIES = [
  { x: [2, 7, 9, 5], k: 3 },
  { x: [1, 11, 6, 3], k: 5 },
  { x: [3, 5, 5, 8], k: 1 },
  // More output than input channels takes the other branch of the 1x1 filter gradient.
  { x: [2, 4, 3, 2], k: 1 },
];

describe('wasm training kernels match the cpu backend', () => {
  beforeAll(async () => {
    await initEngine('wasm', () => {});
  });

  for (const { x, k } of GEOMETRIES) {
    for (const stride of [1, 2]) {
      for (const pad of ['same', 'valid'] as const) {
        const tag = `x=${x} k=${k} stride=${stride} pad=${pad}`;

        it(`Conv2DBackpropFilter ${tag}`, async () => {
          const filterShape = [k, k, x[3], 4];
          const dyShape = outShape(x, filterShape, stride, pad, false);
          await compare(
            'Conv2DBackpropFilter',
            { x: { values: random(x, 1), shape: x }, dy: { values: random(dyShape, 2), shape: dyShape } },
            { strides: [stride, stride], pad, dataFormat: 'NHWC', filterShape },
          );
        });

        it(`Conv2DBackpropInput ${tag}`, async () => {
          // Stock wasm kernel except 1x1 stride 1, which we route through BatchMatMul.
          const filterShape = [k, k, x[3], 4];
          const dyShape = outShape(x, filterShape, stride, pad, false);
          await compare(
            'Conv2DBackpropInput',
            {
              dy: { values: random(dyShape, 11), shape: dyShape },
              filter: { values: random(filterShape, 12), shape: filterShape },
            },
            { strides: [stride, stride], pad, dataFormat: 'NHWC', inputShape: x },
          );
        });

        it(`DepthwiseConv2dNativeBackpropFilter ${tag}`, async () => {
          const filterShape = [k, k, x[3], 1];
          const dyShape = outShape(x, filterShape, stride, pad, true);
          await compare(
            'DepthwiseConv2dNativeBackpropFilter',
            { x: { values: random(x, 3), shape: x }, dy: { values: random(dyShape, 4), shape: dyShape } },
            { strides: [stride, stride], dilations: [1, 1], pad, filterShape },
          );
        });

        it(`DepthwiseConv2dNativeBackpropInput ${tag}`, async () => {
          const filterShape = [k, k, x[3], 1];
          const dyShape = outShape(x, filterShape, stride, pad, true);
          await compare(
            'DepthwiseConv2dNativeBackpropInput',
            {
              dy: { values: random(dyShape, 5), shape: dyShape },
              filter: { values: random(filterShape, 6), shape: filterShape },
            },
            { strides: [stride, stride], dilations: [1, 1], pad, inputShape: x },
          );
        });
      }
    }
  }

  for (const [axis, keepDims] of [
    [[0, 1, 2], false],
    [[0, 1, 2], true],
    [[0], false],
    [[1, 2], true],
    [-1, false],
  ] as const) {
    for (const kernel of ['Sum', 'Mean']) {
      it(`${kernel} axis=${JSON.stringify(axis)} keepDims=${keepDims}`, async () => {
        const shape = [3, 5, 7, 6];
        await compare(kernel, { x: { values: random(shape, 13), shape } }, { axis, keepDims });
      });
    }
  }

  it('trains a small conv net on wasm to the same gradients as cpu', async () => {
    // End to end through tf.grads: conv (3x3 stride 2), depthwise (3x3), pointwise conv.
    const xv = random([2, 9, 9, 3], 7);
    const w1v = random([3, 3, 3, 8], 8);
    const dwv = random([3, 3, 8, 1], 9);
    const w2v = random([1, 1, 8, 6], 10);
    const gradsOn = async (backend: string) => {
      await tf.setBackend(backend);
      const [x, w1, dw, w2] = [
        tf.tensor4d(xv, [2, 9, 9, 3]),
        tf.tensor4d(w1v, [3, 3, 3, 8]),
        tf.tensor4d(dwv, [3, 3, 8, 1]),
        tf.tensor4d(w2v, [1, 1, 8, 6]),
      ];
      const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => {
        const h1 = tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same');
        const h2 = tf.depthwiseConv2d(h1, c as tf.Tensor4D, 1, 'same');
        return tf
          .conv2d(h2, d as tf.Tensor4D, 1, 'valid')
          .square()
          .sum();
      };
      const grads = tf.grads(f)([x, w1, dw, w2]);
      const values = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
      tf.dispose([...grads, x, w1, dw, w2]);
      return values;
    };
    const cpu = await gradsOn('cpu');
    const wasm = await gradsOn('wasm');
    for (let i = 0; i < cpu.length; i++) expect(relativeError(wasm[i], cpu[i])).toBeLessThan(1e-4);
  });
});
