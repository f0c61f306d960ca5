import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { type EngineName, initEngine, maxWasmBatch } from '../../training-container/src/engine/index.ts';

describe('initEngine', () => {
  it("'auto' logs each engine it skips and one line naming the engine, backend and threads", async () => {
    const lines: string[] = [];
    const info = await initEngine('auto', (line) => lines.push(line));
    // tfjs-node(-gpu) exist only in the Docker image, never in this repository's node_modules.
    expect(lines[0]).toMatch(/^engine tfjs-node-gpu skipped: .*cannot import @tensorflow\/tfjs-node-gpu/);
    expect(lines[1]).toMatch(/^engine tfjs-node skipped: /);
    const chosen = lines[lines.length - 1];
    expect(chosen).toMatch(new RegExp(`^engine=${info.name} backend=${info.backend} threads=\\S+`));
    expect(tf.getBackend()).toBe(info.backend);
    expect(['onednn', 'wasm']).toContain(info.name);
  });

  it('a named engine that cannot start is an error, not a silent fallback', async () => {
    await expect(initEngine('webgpu', () => {})).rejects.toThrow(
      /engine webgpu is not available: cannot import webgpu/,
    );
    await expect(initEngine('tfjs-node', () => {})).rejects.toThrow(/engine tfjs-node is not available/);
  });

  it('rejects unknown engine names', async () => {
    await expect(initEngine('cuda' as EngineName, () => {})).rejects.toThrow(/unknown engine "cuda"/);
  });

  it('switches to cpu and back to wasm on request', async () => {
    expect((await initEngine('cpu', () => {})).backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    const wasm = await initEngine('wasm', () => {});
    expect(wasm.detail).toMatch(/threads=1 simd=true/);
    expect(tf.getBackend()).toBe('wasm');
  });

  it('maxWasmBatch keeps batch x pixels within the measured 4 GiB budget', () => {
    expect(maxWasmBatch(128)).toBe(16);
    expect(maxWasmBatch(96)).toBe(28);
    expect(maxWasmBatch(224)).toBe(5);
  });
});
