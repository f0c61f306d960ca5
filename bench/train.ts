/**
 * Training-step benchmark: ms per EfficientNetB0 training step (forward, backward, Adam,
 * categorical cross-entropy) at batch 16 for each engine that starts here, and PyTorch's time for
 * the same model and shapes (bench/pytorch_b0.py) when Debian's python3-torch is installed, with
 * the ratio PyTorch / engine (above 1: faster than PyTorch). Prints figures, asserts nothing.
 *
 *   npm run bench:train                                   # every engine but cpu, 96/128/224 px
 *   npm run bench:train -- --engines onednn --sizes 128 --steps 5
 *   npm run bench:train -- --engines onednn --sizes 128 --profile   # per-kernel table of one step
 *
 * Each figure is the median of `--steps` steps after `--warmup` untimed ones (kernel setup, the
 * onednn output pool filling). "cpu" is this process's CPU time per step, the steadier figure on a
 * shared machine. wasm stops at 224 px (its 4 GiB heap); that is reported, not fatal.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { ENGINE_NAMES, type EngineName, initEngine } from '../training-container/src/engine/index.ts';
import { configureThreads } from '../training-container/src/engine/onednn.ts';
import { buildClassifier } from '../training-container/src/model/index.ts';
import { Adam } from '../training-container/src/train/adam.ts';

interface Options {
  engines: string;
  sizes: number[];
  batch: number;
  steps: number;
  warmup: number;
  profile?: boolean;
  torch: boolean;
  width: number;
  depth: number;
}

const int = (v: string) => Number.parseInt(v, 10);
const opts = new Command('bench:train')
  .option(
    '--engines <list>',
    `comma-separated, from ${ENGINE_NAMES.join(', ')}`,
    'tfjs-node-gpu,tfjs-node,onednn,wasm',
  )
  .option('--sizes <px,...>', 'image sizes', (v) => v.split(',').map(int), [96, 128, 224])
  .option('--batch <n>', 'batch size', int, 16)
  .option('--steps <n>', 'timed steps per size', int, 5)
  .option('--warmup <n>', 'untimed steps first', int, 2)
  .option('--width <x>', 'EfficientNet width multiplier (1 = B0)', Number, 1)
  .option('--depth <x>', 'EfficientNet depth multiplier (1 = B0)', Number, 1)
  .option('--profile', 'print the per-kernel time table of one step instead of timing')
  .option('--no-torch', 'skip the PyTorch comparison')
  .parse()
  .opts<Options>();

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

function setup(size: number): { model: tf.LayersModel; x: tf.Tensor; y: tf.Tensor } {
  const model = buildClassifier({ imageSize: size, numClasses: 4, width: opts.width, depth: opts.depth });
  model.compile({ optimizer: new Adam(1e-3), loss: 'categoricalCrossentropy' });
  const x = tf.randomUniform([opts.batch, size, size, 3], 0, 255, 'float32', 1);
  const y = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: opts.batch }, (_, i) => i % 4),
      'int32',
    ),
    4,
  );
  return { model, x, y };
}

/** Median wall ms per step, printed with CPU time and every step's time. */
async function timeSteps(size: number): Promise<number> {
  const { model, x, y } = setup(size);
  for (let i = 0; i < opts.warmup; i++) await model.trainOnBatch(x, y);
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < opts.steps; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await model.trainOnBatch(x, y);
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  const backend = tf.backend() as { wasm?: { HEAPU8: Uint8Array } };
  const heap = backend.wasm ? ` wasm_heap_mb=${(backend.wasm.HEAPU8.length / 2 ** 20).toFixed(0)}` : '';
  console.log(
    `engine=${tf.getBackend()} size=${size} batch=${opts.batch} ms_per_step=${median(wall).toFixed(0)} ` +
      `cpu_ms_per_step=${median(cpu).toFixed(0)} steps=${wall.map((w) => w.toFixed(0)).join(',')}${heap}`,
  );
  tf.dispose([x, y]);
  model.dispose();
  return median(wall);
}

/**
 * Per-kernel wall time of one step, timed by wrapping every kernel of the current backend.
 * tf.profile reads each kernel's output back (dataSync), which disables the onednn engine's output
 * pool and adds page faults to every kernel: its absolute figures mislead. Nested kernels (a fused
 * op's inner kernels) are counted in both rows. "Melem": millions of output elements, the work.
 */
async function profileStep(size: number): Promise<void> {
  const backendName = tf.getBackend();
  const byKernel = new Map<string, { calls: number; ms: number; cpuMs: number; elements: number }>();
  const originals = tf.getKernelsForBackend(backendName);
  for (const config of originals) {
    tf.unregisterKernel(config.kernelName, backendName);
    tf.registerKernel({
      ...config,
      kernelFunc: (args) => {
        const t = performance.now();
        const c = process.cpuUsage();
        const out = config.kernelFunc(args);
        const cpu = process.cpuUsage(c);
        const entry = byKernel.get(config.kernelName) ?? { calls: 0, ms: 0, cpuMs: 0, elements: 0 };
        entry.calls++;
        entry.ms += performance.now() - t;
        entry.cpuMs += (cpu.user + cpu.system) / 1000;
        for (const o of Array.isArray(out) ? out : [out]) entry.elements += tf.util.sizeFromShape(o.shape);
        byKernel.set(config.kernelName, entry);
        return out;
      },
    });
  }
  const { model, x, y } = setup(size);
  for (let i = 0; i < opts.warmup; i++) await model.trainOnBatch(x, y);
  byKernel.clear();
  const t0 = performance.now();
  await model.trainOnBatch(x, y);
  const wall = performance.now() - t0;
  for (const config of originals) {
    tf.unregisterKernel(config.kernelName, backendName);
    tf.registerKernel(config);
  }
  const rows = [...byKernel].sort((a, b) => b[1].ms - a[1].ms);
  const total = rows.reduce((s, [, e]) => s + e.ms, 0);
  console.log(`\nper-kernel time, one training step, ${backendName} b${opts.batch} ${size}px`);
  console.log(`step wall ${wall.toFixed(0)} ms, in kernels ${total.toFixed(0)} ms (nested counted twice)`);
  console.log(
    `${'kernel'.padEnd(36)}${'calls'.padStart(7)}${'Melem'.padStart(9)}${'ms'.padStart(10)}${'%'.padStart(7)}${'cores'.padStart(7)}`,
  );
  for (const [name, e] of rows.slice(0, 25)) {
    console.log(
      name.padEnd(36) +
        String(e.calls).padStart(7) +
        (e.elements / 1e6).toFixed(1).padStart(9) +
        e.ms.toFixed(1).padStart(10) +
        ((100 * e.ms) / total).toFixed(1).padStart(7) +
        (e.ms > 0 ? (e.cpuMs / e.ms).toFixed(2) : '-').padStart(7),
    );
  }
  tf.dispose([x, y]);
  model.dispose();
}

/** This environment with the OpenMP settings the onednn engine fills in where it sets none. */
function ompEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  configureThreads(env);
  return env;
}

/** PyTorch's median step time for the same B0, batch and sizes, or undefined (and why). */
function torchTimes(): Map<number, number> | undefined {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'pytorch_b0.py');
  if (!existsSync('/usr/bin/python3')) {
    console.log('pytorch: not measured (no /usr/bin/python3; apt-get install python3-torch)');
    return undefined;
  }
  const run = spawnSync(
    '/usr/bin/python3',
    [
      script,
      ...['--batch', String(opts.batch), '--steps', String(opts.steps), '--warmup', String(opts.warmup)],
      ...['--sizes', opts.sizes.join(',')],
    ],
    // The onednn engine's OpenMP settings (torch uses libgomp and oneDNN too).
    { encoding: 'utf8', env: ompEnv() },
  );
  if (run.status !== 0) {
    console.log(`pytorch: not measured (${(run.stderr || run.stdout).trim().split('\n').at(-1)})`);
    return undefined;
  }
  process.stdout.write(run.stdout);
  const times = new Map<number, number>();
  for (const m of run.stdout.matchAll(/size=(\d+) ms_per_step=([\d.]+)/g)) times.set(int(m[1]), Number(m[2]));
  return times;
}

const results = new Map<string, Map<number, number>>();
for (const engine of opts.engines.split(',') as EngineName[]) {
  try {
    await initEngine(engine);
  } catch (err) {
    console.log(`engine ${engine}: unavailable (${err instanceof Error ? err.message : String(err)})`);
    continue;
  }
  const times = new Map<number, number>();
  for (const size of opts.sizes) {
    try {
      if (opts.profile) await profileStep(size);
      else times.set(size, await timeSteps(size));
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
    `\nms per training step, EfficientNetB0, batch ${opts.batch}${torch ? ' (ratio = pytorch / engine)' : ''}`,
  );
  console.log('engine'.padEnd(10) + opts.sizes.map((s) => `${s}px`.padStart(16)).join(''));
  for (const [engine, times] of results) {
    const cells = opts.sizes.map((s) => {
      const ms = times.get(s);
      const t = torch?.get(s);
      const ratio = ms && t && engine !== 'pytorch' ? ` (${(t / ms).toFixed(2)})` : '';
      return (ms ? `${ms.toFixed(0)}${ratio}` : '-').padStart(16);
    });
    console.log(engine.padEnd(10) + cells.join(''));
  }
}
