import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EngineName, initEngine } from '../../training-container/src/engine/index.ts';
import { LABELS } from '../../training-container/src/labels.ts';
import { buildClassifier } from '../../training-container/src/model/index.ts';
import { saveModel } from '../../training-container/src/model-io.ts';
import { PredictionSchema, PredictionsSchema } from '../../training-container/src/serve/contract.ts';
import { Predictor } from '../../training-container/src/serve/predictor.ts';
import { heatLevels, SIZE, SQUARE, saveBrightnessModel, squareImage, squarePng } from './brightness-model.ts';
import { type RunningTestServer, startTestServer } from './fixtures.ts';

/**
 * Grad-CAM (`explain`): a hand-set model whose class 0 is "bright", with flip TTA inside, must
 * point at a bright square planted off-centre in a black image, and not at the square's mirror
 * image (what a heatmap that forgot to un-mirror the TTA half would also light up).
 */

function meanOver(levels: number[], left: number, top: number, side: number): number {
  let sum = 0;
  for (let y = top; y < top + side; y++) for (let x = left; x < left + side; x++) sum += levels[y * SIZE + x];
  return sum / (side * side);
}

function expectPointsAtSquare(levels: number[]): void {
  const peak = levels.indexOf(Math.max(...levels));
  const [px, py] = [peak % SIZE, Math.floor(peak / SIZE)];
  // In the square, or one pixel around it (bilinear upsampling of the 3x3-blurred map).
  expect(px).toBeGreaterThanOrEqual(SQUARE.left - 1);
  expect(px).toBeLessThanOrEqual(SQUARE.left + SQUARE.side);
  expect(py).toBeGreaterThanOrEqual(SQUARE.top - 1);
  expect(py).toBeLessThanOrEqual(SQUARE.top + SQUARE.side);
  const inSquare = meanOver(levels, SQUARE.left, SQUARE.top, SQUARE.side);
  const atMirror = meanOver(levels, SIZE - SQUARE.left - SQUARE.side, SQUARE.top, SQUARE.side);
  const corner = meanOver(levels, SIZE - 3, SIZE - 3, 3);
  expect(inSquare).toBeGreaterThan(150);
  expect(atMirror).toBeLessThan(inSquare / 4);
  expect(corner).toBeLessThan(20);
}

let modelDir: string;

beforeAll(async () => {
  modelDir = await mkdtemp(path.join(os.tmpdir(), 'bt-explain-'));
  await saveBrightnessModel(modelDir);
});

afterAll(async () => {
  await rm(modelDir, { recursive: true, force: true });
  await initEngine('cpu', () => {});
});

const ENGINES: EngineName[] = ['cpu', 'wasm', 'onednn'];

describe.each(ENGINES)('Grad-CAM on the %s engine', (engine) => {
  let predictor: Predictor | undefined;
  let skip = '';

  beforeAll(async () => {
    try {
      await initEngine(engine, () => {});
    } catch (err) {
      skip = (err as Error).message;
      return;
    }
    predictor = await Predictor.load(modelDir);
  });
  afterAll(() => predictor?.dispose());

  it('points at the planted bright square, not at its mirror, and leaks no tensor', async (ctx) => {
    if (!predictor) return ctx.skip(skip);
    const image = squareImage();
    const plain = await predictor.predict([image]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const [explained] = await predictor.predict([image], { explain: true });
      expect(tf.memory().numTensors).toBe(before);
      expect(explained.label).toBe(LABELS[0]);
      expect(explained.label).toBe(plain[0].label);
      for (const label of LABELS) {
        expect(explained.probabilities[label]).toBeCloseTo(plain[0].probabilities[label], 5);
      }
      const heatmap = explained.heatmap;
      if (!heatmap) throw new Error('no heatmap');
      expect([heatmap.width, heatmap.height]).toEqual([SIZE, SIZE]);
      const decoded = await heatLevels(heatmap.png);
      expect([decoded.width, decoded.height]).toEqual([SIZE, SIZE]);
      expectPointsAtSquare(decoded.levels);
    }
  });

  it('a square on the other side moves the heatmap with it (batch of two)', async (ctx) => {
    if (!predictor) return ctx.skip(skip);
    const mirrored = new Float32Array(SIZE * SIZE * 3);
    const image = squareImage();
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        mirrored.set(
          image.subarray((y * SIZE + x) * 3, (y * SIZE + x) * 3 + 3),
          (y * SIZE + (SIZE - 1 - x)) * 3,
        );
      }
    }
    const [a, b] = await predictor.predict([image, mirrored], { explain: true });
    const left = await heatLevels(a.heatmap?.png ?? '');
    const right = await heatLevels(b.heatmap?.png ?? '');
    expectPointsAtSquare(left.levels);
    const rightSide = meanOver(right.levels, SIZE - SQUARE.left - SQUARE.side, SQUARE.top, SQUARE.side);
    expect(rightSide).toBeGreaterThan(150);
    expect(meanOver(right.levels, SQUARE.left, SQUARE.top, SQUARE.side)).toBeLessThan(rightSide / 4);
  });

  it('explains the EfficientNet architecture with flip TTA (top_activation), tensors flat', async (ctx) => {
    if (!predictor) return ctx.skip(skip);
    const model = buildClassifier({
      imageSize: 32,
      numClasses: LABELS.length,
      width: 0.1,
      depth: 0.1,
      tta: 'flip',
      seed: 3,
    });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bt-explain-effnet-'));
    try {
      await saveModel(model, dir, { imageSize: 32, labels: [...LABELS] });
      const effnet = await Predictor.load(dir);
      try {
        const images = [new Float32Array(32 * 32 * 3).fill(90), new Float32Array(32 * 32 * 3).fill(200)];
        await effnet.predict(images, { explain: true });
        const before = tf.memory().numTensors;
        const out = await effnet.predict(images, { explain: true });
        expect(tf.memory().numTensors).toBe(before);
        for (const p of out) {
          expect(PredictionSchema.parse(p).heatmap).toMatchObject({ width: 32, height: 32 });
          const meta = await sharp(Buffer.from(p.heatmap?.png ?? '', 'base64')).metadata();
          expect([meta.format, meta.width, meta.height]).toEqual(['png', 32, 32]);
        }
      } finally {
        effnet.dispose();
      }
    } finally {
      model.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('explain through the server', () => {
  let server: RunningTestServer;

  beforeAll(async () => {
    server = await startTestServer({ modelDir });
  });
  afterAll(() => server.close());

  const post = (body: string | Buffer, type: string, query = '') =>
    fetch(`${server.url}/invocations${query}`, {
      method: 'POST',
      headers: { 'content-type': type },
      body: typeof body === 'string' ? body : new Uint8Array(body),
    });

  it('JSON "explain": true gives each prediction a heatmap at the input size, with its frame', async () => {
    const b64 = (await squarePng()).toString('base64');
    const before = tf.memory().numTensors;
    const res = await post(
      JSON.stringify({ instances: [{ b64 }, { b64 }], explain: true }),
      'application/json',
    );
    expect(res.status).toBe(200);
    const { predictions } = PredictionsSchema.parse(await res.json());
    expect(predictions).toHaveLength(2);
    for (const p of predictions) {
      expect(p.heatmap).toMatchObject({
        width: SIZE,
        height: SIZE,
        frame: { left: 0, top: 0, width: SIZE, height: SIZE },
      });
      expectPointsAtSquare((await heatLevels(p.heatmap?.png ?? '')).levels);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('no explain, or explain false: no heatmap', async () => {
    const b64 = (await squarePng()).toString('base64');
    for (const body of [{ instances: [{ b64 }] }, { instances: [{ b64 }], explain: false }]) {
      const res = await post(JSON.stringify(body), 'application/json');
      const { predictions } = PredictionsSchema.parse(await res.json());
      expect(predictions[0].heatmap).toBeUndefined();
    }
  });

  it('an image body asks with ?explain=true', async () => {
    const res = await post(await squarePng(), 'image/png', '?explain=true');
    expect(res.status).toBe(200);
    const p = PredictionSchema.parse(await res.json());
    expectPointsAtSquare((await heatLevels(p.heatmap?.png ?? '')).levels);
  });

  it('a non-boolean explain is a 400 with a JSON error', async () => {
    const b64 = (await squarePng()).toString('base64');
    for (const explain of ['true', 1, null, {}]) {
      const res = await post(JSON.stringify({ instances: [{ b64 }], explain }), 'application/json');
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({
        error: { code: 'INVALID_REQUEST', message: expect.stringMatching(/explain/) },
      });
    }
    // A malformed query, a repeated one (fastify hands it over as an array), ?explain on JSON.
    for (const [body, type, query] of [
      [await squarePng(), 'image/png', '?explain=yes'],
      [await squarePng(), 'image/png', '?explain=true&explain=false'],
      [JSON.stringify({ instances: [{ b64 }] }), 'application/json', '?explain=true'],
    ] as const) {
      const res = await post(body, type, query);
      expect(res.status, query).toBe(400);
      expect(await res.json()).toMatchObject({
        error: { code: 'INVALID_REQUEST', message: expect.stringMatching(/explain/) },
      });
    }
  });
});

describe('heatmap frame (where the input square lies in the image)', () => {
  it('is the whole image when stretched and the padded square when padded', async () => {
    const { imageInput, pixelsInput } = await import('../../training-container/src/preprocess.ts');
    const png = await sharp({ create: { width: 48, height: 32, channels: 3, background: '#404040' } })
      .png()
      .toBuffer();
    const pad = {
      imageSize: 16,
      version: 2,
      crop: 'none',
      resize: 'pad',
      intensity: 'raw',
      grey: false,
    } as const;
    expect((await imageInput(png, 16)).frame).toEqual({ left: 0, top: 0, width: 48, height: 32 });
    expect((await imageInput(png, pad)).frame).toEqual({ left: 0, top: -8, width: 48, height: 48 });
    const pixels = new Array(32 * 48 * 3).fill(64);
    expect((await pixelsInput(pixels, [32, 48, 3], pad)).frame).toEqual({
      left: 0,
      top: -8,
      width: 48,
      height: 48,
    });
  });

  it('is the head box, squared, when cropped and padded: the same crop the pixels went through', async () => {
    const { imageInput } = await import('../../training-container/src/preprocess.ts');
    // A bright 20 x 10 "head" at (10, 4) on black.
    const head = await sharp({ create: { width: 20, height: 10, channels: 3, background: '#e0e0e0' } })
      .png()
      .toBuffer();
    const png = await sharp({ create: { width: 64, height: 40, channels: 3, background: '#000000' } })
      .composite([{ input: head, left: 10, top: 4 }])
      .png()
      .toBuffer();
    const config = {
      imageSize: 16,
      version: 2,
      crop: 'head',
      resize: 'pad',
      intensity: 'raw',
      grey: false,
    } as const;
    const input = await imageInput(png, config);
    // headBox adds a 2 % margin (0 px at this size): 20 x 10 at (10, 4), padded to 20 x 20.
    expect(input.frame).toEqual({ left: 10, top: -1, width: 20, height: 20 });
  });
});
