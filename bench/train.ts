/**
 * Training-step benchmark: ms per EfficientNetB0 training step (forward + backward + Adam) at
 * batch 16 for 96 and 128 px on the selected engine. Prints figures, asserts nothing.
 *
 *   npm run bench:train                        # engine picked like the trainer ('auto')
 *   npm run bench:train -- --engine wasm --sizes 96 --steps 5
 *   npm run bench:train -- --all               # every engine that starts here (cpu excluded)
 *
 * "wall" is elapsed time; "cpu" is this process's CPU time, which is the steadier figure on a
 * shared machine (wasm runs on one thread, so cpu ~ wall when nothing else competes).
 */
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import { ENGINE_NAMES, type EngineName, initEngine } from '../training-container/src/engine/index.ts';
import { buildClassifier } from '../training-container/src/model/index.ts';
import { Adam } from '../training-container/src/train/adam.ts';

interface Options {
  engine: EngineName | 'auto';
  all: boolean;
  sizes: number[];
  batch: number;
  steps: number;
  warmup: number;
}

const list = (v: string) => v.split(',').map((s) => Number.parseInt(s, 10));
const program = new Command('bench:train')
  .option('--engine <name>', `auto or one of ${ENGINE_NAMES.join(', ')}`, 'auto')
  .option('--all', 'every available engine except cpu (>5 min per step)', false)
  .option('--sizes <px,...>', 'image sizes', list, [96, 128])
  .option('--batch <n>', 'batch size', (v) => Number.parseInt(v, 10), 16)
  .option('--steps <n>', 'timed steps per size', (v) => Number.parseInt(v, 10), 3)
  .option('--warmup <n>', 'untimed steps first (kernel setup, heap growth)', (v) => Number.parseInt(v, 10), 1)
  .parse();
const opts = program.opts<Options>();

async function benchSize(size: number): Promise<void> {
  const model = buildClassifier({ imageSize: size, numClasses: 4 });
  model.compile({ optimizer: new Adam(1e-3), loss: 'categoricalCrossentropy' });
  const x = tf.randomUniform([opts.batch, size, size, 3], 0, 255);
  const y = tf.oneHot(tf.randomUniform([opts.batch], 0, 4, 'int32'), 4);
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
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const backend = tf.backend() as { wasm?: { HEAPU8: Uint8Array } };
  const heap = backend.wasm ? ` wasm_heap_mb=${(backend.wasm.HEAPU8.length / 2 ** 20).toFixed(0)}` : '';
  console.log(
    `engine=${tf.getBackend()} size=${size} batch=${opts.batch} ms_per_step=${median(wall).toFixed(0)} ` +
      `cpu_ms_per_step=${median(cpu).toFixed(0)} steps=${wall.map((w) => w.toFixed(0)).join(',')}${heap}`,
  );
  tf.dispose([x, y]);
  model.dispose();
}

const engines: Array<EngineName | 'auto'> = opts.all
  ? ENGINE_NAMES.filter((e) => e !== 'cpu')
  : [opts.engine];
for (const engine of engines) {
  try {
    await initEngine(engine);
  } catch (err) {
    console.log(`engine ${engine}: unavailable (${err instanceof Error ? err.message : String(err)})`);
    continue;
  }
  for (const size of opts.sizes) await benchSize(size);
}
