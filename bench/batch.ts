/**
 * Batch benchmark: `brain-tumor batch` end to end (lib/local/batch.ts `batchLocally`) on a folder
 * of 224 px JPEGs: the container's serve entrypoint as a child process in batch mode, JSON Lines
 * requests as a MULTI_RECORD transform job sends them. Prints images/s with the engine and the
 * settings used. Asserts nothing; trains nothing.
 *
 *   npm run bench:batch
 *   npm run bench:batch -- --images 200 --engine wasm
 *   npm run bench:batch -- --model .brain-tumor/... --concurrency 1 --max-payload-mb 2
 *
 * Images: SARTAJ scans from ../shared/datasets/sartaj-brain-tumor-mri resized to 224 px when the
 * dataset is there (cycled when N is larger than it), else synthetic ones. Model: `--model`, else
 * an untrained EfficientNetB0 at 224 px (speed does not depend on the weights), as bench:serve.
 * The time excludes the container's start (model load and warm-up), printed apart.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import sharp from 'sharp';
import { batchLocally } from '../lib/local/batch.ts';
import { resolveModel } from '../lib/pipeline/model-location.ts';
import { ENGINE_NAMES } from '../training-container/src/engine/index.ts';
import { LABELS } from '../training-container/src/labels.ts';
import { buildClassifier } from '../training-container/src/model/index.ts';
import { saveModel } from '../training-container/src/model-io.ts';
import type { BatchStrategy } from '../training-container/src/serve/contract.ts';

interface Options {
  images: number;
  model?: string;
  engine: string;
  size: number;
  concurrency?: number;
  maxPayloadMb?: number;
  batchStrategy?: BatchStrategy;
}

const int = (v: string) => Number.parseInt(v, 10);
const opts = new Command('bench:batch')
  .option('--images <n>', 'images to score', int, 1000)
  .option(
    '--model <path>',
    'model folder, train output folder or model.tar.gz (default: untrained EfficientNetB0)',
  )
  .option(
    '--engine <name>',
    `auto or one of ${ENGINE_NAMES.join(', ')}`,
    process.env.BRAIN_TUMOR_ENGINE || 'auto',
  )
  .option('--size <px>', 'image size (and the untrained model input size)', int, 224)
  .option('--concurrency <n>', "MaxConcurrentTransforms (default: the container's)", int)
  .option('--max-payload-mb <n>', "MaxPayloadInMB (default: the container's)", int)
  .option('--batch-strategy <s>', 'MULTI_RECORD or SINGLE_RECORD')
  .parse()
  .opts<Options>();

const DATASET = path.resolve('../shared/datasets/sartaj-brain-tumor-mri');

/** Every JPEG of the dataset, sorted, or none when it is absent. */
async function datasetFiles(): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (/\.jpe?g$/i.test(entry.name)) files.push(p);
    }
  };
  await walk(DATASET);
  return files.sort();
}

/** N JPEGs of `size` px in `dir/<folder>/`, 100 per folder (a nested folder, as a user's would be). */
async function makeImages(dir: string, n: number, size: number): Promise<string> {
  const sources = await datasetFiles();
  for (let i = 0; i < n; i++) {
    let jpeg: Buffer;
    if (sources.length) {
      jpeg = await sharp(await readFile(sources[i % sources.length]))
        .resize(size, size, { fit: 'fill' })
        .jpeg({ quality: 90 })
        .toBuffer();
    } else {
      const raw = Buffer.alloc(size * size * 3);
      for (let k = 0; k < raw.length; k++) raw[k] = (k * 7919 + i * 104729) % 251;
      jpeg = await sharp(raw, { raw: { width: size, height: size, channels: 3 } })
        .jpeg()
        .toBuffer();
    }
    const folder = path.join(dir, `part-${String(Math.floor(i / 100)).padStart(3, '0')}`);
    if (i % 100 === 0) await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, `image-${String(i).padStart(5, '0')}.jpg`), jpeg);
  }
  return sources.length ? `SARTAJ scans resized to ${size} px` : `synthetic ${size} px`;
}

const tmp = await mkdtemp(path.join(os.tmpdir(), 'bench-batch-'));
try {
  const data = path.join(tmp, 'images');
  let t0 = performance.now();
  const source = await makeImages(data, opts.images, opts.size);
  console.log(
    `images: ${opts.images} (${source}), written in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  let modelDir: string;
  let cleanup = async () => {};
  let modelName: string;
  if (opts.model) {
    const model = await resolveModel(opts.model);
    modelDir = model.dir;
    cleanup = model.cleanup;
    modelName = opts.model;
  } else {
    await tf.setBackend('cpu');
    modelDir = path.join(tmp, 'model');
    const model = buildClassifier({ imageSize: opts.size, numClasses: LABELS.length });
    await saveModel(model, modelDir, { imageSize: opts.size, labels: [...LABELS] });
    model.dispose();
    modelName = `EfficientNetB0 ${opts.size} px, untrained`;
  }
  console.log(`model: ${modelName}`);
  console.log(`machine: ${os.availableParallelism()} cpus, load ${os.loadavg()[0].toFixed(2)}`);

  try {
    t0 = performance.now();
    let startup = 0;
    let lastPrint = 0;
    const summary = await batchLocally({
      inputDir: data,
      outFile: path.join(tmp, 'results.jsonl'),
      modelDir,
      engine: opts.engine,
      concurrency: opts.concurrency,
      maxPayloadInMB: opts.maxPayloadMb,
      strategy: opts.batchStrategy,
      onStart: () => {
        startup = (performance.now() - t0) / 1000;
      },
      onProgress: (p) => {
        if (p.done - lastPrint >= 100 || p.done === p.total) {
          lastPrint = p.done;
          console.log(`  ${p.done}/${p.total} ${p.imagesPerSecond.toFixed(2)} images/s`);
        }
      },
    });
    console.log(`\nserve start (load + warm-up): ${startup.toFixed(1)} s`);
    console.log(
      `| engine | images | concurrency | MaxPayloadInMB | strategy | requests | seconds | images/s | errors |`,
    );
    console.log('|---|---|---|---|---|---|---|---|---|');
    const errors = Object.values(summary.errors).reduce((a, b) => a + b, 0);
    console.log(
      `| ${summary.engine ?? opts.engine} | ${summary.processed} | ${summary.concurrency} | ${summary.maxPayloadInMB} | ${summary.batchStrategy} | ${summary.requests} | ${summary.seconds.toFixed(1)} | ${summary.imagesPerSecond.toFixed(2)} | ${errors} |`,
    );
    console.log(`load average at the end: ${os.loadavg()[0].toFixed(2)}`);
  } finally {
    await cleanup();
  }
} finally {
  await rm(tmp, { recursive: true, force: true });
}
