import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { registerOnednnBackend } from '../../training-container/src/engine/onednn.ts';
import { type OnednnBackend, poolBytes } from '../../training-container/src/engine/onednn-backend.ts';
import { nativeAvailable, random, relativeError } from './helpers.ts';

/** The output-buffer pool: reuse happens, and never behind the back of someone still holding data. */

const native = await nativeAvailable();
const SHAPE = [4, 8, 8, 16];

function storage(t: tf.Tensor): unknown {
  return (tf.backend() as OnednnBackend).data.get(t.dataId).values;
}

describe('onednn output pool size', () => {
  it('is off with ONEDNN_POOL=0, set by ONEDNN_POOL_MB, else a quarter of memory up to 8 GiB', () => {
    expect(poolBytes({ ONEDNN_POOL: '0', ONEDNN_POOL_MB: '100' })).toBe(0);
    expect(poolBytes({ ONEDNN_POOL_MB: '100' })).toBe(100 * 2 ** 20);
    const byDefault = poolBytes({});
    expect(byDefault).toBeGreaterThan(0);
    expect(byDefault).toBeLessThanOrEqual(Math.min(os.totalmem() / 4, 8 * 2 ** 30));
    expect(poolBytes({ ONEDNN_POOL_MB: 'lots' })).toBe(byDefault);
  });
});

describe('onednn output pool', () => {
  if (!native) {
    it('is unavailable with the engine, which says why', async () => {
      await expect(registerOnednnBackend()).rejects.toThrow(/engine onednn is not available/);
    });
    return;
  }

  const a = () => tf.tensor(random(SHAPE, 1), SHAPE);
  const b = () => tf.tensor(random(SHAPE, 2), SHAPE);

  it('reuses the array of a disposed native output', async () => {
    await tf.setBackend('onednn');
    const [x, y] = [a(), b()];
    const first = tf.add(x, y);
    const array = storage(first);
    first.dispose();
    const second = tf.mul(x, y);
    expect(storage(second)).toBe(array);
    tf.dispose([x, y, second]);
  });

  it('never recycles an array handed out by dataSync', async () => {
    await tf.setBackend('onednn');
    const [x, y] = [a(), b()];
    const sum = tf.add(x, y);
    const seen = sum.dataSync();
    const copy = Float32Array.from(seen);
    sum.dispose();
    const other = tf.mul(x, y);
    expect(storage(other)).not.toBe(seen);
    expect(seen).toEqual(copy);
    tf.dispose([x, y, other]);
  });

  it('never recycles an array that another tensor views (cpu kernels return subarrays)', async () => {
    await tf.setBackend('onednn');
    const [x, y] = [a(), b()];
    const sum = tf.add(x, y);
    const parts = tf.unstack(sum); // the cpu Unpack kernel returns views of its input
    // Expected values from the inputs: reading sum or parts here would itself protect the array.
    const [av, bv] = [random(SHAPE, 1), random(SHAPE, 2)];
    const partSize = av.length / SHAPE[0];
    sum.dispose();
    const others = [tf.mul(x, y), tf.sub(x, y), tf.add(y, y)];
    for (let i = 0; i < parts.length; i++) {
      const expected = Float32Array.from(
        { length: partSize },
        (_, j) => av[i * partSize + j] + bv[i * partSize + j],
      );
      expect(relativeError(Float32Array.from(await parts[i].data()), expected)).toBeLessThan(1e-6);
    }
    tf.dispose([x, y, ...parts, ...others]);
  });
});
