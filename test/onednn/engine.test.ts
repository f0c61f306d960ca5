import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initEngine } from '../../training-container/src/engine/index.ts';
import { configureThreads, loadOnednnAddon } from '../../training-container/src/engine/onednn.ts';
import { nativeAvailable } from './helpers.ts';

// Before anything loads the addon (and with it libgomp, which reads these once).
const givenThreads = process.env.OMP_NUM_THREADS;

/** With the addon built, 'auto' prefers onednn over wasm (tfjs-node is never installed here). */

const native = await nativeAvailable();

describe('engine selection with onednn', () => {
  it(native ? 'auto picks onednn and logs it' : 'auto falls back to wasm (addon unavailable)', async () => {
    const lines: string[] = [];
    const info = await initEngine('auto', (line) => lines.push(line));
    expect(info.name).toBe(native ? 'onednn' : 'wasm');
    expect(tf.getBackend()).toBe(native ? 'onednn' : 'wasm');
    expect(lines.at(-1)).toMatch(
      native ? /^engine=onednn backend=onednn threads=\d+ \(oneDNN [23]\.\d+\.\d+,/ : /^engine=wasm/,
    );
  });
});

describe('OpenMP settings', () => {
  it('fills in one passive thread where the environment sets nothing, and keeps what it sets', () => {
    const empty: NodeJS.ProcessEnv = { OMP_WAIT_POLICY: '' };
    expect(configureThreads(empty)).toEqual({ OMP_NUM_THREADS: '1', OMP_WAIT_POLICY: 'PASSIVE' });
    expect(empty).toEqual({ OMP_NUM_THREADS: '1', OMP_WAIT_POLICY: 'PASSIVE' });
    const given: NodeJS.ProcessEnv = { OMP_NUM_THREADS: '4', OMP_WAIT_POLICY: 'ACTIVE' };
    expect(configureThreads(given)).toEqual({});
    expect(given).toEqual({ OMP_NUM_THREADS: '4', OMP_WAIT_POLICY: 'ACTIVE' });
  });

  it.runIf(native)('reach libgomp: the addon runs the thread count the engine set', async () => {
    await initEngine('onednn', () => {});
    const addon = loadOnednnAddon();
    if (!addon) throw new Error('native was true, so the addon must load');
    expect(addon.info().threads).toBe(givenThreads ? Number(givenThreads) : 1);
  });
});

describe.runIf(native)('the oneDNN the addon runs on', () => {
  it('is the major version it was compiled against (and ONEDNN_EXPECT_MAJOR when set)', () => {
    const addon = loadOnednnAddon();
    if (!addon) throw new Error('native was true, so the addon must load');
    const { dnnlVersion, headerVersion } = addon.info();
    const major = (v: string) => v.split('.')[0];
    expect(major(dnnlVersion)).toBe(major(headerVersion));
    // The 3.x run (docs/onednn.md) sets it, so a stray 2.x library cannot pass for 3.x.
    const expected = process.env.ONEDNN_EXPECT_MAJOR;
    if (expected) expect(major(dnnlVersion)).toBe(expected);
  });
});
