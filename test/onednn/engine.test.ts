import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initEngine } from '../../training-container/src/engine/index.ts';
import { nativeAvailable } from './helpers.ts';

/** With the addon built, 'auto' prefers onednn over wasm (tfjs-node is never installed here). */

const native = await nativeAvailable();

describe('engine selection with onednn', () => {
  it(native ? 'auto picks onednn and logs it' : 'auto falls back to wasm (addon unavailable)', async () => {
    const lines: string[] = [];
    const info = await initEngine('auto', (line) => lines.push(line));
    expect(info.name).toBe(native ? 'onednn' : 'wasm');
    expect(tf.getBackend()).toBe(native ? 'onednn' : 'wasm');
    expect(lines.at(-1)).toMatch(
      native ? /^engine=onednn backend=onednn threads=\d+ \(oneDNN 2\./ : /^engine=wasm/,
    );
  });
});
