import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { registerOnednnBackend } from '../../training-container/src/engine/onednn.ts';
import { broadcastPlan, reducePlan } from '../../training-container/src/engine/onednn-elementwise.ts';
import { expectKernelMatchesCpu, nativeAvailable, random } from './helpers.ts';

/** Native elementwise, reduction, slice and pad kernels against the cpu backend. */

const native = await nativeAvailable();

const BROADCASTS: [number[], number[]][] = [
  [
    [2, 3, 4, 5],
    [2, 3, 4, 5],
  ],
  [[2, 3, 4, 5], [5]],
  [
    [2, 3, 4, 5],
    [2, 1, 1, 5],
  ],
  [
    [3, 1, 5],
    [1, 4, 1],
  ],
  [[7], []],
  [[], [3, 2]],
  [
    [1, 1, 1, 6],
    [4, 3, 2, 1],
  ],
  [
    [2, 1, 3],
    [2, 5, 3],
  ],
];

const input = (shape: number[], seed: number, positive = false) => {
  const values = random(shape, seed);
  if (positive) for (let i = 0; i < values.length; i++) values[i] = Math.abs(values[i]) + 0.5;
  return { values, shape };
};

describe('broadcast and reduce plans', () => {
  it('merge dims that both inputs walk contiguously and keep broadcast dims apart', () => {
    const plan = broadcastPlan([2, 3, 4, 5], [2, 1, 1, 5]);
    expect(plan.outShape).toEqual([2, 3, 4, 5]);
    expect([...plan.dims]).toEqual([2, 12, 5]);
    expect([...plan.aStrides]).toEqual([60, 5, 1]);
    expect([...plan.bStrides]).toEqual([5, 0, 1]);
  });
  it('describe one contiguous run of reduced axes, and refuse two', () => {
    expect(reducePlan([4, 5, 6, 7], [0, 1, 2])).toEqual([1, 120, 7]);
    expect(reducePlan([4, 5, 6, 7], [1, 2])).toEqual([4, 30, 7]);
    expect(reducePlan([4, 1, 6, 7], [1, 2, 3])).toEqual([4, 42, 1]);
    expect(reducePlan([4, 5, 6, 7], [0, 2])).toBeUndefined();
  });
});

describe('onednn elementwise kernels', () => {
  if (!native) {
    it('are unavailable, and the engine says why instead of registering', async () => {
      await expect(registerOnednnBackend()).rejects.toThrow(/engine onednn is not available/);
    });
    return;
  }

  for (const op of ['Add', 'Sub', 'Multiply', 'RealDiv', 'SquaredDifference', 'Maximum', 'Minimum']) {
    it(`${op} matches cpu on odd broadcasts`, async () => {
      for (const [i, [aShape, bShape]] of BROADCASTS.entries()) {
        await expectKernelMatchesCpu(op, {
          a: input(aShape, 10 + i),
          b: input(bShape, 20 + i, op === 'RealDiv'),
        });
      }
    });
  }

  it('Multiply by a scalar 1 shares the data and survives disposing its input', async () => {
    const x = input([2, 3, 4], 11);
    await expectKernelMatchesCpu('Multiply', { a: x, b: { values: Float32Array.of(1), shape: [] } });
    await expectKernelMatchesCpu('Multiply', { a: { values: Float32Array.of(1), shape: [] }, b: x });
    await tf.setBackend('onednn');
    const t = tf.tensor(x.values, x.shape);
    const y = tf.mul(t, tf.scalar(1));
    t.dispose();
    expect(Float32Array.from(await y.data())).toEqual(x.values);
    y.dispose();
  });

  it('AddN matches cpu', async () => {
    const shape = [3, 4, 5];
    await expectKernelMatchesCpu('AddN', { 0: input(shape, 1), 1: input(shape, 2), 2: input(shape, 3) });
  });

  for (const op of ['Sigmoid', 'Sqrt', 'Square', 'Rsqrt', 'Exp', 'Neg', 'Relu', 'Log', 'Abs', 'Reciprocal']) {
    it(`${op} matches cpu`, async () => {
      const positive = ['Sqrt', 'Rsqrt', 'Log', 'Reciprocal'].includes(op);
      await expectKernelMatchesCpu(op, { x: input([3, 7, 5, 11], 4, positive) });
    });
  }

  for (const op of ['Sum', 'Mean', 'Max']) {
    it(`${op} matches cpu over leading, middle, trailing, split and all axes`, async () => {
      const x = input([3, 5, 7, 6], 5);
      for (const axes of [[0, 1, 2], [1, 2], [3], [0], [0, 2], [0, 1, 2, 3], [-1]]) {
        for (const keepDims of [false, true]) {
          const attrs = op === 'Max' ? { reductionIndices: axes, keepDims } : { axis: axes, keepDims };
          await expectKernelMatchesCpu(op, { x }, attrs);
        }
      }
    });
  }

  it('Sum over 300k rows keeps cpu precision (batch-norm statistics size)', async () => {
    await expectKernelMatchesCpu(
      'Sum',
      { x: input([16, 96, 96, 24], 6) },
      { axis: [0, 1, 2], keepDims: false },
    );
  });

  it('Slice matches cpu', async () => {
    const x = input([2, 5, 6, 3], 7);
    await expectKernelMatchesCpu('Slice', { x }, { begin: [0, 1, 2, 0], size: [2, 3, -1, 2] });
    await expectKernelMatchesCpu('Slice', { x: input([9], 8) }, { begin: [2], size: [5] });
  });

  it('Reverse matches cpu along one, several and no axes', async () => {
    const x = input([2, 5, 6, 3], 10);
    for (const dims of [2, [1, 2], [0, 3], 3, []]) await expectKernelMatchesCpu('Reverse', { x }, { dims });
    await expectKernelMatchesCpu('Reverse', { x: input([7], 11) }, { dims: [0] });
  });

  it('PadV2 matches cpu with zero and non-zero constants', async () => {
    const x = input([2, 5, 6, 3], 9);
    const paddings = [
      [0, 0],
      [1, 2],
      [0, 1],
      [0, 0],
    ];
    await expectKernelMatchesCpu('PadV2', { x }, { paddings, constantValue: 0 });
    await expectKernelMatchesCpu('PadV2', { x }, { paddings, constantValue: 1.5 });
  });
});
