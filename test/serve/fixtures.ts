import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { LABELS } from '../../training-container/src/labels.ts';
import { buildClassifier } from '../../training-container/src/model/index.ts';
import { saveModel } from '../../training-container/src/model-io.ts';
import { buildServer, type ServerOptions } from '../../training-container/src/serve/server.ts';

/** Image size of the tiny test model: small so tests stay fast on 2 cores. */
export const TEST_IMAGE_SIZE = 16;

/**
 * Saves a tiny random classifier with the real artifact format (conv -> pool -> dense softmax
 * over the 4 labels) and returns its folder. Its predictions are meaningless but input-dependent.
 */
export async function saveTinyModel(dir?: string): Promise<string> {
  const modelDir = dir ?? (await mkdtemp(path.join(os.tmpdir(), 'bt-serve-model-')));
  await tf.setBackend('cpu');
  const model = tf.sequential({
    layers: [
      tf.layers.rescaling({ scale: 1 / 255, inputShape: [TEST_IMAGE_SIZE, TEST_IMAGE_SIZE, 3] }),
      tf.layers.conv2d({ filters: 4, kernelSize: 3, activation: 'relu' }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: LABELS.length, activation: 'softmax' }),
    ],
  });
  await saveModel(model, modelDir, {
    imageSize: TEST_IMAGE_SIZE,
    labels: [...LABELS],
    architecture: 'tiny-test',
  });
  model.dispose();
  return modelDir;
}

/**
 * The real EfficientNetB0 architecture (custom layers included) scaled down to 32 px and a tenth
 * of its width and depth: a trained artifact's layer types at a test's cost.
 */
export async function saveTinyEfficientNet(dir?: string): Promise<string> {
  const modelDir = dir ?? (await mkdtemp(path.join(os.tmpdir(), 'bt-serve-effnet-')));
  await tf.setBackend('cpu');
  const model = buildClassifier({ imageSize: 32, numClasses: LABELS.length, width: 0.1, depth: 0.1 });
  await saveModel(model, modelDir, { imageSize: 32, labels: [...LABELS] });
  model.dispose();
  return modelDir;
}

export interface RunningTestServer {
  url: string;
  modelDir: string;
  close: () => Promise<void>;
}

/** Starts the real server on a free loopback port with the tiny model, and waits for /ping 200. */
export async function startTestServer(options: Partial<ServerOptions> = {}): Promise<RunningTestServer> {
  const modelDir = options.modelDir ?? (await saveTinyModel());
  const { app, ready } = buildServer({ engine: 'cpu', logger: false, ...options, modelDir });
  await app.listen({ port: 0, host: '127.0.0.1' });
  await ready;
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('server has no TCP address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    modelDir,
    close: async () => {
      await app.close();
      if (!options.modelDir) await rm(modelDir, { recursive: true, force: true });
    },
  };
}

/** A small synthetic "scan": a bright blob on black, encoded as JPEG or PNG. */
export async function sampleImage(format: 'jpeg' | 'png', size = 32, seed = 1): Promise<Buffer> {
  const channels = 3;
  const raw = Buffer.alloc(size * size * channels);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const d = Math.hypot(x - (size * (seed % 5)) / 5, y - size / 2);
      const v = Math.max(0, 255 - d * (40 / seed));
      raw.fill(Math.round(v), (y * size + x) * channels, (y * size + x + 1) * channels);
    }
  }
  const img = sharp(raw, { raw: { width: size, height: size, channels } });
  return format === 'jpeg' ? img.jpeg().toBuffer() : img.png().toBuffer();
}

export async function postInvocation(
  url: string,
  body: Uint8Array | string | undefined,
  contentType?: string,
): Promise<{ status: number; json: unknown; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (contentType) headers['content-type'] = contentType;
  const res = await fetch(`${url}/invocations`, {
    method: 'POST',
    body: body as BodyInit | undefined,
    headers,
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = { unparsable: text };
  }
  return { status: res.status, json, headers: res.headers };
}
