/**
 * Serving benchmark: the real server (`buildServer`) with the EfficientNetB0 architecture at
 * 224 px (random weights: speed does not depend on them), fed one 224 px JPEG over HTTP at
 * concurrency 1, 8 and 16, plus one 16-instance JSON batch. Prints p50/p99 latency, images/s,
 * tensor count and RSS before/after. Asserts nothing.
 *
 *   npm run bench:serve
 *   npm run bench:serve -- --engine wasm --requests 32 --concurrency 1,8,16
 *   npm run bench:serve -- --explain [--tta]   # ms per image with and without Grad-CAM (`explain`)
 *
 * The client runs in the same process as the server; its cost (one fetch per request) is small
 * next to a prediction. On a shared machine, check the printed load average: "cpu ms/image" (this
 * process's CPU time, server and client) is the steadier figure when other work competes.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Command } from 'commander';
import sharp from 'sharp';
import { ENGINE_NAMES, type EngineName, initEngine } from '../training-container/src/engine/index.ts';
import { LABELS } from '../training-container/src/labels.ts';
import { buildClassifier } from '../training-container/src/model/index.ts';
import { saveModel } from '../training-container/src/model-io.ts';
import { buildServer } from '../training-container/src/serve/server.ts';

interface Options {
  engine: EngineName | 'auto';
  size: number;
  concurrency: number[];
  requests: number;
  batch: number;
  explain: boolean;
  tta: boolean;
}

const int = (v: string) => Number.parseInt(v, 10);
const opts = new Command('bench:serve')
  .option(
    '--engine <name>',
    `auto or one of ${ENGINE_NAMES.join(', ')}`,
    process.env.BRAIN_TUMOR_ENGINE || 'auto',
  )
  .option('--size <px>', 'model input size', int, 224)
  .option('--concurrency <n,...>', 'client concurrency levels', (v) => v.split(',').map(int), [1, 8, 16])
  .option('--requests <n>', 'timed requests per concurrency level (at least 2 per client)', int, 32)
  .option('--batch <n>', 'instances in the JSON batch row (0 skips it)', int, 16)
  .option(
    '--explain',
    'instead: ms per image with and without explain (Grad-CAM), one request at a time',
    false,
  )
  .option('--tta', 'model with flip test-time augmentation (as the trained profiles)', false)
  .parse()
  .opts<Options>();

const DATASET = path.resolve('../shared/datasets/sartaj-brain-tumor-mri/Testing/glioma_tumor');

/** A real MRI slice from the dataset when present (resized to the size), else a synthetic one. */
async function benchImage(size: number): Promise<{ jpeg: Buffer; source: string }> {
  try {
    const files = (await readdir(DATASET)).filter((f) => /\.jpe?g$/i.test(f)).sort();
    const file = path.join(DATASET, files[0]);
    const jpeg = await sharp(await readFile(file))
      .resize(size, size)
      .jpeg({ quality: 90 })
      .toBuffer();
    return { jpeg, source: `${path.basename(file)} from the dataset, resized` };
  } catch {
    const raw = Buffer.alloc(size * size * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * 7919) % 251;
    const jpeg = await sharp(raw, { raw: { width: size, height: size, channels: 3 } })
      .jpeg()
      .toBuffer();
    return { jpeg, source: 'synthetic' };
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;

const engine = await initEngine(opts.engine, () => {});
const modelDir = await mkdtemp(path.join(os.tmpdir(), 'bench-serve-'));
const model = buildClassifier({
  imageSize: opts.size,
  numClasses: LABELS.length,
  tta: opts.tta ? 'flip' : 'none',
});
await saveModel(model, modelDir, { imageSize: opts.size, labels: [...LABELS] });
model.dispose();

const { jpeg, source } = await benchImage(opts.size);
const loadStart = performance.now();
const { app, ready } = buildServer({ modelDir, engine: engine.name, logger: false });
await app.listen({ port: 0, host: '127.0.0.1' });
await ready;
const address = app.server.address();
const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/invocations`;

async function predict(body: Uint8Array | string, contentType: string, query = ''): Promise<void> {
  const res = await fetch(url + query, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: body as BodyInit,
  });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`server answered ${res.status}`);
}

console.log(
  `engine=${engine.name} (${engine.detail}) cpus=${os.availableParallelism()} load=${os.loadavg()[0].toFixed(2)}`,
);
console.log(
  `model: EfficientNetB0 ${opts.size} px${opts.tta ? ' flip TTA' : ''}, random weights; image: ${jpeg.length} B JPEG (${source})`,
);
console.log(`load + warm-up: ${((performance.now() - loadStart) / 1000).toFixed(1)} s`);
// One untimed request so decoder and HTTP paths are warm too.
await predict(jpeg, 'image/jpeg');
const tensorsBefore = tf.memory().numTensors;
const rssBefore = process.memoryUsage().rss;

if (opts.explain) {
  await predict(jpeg, 'image/jpeg', '?explain=true'); // builds the Grad-CAM sub-model, warms its kernels
  const explainTensors = tf.memory().numTensors;
  /** Timed `rounds` requests, one at a time: [p50 wall ms, cpu ms] per image. */
  const time = async (
    body: Uint8Array | string,
    type: string,
    query: string,
    images: number,
    rounds: number,
  ) => {
    const latencies: number[] = [];
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      await predict(body, type, query);
      latencies.push(performance.now() - t0);
    }
    const cpu = process.cpuUsage(cpu0);
    latencies.sort((a, b) => a - b);
    return [percentile(latencies, 50) / images, (cpu.user + cpu.system) / 1000 / (rounds * images)];
  };
  const fmt = ([wall, cpu]: number[]) => `${wall.toFixed(0)} | ${cpu.toFixed(0)}`;
  console.log('\n| images/request | explain | requests | p50 wall ms/image | cpu ms/image |');
  console.log('|---|---|---|---|---|');
  for (const explain of [false, true]) {
    const query = explain ? '?explain=true' : '';
    console.log(
      `| 1 | ${explain} | ${opts.requests} | ${fmt(await time(jpeg, 'image/jpeg', query, 1, opts.requests))} |`,
    );
  }
  if (opts.batch > 0) {
    const instances = Array.from({ length: opts.batch }, () => ({ b64: jpeg.toString('base64') }));
    for (const explain of [false, true]) {
      const body = JSON.stringify({ instances, explain });
      await predict(body, 'application/json');
      console.log(
        `| ${opts.batch} | ${explain} | 3 | ${fmt(await time(body, 'application/json', '', opts.batch, 3))} |`,
      );
    }
  }
  console.log(
    `\ntensors: ${explainTensors} after the first explain, ${tf.memory().numTensors} at the end; RSS ${mb(process.memoryUsage().rss)}`,
  );
  await app.close();
  await rm(modelDir, { recursive: true, force: true });
  process.exit(0);
}

const rows: string[] = [];
for (const concurrency of opts.concurrency) {
  const total = Math.max(opts.requests, concurrency * 2);
  const latencies: number[] = [];
  let issued = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < total) {
        issued++;
        const t0 = performance.now();
        await predict(jpeg, 'image/jpeg');
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  rows.push(
    `| ${concurrency} | 1 | ${total} | ${percentile(latencies, 50).toFixed(0)} | ${percentile(latencies, 99).toFixed(0)} | ${(total / seconds).toFixed(2)} | ${((seconds * 1000) / total).toFixed(0)} | ${((cpu.user + cpu.system) / 1000 / total).toFixed(0)} |`,
  );
}

if (opts.batch > 0) {
  const body = JSON.stringify({
    instances: Array.from({ length: opts.batch }, () => ({ b64: jpeg.toString('base64') })),
  });
  await predict(body, 'application/json');
  const latencies: number[] = [];
  const rounds = 3;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await predict(body, 'application/json');
    latencies.push(performance.now() - t0);
  }
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  const p50 = percentile(latencies, 50);
  rows.push(
    `| 1 | ${opts.batch} | ${rounds} | ${p50.toFixed(0)} | ${percentile(latencies, 99).toFixed(0)} | ${((opts.batch * 1000) / p50).toFixed(2)} | ${(p50 / opts.batch).toFixed(0)} | ${((cpu.user + cpu.system) / 1000 / (rounds * opts.batch)).toFixed(0)} |`,
  );
}

const tensorsAfter = tf.memory().numTensors;
const rssAfter = process.memoryUsage().rss;
console.log(
  '\n| concurrency | images/request | requests | p50 ms | p99 ms | images/s | wall ms/image | cpu ms/image |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const row of rows) console.log(row);
console.log(
  `\ntensors: ${tensorsBefore} before, ${tensorsAfter} after; RSS: ${mb(rssBefore)} before, ${mb(rssAfter)} after`,
);

await app.close();
await rm(modelDir, { recursive: true, force: true });
