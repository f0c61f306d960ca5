import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { nativeAvailable } from './helpers.ts';

const run = promisify(execFile);
const native = await nativeAvailable();
const CHILD = path.join(import.meta.dirname, 'native-ops-child.ts');

/** Runs the kernels in a child process on `threads` OpenMP threads; returns libgomp's count and the results. */
async function opsOn(threads: number): Promise<{ threads: number; ops: Map<string, Float32Array> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `onednn-threads-${threads}-`));
  try {
    await run(process.execPath, ['--import', 'tsx', CHILD, dir], {
      env: { ...process.env, OMP_NUM_THREADS: String(threads), OMP_WAIT_POLICY: 'PASSIVE' },
    });
    const ops = new Map<string, Float32Array>();
    for (const file of (await readdir(dir)).filter((f) => f.endsWith('.f32'))) {
      const bytes = await readFile(path.join(dir, file));
      ops.set(
        path.basename(file, '.f32'),
        new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4),
      );
    }
    return { threads: Number(await readFile(path.join(dir, 'threads'), 'utf8')), ops };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The engine runs one OpenMP thread by default, so the rest of the suite no longer runs the
 * kernels' multi-thread paths (per-thread partial sums, row ranges). Here they run on two threads
 * and must agree with one: a thread's share dropped or counted twice would be far off.
 */
describe.runIf(native)('native kernels on two OpenMP threads', () => {
  it('give what one thread gives', { timeout: 60_000 }, async () => {
    const [one, two] = await Promise.all([opsOn(1), opsOn(2)]);
    expect(one.threads).toBe(1);
    expect(two.threads).toBe(2);
    expect([...two.ops.keys()].sort()).toEqual([...one.ops.keys()].sort());
    expect(one.ops.size).toBe(12);
    for (const [name, a] of one.ops) {
      const b = two.ops.get(name) as Float32Array;
      expect(b.length, name).toBe(a.length);
      let worst = 0;
      let magnitude = 0;
      for (let i = 0; i < a.length; i++) {
        worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(a[i])));
        magnitude = Math.max(magnitude, Math.abs(a[i]));
      }
      expect(worst, name).toBeLessThan(1e-5);
      expect(magnitude, `${name} is not all zeros`).toBeGreaterThan(0);
    }
  });
});
