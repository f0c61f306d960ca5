import { rm } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '../../training-container/src/labels.ts';
import { MAX_BODY_BYTES, MAX_INSTANCES } from '../../training-container/src/serve/contract.ts';
import { Predictor } from '../../training-container/src/serve/predictor.ts';
import { buildServer } from '../../training-container/src/serve/server.ts';
import {
  postInvocation,
  type RunningTestServer,
  sampleImage,
  saveTinyEfficientNet,
  saveTinyModel,
  startTestServer,
} from './fixtures.ts';

interface Prediction {
  label: string;
  probabilities: Record<string, number>;
  modelVersion: string;
}

function expectPrediction(value: unknown): Prediction {
  const p = value as Prediction;
  expect(LABELS).toContain(p.label);
  expect(Object.keys(p.probabilities)).toEqual([...LABELS]);
  const probs = Object.values(p.probabilities);
  for (const v of probs) expect(v).toBeGreaterThanOrEqual(0);
  expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  // The label is the most probable class.
  expect(p.probabilities[p.label]).toBe(Math.max(...probs));
  expect(p.modelVersion).toMatch(/^[0-9a-f]{16}$/);
  return p;
}

function expectError(res: { status: number; json: unknown }, status: number, code: string): void {
  expect({ status: res.status, json: res.json }).toMatchObject({ status, json: { error: { code } } });
  const message = (res.json as { error: { message: string } }).error.message;
  expect(typeof message).toBe('string');
  // Never a stack trace in a response.
  expect(message).not.toMatch(/\n\s+at /);
}

describe('serve: SageMaker hosting contract', () => {
  let server: RunningTestServer;
  let jpeg: Buffer;
  let png: Buffer;

  beforeAll(async () => {
    server = await startTestServer();
    jpeg = await sampleImage('jpeg', 40, 1);
    png = await sampleImage('png', 24, 3);
  });
  afterAll(() => server?.close());

  it('answers /ping 200 once loaded', async () => {
    const res = await fetch(`${server.url}/ping`);
    expect(res.status).toBe(200);
  });

  it('predicts a raw JPEG and a raw PNG', async () => {
    const a = await postInvocation(server.url, jpeg, 'image/jpeg');
    expect(a.status).toBe(200);
    expect(a.headers.get('content-type')).toMatch(/^application\/json/);
    expectPrediction(a.json);
    const b = await postInvocation(server.url, png, 'image/png; charset=binary');
    expect(b.status).toBe(200);
    expectPrediction(b.json);
  });

  it('predicts grayscale, RGBA and large images through the shared preprocessing', async () => {
    const gray = await sharp(jpeg).grayscale().png().toBuffer();
    const rgba = await sharp(png).ensureAlpha(0.5).png().toBuffer();
    const big = await sharp(jpeg).resize(700, 500).jpeg().toBuffer();
    for (const [bytes, type] of [
      [gray, 'image/png'],
      [rgba, 'image/png'],
      [big, 'image/jpeg'],
    ] as const) {
      const res = await postInvocation(server.url, bytes, type);
      expect(res.status).toBe(200);
      expectPrediction(res.json);
    }
  });

  it('answers JSON instances (b64 and pixels) as one batch, in request order', async () => {
    const pixels = Array.from({ length: 8 * 6 * 1 }, (_, i) => (i * 37) % 256);
    const single = {
      jpeg: (await postInvocation(server.url, jpeg, 'image/jpeg')).json as Prediction,
      png: (await postInvocation(server.url, png, 'image/png')).json as Prediction,
      pixels: (
        await postInvocation(
          server.url,
          JSON.stringify({ instances: [{ pixels, shape: [8, 6, 1] }] }),
          'application/json',
        )
      ).json as { predictions: Prediction[] },
    };
    const body = {
      instances: [
        { b64: png.toString('base64') },
        { pixels, shape: [8, 6, 1] },
        { b64: jpeg.toString('base64') },
      ],
    };
    const res = await postInvocation(server.url, JSON.stringify(body), 'application/json');
    expect(res.status).toBe(200);
    const { predictions } = res.json as { predictions: Prediction[] };
    expect(predictions).toHaveLength(3);
    predictions.forEach(expectPrediction);
    // Batch order = request order: each matches its single-image prediction.
    const close = (a: Prediction, b: Prediction) => {
      for (const label of LABELS) expect(a.probabilities[label]).toBeCloseTo(b.probabilities[label], 4);
    };
    close(predictions[0], single.png);
    close(predictions[1], single.pixels.predictions[0]);
    close(predictions[2], single.jpeg);
  });

  it('accepts RGB and RGBA pixel instances', async () => {
    const rgb = Array.from({ length: 4 * 4 * 3 }, (_, i) => i % 256);
    const rgba = Array.from({ length: 4 * 4 * 4 }, (_, i) => (i * 3) % 256);
    const res = await postInvocation(
      server.url,
      JSON.stringify({
        instances: [
          { pixels: rgb, shape: [4, 4, 3] },
          { pixels: rgba, shape: [4, 4, 4] },
        ],
      }),
      'application/json',
    );
    expect(res.status).toBe(200);
    expect((res.json as { predictions: unknown[] }).predictions).toHaveLength(2);
  });

  describe('rejects bad input with a 4xx JSON error and keeps serving', () => {
    const cases: Array<[string, () => Promise<{ status: number; json: unknown }>, number, string]> = [
      [
        'empty image body',
        () => postInvocation(server.url, new Uint8Array(0), 'image/jpeg'),
        400,
        'EMPTY_BODY',
      ],
      ['empty JSON body', () => postInvocation(server.url, '', 'application/json'), 400, 'EMPTY_BODY'],
      [
        'unsupported content type',
        () => postInvocation(server.url, 'hello', 'text/plain'),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      ],
      ['missing content type', () => postInvocation(server.url, jpeg), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['image/gif', () => postInvocation(server.url, jpeg, 'image/gif'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [
        'body over 6 MB',
        () => postInvocation(server.url, new Uint8Array(MAX_BODY_BYTES + 1), 'image/jpeg'),
        413,
        'PAYLOAD_TOO_LARGE',
      ],
      [
        'undecodable image',
        () => postInvocation(server.url, Buffer.from('definitely not a jpeg'), 'image/jpeg'),
        400,
        'UNDECODABLE_IMAGE',
      ],
      [
        'truncated JPEG',
        () => postInvocation(server.url, jpeg.subarray(0, Math.floor(jpeg.length / 2)), 'image/jpeg'),
        400,
        'UNDECODABLE_IMAGE',
      ],
      [
        'truncated PNG',
        () => postInvocation(server.url, png.subarray(0, Math.floor(png.length * 0.6)), 'image/png'),
        400,
        'UNDECODABLE_IMAGE',
      ],
      [
        'malformed JSON',
        () => postInvocation(server.url, '{"instances": [', 'application/json'),
        400,
        'MALFORMED_JSON',
      ],
      [
        'NaN literal',
        () =>
          postInvocation(server.url, '{"instances":[{"pixels":[NaN],"shape":[1,1,1]}]}', 'application/json'),
        400,
        'MALFORMED_JSON',
      ],
      [
        'no instances key',
        () => postInvocation(server.url, '{"images": []}', 'application/json'),
        400,
        'INVALID_REQUEST',
      ],
      [
        'zero instances',
        () => postInvocation(server.url, '{"instances": []}', 'application/json'),
        400,
        'INVALID_REQUEST',
      ],
      [
        'instance of wrong type',
        () => postInvocation(server.url, '{"instances": [42]}', 'application/json'),
        400,
        'INVALID_REQUEST',
      ],
      [
        'too many instances',
        () =>
          postInvocation(
            server.url,
            JSON.stringify({ instances: Array.from({ length: MAX_INSTANCES + 1 }, () => ({ b64: 'AAAA' })) }),
            'application/json',
          ),
        400,
        'TOO_MANY_INSTANCES',
      ],
      [
        'invalid base64',
        () =>
          postInvocation(
            server.url,
            JSON.stringify({ instances: [{ b64: '***not base64***' }] }),
            'application/json',
          ),
        400,
        'INVALID_BASE64',
      ],
      [
        'base64 of garbage',
        () =>
          postInvocation(
            server.url,
            JSON.stringify({ instances: [{ b64: Buffer.from('nope').toString('base64') }] }),
            'application/json',
          ),
        400,
        'UNDECODABLE_IMAGE',
      ],
      [
        'wrong pixel count for the shape',
        () =>
          postInvocation(
            server.url,
            JSON.stringify({ instances: [{ pixels: [1, 2, 3], shape: [2, 2, 1] }] }),
            'application/json',
          ),
        400,
        'INVALID_PIXELS',
      ],
      [
        'out-of-range pixel',
        () =>
          postInvocation(
            server.url,
            JSON.stringify({ instances: [{ pixels: [1, 2, 3, 300], shape: [2, 2, 1] }] }),
            'application/json',
          ),
        400,
        'INVALID_PIXELS',
      ],
      [
        'negative pixel',
        () =>
          postInvocation(
            server.url,
            JSON.stringify({ instances: [{ pixels: [1, -2, 3, 4], shape: [2, 2, 1] }] }),
            'application/json',
          ),
        400,
        'INVALID_PIXELS',
      ],
      [
        'string pixel',
        () =>
          postInvocation(
            server.url,
            JSON.stringify({ instances: [{ pixels: [1, '2', 3, 4], shape: [2, 2, 1] }] }),
            'application/json',
          ),
        400,
        'INVALID_PIXELS',
      ],
      [
        'two channels',
        () =>
          postInvocation(
            server.url,
            JSON.stringify({ instances: [{ pixels: [1, 2, 3, 4], shape: [1, 2, 2] }] }),
            'application/json',
          ),
        400,
        'INVALID_PIXELS',
      ],
      [
        'non-integer shape',
        () =>
          postInvocation(
            server.url,
            JSON.stringify({ instances: [{ pixels: [1, 2], shape: [1.5, 1, 1] }] }),
            'application/json',
          ),
        400,
        'INVALID_REQUEST',
      ],
      [
        'huge shape',
        () =>
          postInvocation(
            server.url,
            JSON.stringify({ instances: [{ pixels: [1], shape: [100000, 100000, 1] }] }),
            'application/json',
          ),
        413,
        'IMAGE_TOO_LARGE',
      ],
      ['GET /invocations', async () => postLike('GET', '/invocations'), 404, 'NOT_FOUND'],
      ['unknown path', async () => postLike('POST', '/predict'), 404, 'NOT_FOUND'],
    ];
    it.each(cases)('%s', async (_name, send, status, code) => {
      expectError(await send(), status, code);
    });

    it('still answers a valid prediction afterwards', async () => {
      const res = await postInvocation(server.url, jpeg, 'image/jpeg');
      expect(res.status).toBe(200);
      expectPrediction(res.json);
    });
  });

  async function postLike(method: string, route: string): Promise<{ status: number; json: unknown }> {
    const res = await fetch(`${server.url}${route}`, { method });
    return { status: res.status, json: await res.json() };
  }

  it('keeps the tensor count flat over many requests', async () => {
    const body = JSON.stringify({
      instances: [{ b64: jpeg.toString('base64') }, { b64: png.toString('base64') }],
    });
    await postInvocation(server.url, jpeg, 'image/jpeg');
    const before = tf.memory().numTensors;
    for (let round = 0; round < 10; round++) {
      await Promise.all([
        postInvocation(server.url, jpeg, 'image/jpeg'),
        postInvocation(server.url, body, 'application/json'),
        postInvocation(server.url, Buffer.from('garbage'), 'image/png'),
      ]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('serve: the real architecture', () => {
  it('loads and serves an EfficientNetB0-style artifact (custom layers included)', async () => {
    const modelDir = await saveTinyEfficientNet();
    const server = await startTestServer({ modelDir });
    try {
      const res = await postInvocation(server.url, await sampleImage('png', 50, 2), 'image/png');
      expect(res.status).toBe(200);
      expectPrediction(res.json);
    } finally {
      await server.close();
      await rm(modelDir, { recursive: true, force: true });
    }
  });
});

describe('serve: readiness', () => {
  it('answers /ping 503 until the model is loaded, then 200', async () => {
    const modelDir = await saveTinyModel();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Hold the load until the early checks are done, so they cannot race it.
    const load = async (dir: string) => {
      await gate;
      return Predictor.load(dir);
    };
    const { app, ready } = buildServer({ modelDir, engine: 'cpu', logger: false, load });
    try {
      const early = await app.inject({ method: 'GET', url: '/ping' });
      expect(early.statusCode).toBe(503);
      expect(early.json()).toMatchObject({ error: { code: 'MODEL_NOT_READY' } });
      const earlyPredict = await app.inject({
        method: 'POST',
        url: '/invocations',
        headers: { 'content-type': 'image/png' },
        payload: await sampleImage('png'),
      });
      expect(earlyPredict.statusCode).toBe(503);
      release();
      await ready;
      expect((await app.inject({ method: 'GET', url: '/ping' })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });

  it('keeps /ping at 503 when the model folder is empty', async () => {
    const { app, ready } = buildServer({ modelDir: '/nonexistent-model-dir', engine: 'cpu', logger: false });
    await expect(ready).rejects.toThrow(/no model found/);
    const res = await app.inject({ method: 'GET', url: '/ping' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ error: { code: 'MODEL_NOT_READY', message: 'model failed to load' } });
    await app.close();
  });
});
