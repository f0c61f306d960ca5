import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { registerOnednnBackend } from '../../training-container/src/engine/onednn.ts';
import { expectKernelMatchesCpu, nativeAvailable, random } from './helpers.ts';

/** Every native convolution kernel against tfjs's cpu kernels on odd shapes, strides and paddings. */

const native = await nativeAvailable();

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
interface Case {
  name: string;
  x: number[];
  filter: number[];
  strides: [number, number];
  pad: Pad;
  dilations: [number, number];
}

const PLAIN: Case[] = [
  {
    name: '3x3 s1 same',
    x: [2, 7, 9, 3],
    filter: [3, 3, 3, 5],
    strides: [1, 1],
    pad: 'same',
    dilations: [1, 1],
  },
  {
    name: '3x3 s2 same, odd size',
    x: [2, 9, 7, 4],
    filter: [3, 3, 4, 6],
    strides: [2, 2],
    pad: 'same',
    dilations: [1, 1],
  },
  {
    name: '2x3 s(2,1) valid',
    x: [1, 8, 7, 3],
    filter: [2, 3, 3, 4],
    strides: [2, 1],
    pad: 'valid',
    dilations: [1, 1],
  },
  {
    name: '1x1 pointwise',
    x: [3, 5, 5, 7],
    filter: [1, 1, 7, 11],
    strides: [1, 1],
    pad: 'same',
    dilations: [1, 1],
  },
  {
    name: '5x5 s3 valid, leftover rows',
    x: [1, 12, 11, 2],
    filter: [5, 5, 2, 3],
    strides: [3, 3],
    pad: 'valid',
    dilations: [1, 1],
  },
  {
    name: 'explicit asymmetric padding',
    x: [2, 6, 5, 3],
    filter: [3, 2, 3, 4],
    strides: [1, 2],
    pad: [
      [0, 0],
      [1, 2],
      [0, 1],
      [0, 0],
    ],
    dilations: [1, 1],
  },
];
const DILATED: Case = {
  name: '3x3 dilation 2 same',
  x: [1, 9, 8, 3],
  filter: [3, 3, 3, 2],
  strides: [1, 1],
  pad: 'same',
  dilations: [2, 2],
};
const DEPTHWISE: Case[] = [
  {
    name: 'dw 3x3 s1 same',
    x: [2, 7, 6, 5],
    filter: [3, 3, 5, 1],
    strides: [1, 1],
    pad: 'same',
    dilations: [1, 1],
  },
  {
    name: 'dw 5x5 s2 same, mult 2',
    x: [2, 9, 11, 4],
    filter: [5, 5, 4, 2],
    strides: [2, 2],
    pad: 'same',
    dilations: [1, 1],
  },
  {
    name: 'dw 3x3 s2 valid',
    x: [1, 8, 9, 3],
    filter: [3, 3, 3, 1],
    strides: [2, 2],
    pad: 'valid',
    dilations: [1, 1],
  },
  {
    name: 'dw 3x3 dilation 2 same',
    x: [1, 9, 9, 3],
    filter: [3, 3, 3, 2],
    strides: [1, 1],
    pad: 'same',
    dilations: [2, 2],
  },
];

function outShape(c: Case, depthwise: boolean): number[] {
  return tf.backend_util.computeConv2DInfo(
    c.x as [number, number, number, number],
    c.filter as [number, number, number, number],
    c.strides,
    c.dilations,
    c.pad,
    undefined,
    depthwise,
  ).outShape;
}

async function checkConv(c: Case, depthwise: boolean): Promise<void> {
  const x = { values: random(c.x, 1), shape: c.x };
  const filter = { values: random(c.filter, 2), shape: c.filter };
  const dyShape = outShape(c, depthwise);
  const dy = { values: random(dyShape, 3), shape: dyShape };
  const common = { strides: c.strides, pad: c.pad, dimRoundingMode: undefined };
  if (depthwise) {
    const dw = { ...common, dilations: c.dilations };
    await expectKernelMatchesCpu('DepthwiseConv2dNative', { x, filter }, dw);
    // tfjs's depthwise gradient refuses dilation > 1 and its cpu backprop kernels ignore it.
    if (c.dilations[0] !== 1) return;
    await expectKernelMatchesCpu(
      'DepthwiseConv2dNativeBackpropInput',
      { dy, filter },
      { ...dw, inputShape: c.x },
    );
    await expectKernelMatchesCpu(
      'DepthwiseConv2dNativeBackpropFilter',
      { x, dy },
      { ...dw, filterShape: c.filter },
    );
    return;
  }
  const plain = { ...common, dataFormat: 'NHWC' };
  await expectKernelMatchesCpu('Conv2D', { x, filter }, { ...plain, dilations: c.dilations });
  if (c.dilations[0] !== 1) return; // tfjs's backprop kernels take no dilation
  await expectKernelMatchesCpu('Conv2DBackpropInput', { dy, filter }, { ...plain, inputShape: c.x });
  await expectKernelMatchesCpu('Conv2DBackpropFilter', { x, dy }, { ...plain, filterShape: c.filter });
}

describe('onednn convolution kernels', () => {
  if (!native) {
    it('are unavailable, and the engine says why instead of registering', async () => {
      await expect(registerOnednnBackend()).rejects.toThrow(/engine onednn is not available/);
    });
    return;
  }

  for (const c of PLAIN) it(`Conv2D + both gradients match cpu: ${c.name}`, () => checkConv(c, false));
  it(`Conv2D matches cpu: ${DILATED.name}`, () => checkConv(DILATED, false));
  for (const c of DEPTHWISE)
    it(`depthwise (+ gradients unless dilated) match cpu: ${c.name}`, () => checkConv(c, true));

  it('fused conv2d / depthwise with bias and activation match cpu', async () => {
    for (const activation of ['linear', 'relu', 'sigmoid']) {
      const x = { values: random([2, 5, 6, 3], 4), shape: [2, 5, 6, 3] };
      const attrs = { strides: [2, 2], pad: 'same', dataFormat: 'NHWC', dilations: [1, 1], activation };
      await expectKernelMatchesCpu(
        'FusedConv2D',
        {
          x,
          filter: { values: random([3, 3, 3, 4], 5), shape: [3, 3, 3, 4] },
          bias: { values: random([4], 6), shape: [4] },
        },
        attrs,
      );
      await expectKernelMatchesCpu(
        'FusedDepthwiseConv2D',
        {
          x,
          filter: { values: random([3, 3, 3, 2], 7), shape: [3, 3, 3, 2] },
          bias: { values: random([6], 8), shape: [6] },
        },
        attrs,
      );
    }
  });

  it('reuses cached primitives for a repeated shape', async () => {
    const { loadOnednnAddon } = await import('../../training-container/src/engine/onednn.ts');
    const addon = loadOnednnAddon();
    if (!addon) throw new Error('addon vanished');
    await checkConv(PLAIN[0], false);
    const before = addon.convCacheSize();
    await checkConv(PLAIN[0], false);
    expect(addon.convCacheSize()).toBe(before);
  });
});
