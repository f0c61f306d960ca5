/**
 * Engine comparison for EfficientNetB0 training: ms per training step (Adam, categorical
 * cross-entropy, batch 16 by default) at several resolutions on each engine that starts here,
 * plus PyTorch (Debian's python3-torch) for the same model and shapes when it is installed.
 * `--profile` prints a per-kernel time table for one step (tf.profile) instead.
 *
 *   npm run bench:onednn -- --engines onednn,wasm --sizes 96,128,224 --steps 3
 *   npm run bench:onednn -- --profile --engines onednn --sizes 128
 *
 * Figures are wall-clock on a shared machine: noisy, never asserted anywhere.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { type EngineName, initEngine } from '../training-container/src/engine/index.ts';
import { buildClassifier } from '../training-container/src/model/index.ts';
import { Adam } from '../training-container/src/train/adam.ts';

interface Options {
  engines: string;
  sizes: string;
  batch: string;
  steps: string;
  profile?: boolean;
  torch: boolean;
}

const program = new Command('bench-onednn')
  .option('--engines <list>', 'comma-separated engines to try (unavailable ones are reported)', 'onednn,wasm')
  .option('--sizes <list>', 'image sizes in pixels', '96,128,224')
  .option('--batch <n>', 'batch size', '16')
  .option('--steps <n>', 'timed steps per size after one warm-up step', '3')
  .option('--profile', 'print the per-kernel time table of one step instead of timing')
  .option('--no-torch', 'skip the PyTorch comparison')
  .parse();
const opts = program.opts<Options>();
const sizes = opts.sizes.split(',').map(Number);
const batch = Number(opts.batch);
const steps = Number(opts.steps);

function makeBatch(size: number): { xs: tf.Tensor4D; ys: tf.Tensor2D } {
  const xs = tf.randomUniform([batch, size, size, 3], 0, 255, 'float32', 1) as tf.Tensor4D;
  const labels = tf.tensor1d(
    Array.from({ length: batch }, (_, i) => i % 4),
    'int32',
  );
  const ys = tf.oneHot(labels, 4).toFloat() as tf.Tensor2D;
  labels.dispose();
  return { xs, ys };
}

function buildModel(size: number): tf.LayersModel {
  const model = buildClassifier({ imageSize: size, numClasses: 4 });
  model.compile({ optimizer: new Adam(1e-3), loss: 'categoricalCrossentropy' });
  return model;
}

async function timeSteps(size: number): Promise<number> {
  const model = buildModel(size);
  const { xs, ys } = makeBatch(size);
  await model.trainOnBatch(xs, ys); // warm-up: primitive creation, first allocations
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await model.trainOnBatch(xs, ys);
  const ms = (performance.now() - t0) / steps;
  tf.dispose([xs, ys]);
  model.dispose();
  return ms;
}

/**
 * Per-kernel wall time of one step, timed by wrapping every kernel of the current backend.
 * tf.profile reads each kernel's output back (dataSync), which disables the onednn engine's output
 * pool and adds page faults to every kernel: its absolute figures mislead. Nested kernels (a fused
 * op's inner kernels) are counted in both rows.
 */
async function profileStep(size: number): Promise<void> {
  const backendName = tf.getBackend();
  const byKernel = new Map<string, { calls: number; ms: number; elements: number }>();
  const originals = tf.getKernelsForBackend(backendName);
  for (const config of originals) {
    tf.unregisterKernel(config.kernelName, backendName);
    tf.registerKernel({
      ...config,
      kernelFunc: (args) => {
        const t = performance.now();
        const out = config.kernelFunc(args);
        const ms = performance.now() - t;
        const entry = byKernel.get(config.kernelName) ?? { calls: 0, ms: 0, elements: 0 };
        entry.calls++;
        entry.ms += ms;
        for (const o of Array.isArray(out) ? out : [out]) entry.elements += tf.util.sizeFromShape(o.shape);
        byKernel.set(config.kernelName, entry);
        return out;
      },
    });
  }
  const model = buildModel(size);
  const { xs, ys } = makeBatch(size);
  // Two warm-up steps: primitives are created and the output pool is filled, as in training.
  for (let i = 0; i < 2; i++) await model.trainOnBatch(xs, ys);
  byKernel.clear();
  const t0 = performance.now();
  await model.trainOnBatch(xs, ys);
  const wall = performance.now() - t0;
  for (const config of originals) {
    tf.unregisterKernel(config.kernelName, backendName);
    tf.registerKernel(config);
  }
  const rows = [...byKernel].sort((a, b) => b[1].ms - a[1].ms);
  const total = rows.reduce((s, [, e]) => s + e.ms, 0);
  console.log(`\nper-kernel time, one training step, ${tf.getBackend()} b${batch} ${size}px`);
  console.log(`step wall ${wall.toFixed(0)} ms, in kernels ${total.toFixed(0)} ms (nested counted twice)`);
  // Output elements (millions) show the work independently of how busy the shared machine was.
  console.log(
    'kernel'.padEnd(36) + 'calls'.padStart(7) + 'Melem'.padStart(9) + 'ms'.padStart(10) + '%'.padStart(7),
  );
  for (const [name, e] of rows.slice(0, 25)) {
    console.log(
      name.padEnd(36) +
        String(e.calls).padStart(7) +
        (e.elements / 1e6).toFixed(1).padStart(9) +
        e.ms.toFixed(1).padStart(10) +
        ((100 * e.ms) / total).toFixed(1).padStart(7),
    );
  }
  tf.dispose([xs, ys]);
  model.dispose();
}

/** PyTorch's step time for the same B0, batch and sizes (bench/pytorch_b0.py), or undefined. */
function torchTimes(): Map<number, number> | undefined {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'pytorch_b0.py');
  if (!existsSync('/usr/bin/python3')) return undefined;
  const run = spawnSync(
    '/usr/bin/python3',
    [script, '--batch', String(batch), '--steps', String(steps), '--sizes', opts.sizes],
    // Same OpenMP settings as the onednn engine (torch uses libgomp and oneDNN 2.6 too).
    {
      encoding: 'utf8',
      env: {
        ...process.env,
        OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? String(os.availableParallelism()),
        OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE',
      },
    },
  );
  if (run.status !== 0) {
    console.log(`pytorch: not measured (${(run.stderr || run.stdout).trim().split('\n').at(-1)})`);
    return undefined;
  }
  const times = new Map<number, number>();
  for (const m of run.stdout.matchAll(/size=(\d+) ms_per_step=([\d.]+)/g))
    times.set(Number(m[1]), Number(m[2]));
  return times;
}

const results = new Map<string, Map<number, number>>();
for (const engine of opts.engines.split(',') as EngineName[]) {
  try {
    await initEngine(engine);
  } catch (err) {
    console.log(`${engine}: unavailable (${err instanceof Error ? err.message : String(err)})`);
    continue;
  }
  const times = new Map<number, number>();
  for (const size of sizes) {
    if (opts.profile) {
      await profileStep(size);
      continue;
    }
    try {
      const ms = await timeSteps(size);
      times.set(size, ms);
      console.log(`engine=${engine} size=${size} batch=${batch} ms_per_step=${ms.toFixed(0)}`);
    } catch (err) {
      // e.g. wasm's 4 GiB heap at 224 px: report it and go on with the next size.
      console.log(
        `engine=${engine} size=${size} failed: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
  results.set(engine, times);
}

if (!opts.profile) {
  const torch = opts.torch ? torchTimes() : undefined;
  if (torch) results.set('pytorch', torch);
  console.log(
    `\nms per training step, EfficientNetB0, batch ${batch}${torch ? ' (ratio = pytorch / engine)' : ''}`,
  );
  console.log('engine'.padEnd(10) + sizes.map((s) => `${s}px`.padStart(16)).join(''));
  for (const [engine, times] of results) {
    const cells = sizes.map((s) => {
      const ms = times.get(s);
      const t = torch?.get(s);
      const ratio = ms && t && engine !== 'pytorch' ? ` (${(t / ms).toFixed(2)})` : '';
      return (ms ? `${ms.toFixed(0)}${ratio}` : '-').padStart(16);
    });
    console.log(engine.padEnd(10) + cells.join(''));
  }
}
