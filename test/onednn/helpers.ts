import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { onednnLoadError, registerOnednnBackend } from '../../training-container/src/engine/onednn.ts';

/**
 * Shared by the onednn tests. `nativeAvailable()` decides which path a test file takes: with the
 * addon, the native kernels are compared with the cpu backend; without it (a dev machine without
 * libdnnl-dev) the file checks the fallback instead and says why. In CI (CI=true) the addon is
 * built by .ci/run, so its absence is a failure, never a quiet pass.
 */
export async function nativeAvailable(): Promise<boolean> {
  try {
    await registerOnednnBackend();
    await tf.setBackend('cpu');
    return true;
  } catch (err) {
    const reason = onednnLoadError()?.message ?? (err instanceof Error ? err.message : String(err));
    if (process.env.CI === 'true') {
      throw new Error(
        `CI=true but the onednn addon is unavailable (.ci/run installs libdnnl-dev): ${reason}`,
      );
    }
    console.warn(`onednn addon unavailable, testing the fallback path instead: ${reason}`);
    return false;
  }
}

export function random(shape: number[], seed: number, scale = 1): Float32Array {
  // Small LCG: the same inputs on both backends without depending on tfjs's RNG.
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 31 - 1) * scale;
  }
  return out;
}

export type Inputs = Record<string, { values: Float32Array | Int32Array; shape: number[] }>;

export async function runKernelOn(
  backend: string,
  kernel: string,
  inputs: Inputs,
  attrs: Record<string, unknown>,
): Promise<{ values: Float32Array; shape: number[] }[]> {
  await tf.setBackend(backend);
  const tensors: Record<string, tf.Tensor> = {};
  for (const [name, { values, shape }] of Object.entries(inputs)) {
    tensors[name] = tf.tensor(values, shape, values instanceof Int32Array ? 'int32' : 'float32');
  }
  // Kernels over a list (AddN) take an array: inputs keyed 0, 1, 2...
  const listInput = Object.keys(tensors).every((k) => /^\d+$/.test(k));
  const kernelInputs = (listInput ? Object.values(tensors) : tensors) as unknown as tf.NamedTensorMap;
  const result = tf.engine().runKernel(kernel, kernelInputs, attrs as tf.NamedAttrMap) as
    | tf.Tensor
    | tf.Tensor[];
  const outs = Array.isArray(result) ? result : [result];
  const read = [];
  for (const t of outs) read.push({ values: Float32Array.from(await t.data()), shape: t.shape });
  tf.dispose([...outs, ...Object.values(tensors)]);
  return read;
}

/** max|actual - expected| / max|expected|: meaningful even where single values are near zero. */
export function relativeError(actual: Float32Array, expected: Float32Array): number {
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    maxDiff = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(maxDiff, d);
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  return maxDiff / Math.max(maxRef, 1e-12);
}

/** Runs one kernel on cpu and on onednn and expects the same shapes and values (rel. err < 1e-4). */
export async function expectKernelMatchesCpu(
  kernel: string,
  inputs: Inputs,
  attrs: Record<string, unknown> = {},
): Promise<void> {
  const cpu = await runKernelOn('cpu', kernel, inputs, attrs);
  const native = await runKernelOn('onednn', kernel, inputs, attrs);
  expect(native.length).toBe(cpu.length);
  for (let i = 0; i < cpu.length; i++) {
    expect(native[i].shape).toEqual(cpu[i].shape);
    // A kernel returning zeros would pass a relative check against zeros: rule that out.
    expect(cpu[i].values.some((v) => v !== 0)).toBe(true);
    expect(relativeError(native[i].values, cpu[i].values), `${kernel} output ${i}`).toBeLessThan(1e-4);
  }
}
