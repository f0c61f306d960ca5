import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  loadArtifactConfig,
  loadModel,
  preprocessConfigOf,
  saveModel,
} from '../../training-container/src/model-io.ts';
import {
  imageToRgb,
  PREPROCESS_V1,
  type PreprocessOptions,
  pixelsToRgb,
} from '../../training-container/src/preprocess.ts';
import { decodeRequest } from '../../training-container/src/serve/decode-request.ts';
import { Predictor } from '../../training-container/src/serve/predictor.ts';
import { postInvocation, sampleImage, saveTinyModel, startTestServer, TEST_IMAGE_SIZE } from './fixtures.ts';

const V2: PreprocessOptions = {
  version: 2,
  background: 'keep',
  crop: 'head',
  resize: 'pad',
  intensity: 'standardize',
  grey: true,
};

/** A coloured 40 x 24 image with a dark frame: every v2 option changes its pixels. */
async function colouredImage(): Promise<{ png: Buffer; pixels: number[]; shape: [number, number, number] }> {
  const w = 40;
  const h = 24;
  const px = Buffer.alloc(w * h * 3);
  for (let y = 4; y < h - 4; y++) {
    for (let x = 6; x < w - 6; x++) px.set([x * 6, 250 - y * 8, 90], (y * w + x) * 3);
  }
  return {
    png: await sharp(px, { raw: { width: w, height: h, channels: 3 } })
      .png()
      .toBuffer(),
    pixels: Array.from(px),
    shape: [h, w, 3],
  };
}

async function rewriteConfig(dir: string, edit: (json: Record<string, unknown>) => void): Promise<void> {
  const file = path.join(dir, 'preprocessing.json');
  const json = JSON.parse(await readFile(file, 'utf8'));
  edit(json);
  await writeFile(file, JSON.stringify(json, null, 2));
}

describe('preprocessing recorded in the model artifact', () => {
  let root: string;
  let modelDir: string;

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'bt-preprocessing-'));
    modelDir = await saveTinyModel(path.join(root, 'model'));
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('writes version 1 into preprocessing.json when nothing else is asked for', async () => {
    const json = JSON.parse(await readFile(path.join(modelDir, 'preprocessing.json'), 'utf8'));
    // `background` at its default is left out, so code from before that option reads the file.
    const { background: _, ...v1 } = PREPROCESS_V1;
    expect(json.preprocessing).toEqual(v1);
    expect((await loadArtifactConfig(modelDir)).preprocessing).toEqual(PREPROCESS_V1);
  });

  it('records background=border, and reads it back', async () => {
    const dir = path.join(root, 'border');
    const { model, config } = await loadModel(modelDir);
    await saveModel(model, dir, {
      imageSize: TEST_IMAGE_SIZE,
      labels: config.labels,
      preprocessing: { ...V2, background: 'border' },
    });
    model.dispose();
    const json = JSON.parse(await readFile(path.join(dir, 'preprocessing.json'), 'utf8'));
    expect(json.preprocessing.background).toBe('border');
    expect((await loadArtifactConfig(dir)).preprocessing).toEqual({ ...V2, background: 'border' });
  });

  it('loads an artifact of the previous format (no preprocessing field) as version 1 and predicts as before', async () => {
    const oldDir = path.join(root, 'old-format');
    await cp(modelDir, oldDir, { recursive: true });
    await rewriteConfig(oldDir, (json) => {
      delete json.preprocessing;
    });
    const config = await loadArtifactConfig(oldDir);
    expect(config.preprocessing).toEqual(PREPROCESS_V1);
    expect(preprocessConfigOf(config)).toEqual({ imageSize: TEST_IMAGE_SIZE, ...PREPROCESS_V1 });

    const image = await sampleImage('jpeg', 40, 2);
    // What the server fed this model before the options existed.
    const before = Float32Array.from(
      await sharp(image)
        .rotate()
        .flatten({ background: { r: 0, g: 0, b: 0 } })
        .toColourspace('srgb')
        .resize(TEST_IMAGE_SIZE, TEST_IMAGE_SIZE, { fit: 'fill', kernel: 'cubic' })
        .removeAlpha()
        .raw()
        .toBuffer(),
    );
    const predictor = await Predictor.load(oldDir);
    try {
      const decoded = await decodeRequest('image/jpeg', image, predictor.preprocessing);
      expect(decoded.images[0]).toEqual(before);
      expect(await predictor.predict(decoded.images)).toEqual(await predictor.predict([before]));
    } finally {
      predictor.dispose();
    }
  });

  it('serves a version 2 model with its recorded options, for images and pixel arrays', async () => {
    const v2Dir = path.join(root, 'v2');
    const { model, config: original } = await loadModel(modelDir);
    const saved = await saveModel(model, v2Dir, {
      imageSize: TEST_IMAGE_SIZE,
      labels: original.labels,
      architecture: original.architecture,
      preprocessing: V2,
    });
    model.dispose();
    expect(saved.modelVersion).toBe(original.modelVersion);
    expect((await loadArtifactConfig(v2Dir)).preprocessing).toEqual(V2);

    const { png, pixels, shape } = await colouredImage();
    const config = { imageSize: TEST_IMAGE_SIZE, ...V2 };
    const fromImage = await imageToRgb(png, config);
    const fromPixels = await pixelsToRgb(pixels, shape, config);
    expect(fromImage).not.toEqual(await imageToRgb(png, TEST_IMAGE_SIZE));

    const predictor = await Predictor.load(v2Dir);
    const server = await startTestServer({ modelDir: v2Dir });
    try {
      expect(predictor.preprocessing).toEqual(config);
      const [expectedImage, expectedPixels, v1Answer] = await predictor.predict([
        fromImage,
        fromPixels,
        await imageToRgb(png, TEST_IMAGE_SIZE),
      ]);
      const single = await postInvocation(server.url, png, 'image/png');
      expect(single.status).toBe(200);
      expect(single.json).toEqual(expectedImage);
      expect(single.json).not.toEqual(v1Answer);
      const batch = await postInvocation(
        server.url,
        JSON.stringify({ instances: [{ b64: png.toString('base64') }, { pixels, shape }] }),
        'application/json',
      );
      expect(batch.status).toBe(200);
      expect(batch.json).toEqual({ predictions: [expectedImage, expectedPixels] });
    } finally {
      predictor.dispose();
      await server.close();
    }
  });

  it.each([
    ['an unknown version', { version: 3 }],
    ['options under version 1', { version: 1, crop: 'head' }],
    ['an unknown option', { version: 2, equalize: true }],
  ])('refuses a preprocessing.json with %s', async (_, preprocessing) => {
    const dir = path.join(root, `bad-${Math.random().toString(36).slice(2)}`);
    await cp(modelDir, dir, { recursive: true });
    await rewriteConfig(dir, (json) => {
      json.preprocessing = preprocessing;
    });
    await expect(loadArtifactConfig(dir)).rejects.toThrow();
  });
});
