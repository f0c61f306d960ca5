import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '../../training-container/src/labels.ts';
import { batchModeFromEnv, EXECUTION_PARAMETERS } from '../../training-container/src/serve/batch-mode.ts';
import { MAX_BODY_BYTES, parseJsonLinesRecord } from '../../training-container/src/serve/contract.ts';
import { Predictor } from '../../training-container/src/serve/predictor.ts';
import { type RunningTestServer, sampleImage, saveTinyModel, startTestServer } from './fixtures.ts';

/** Batch Transform support of the serve container: /execution-parameters, env, JSON Lines, batch-mode errors. */

const MiB = 1024 * 1024;

async function post(
  url: string,
  body: Uint8Array | string,
  contentType: string,
  accept?: string,
): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`${url}/invocations`, {
    method: 'POST',
    headers: { 'content-type': contentType, ...(accept && { accept }) },
    body: body as BodyInit,
  });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

function expectPredictionRow(row: Record<string, unknown>): void {
  expect(LABELS).toContain(row.label);
  const probabilities = row.probabilities as Record<string, number>;
  expect(Object.keys(probabilities)).toEqual([...LABELS]);
  expect(Object.values(probabilities).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  expect(row.modelVersion).toMatch(/^[0-9a-f]{16}$/);
  expect(row).not.toHaveProperty('error');
}

describe('batch mode from the environment', () => {
  it('is off without SAGEMAKER_BATCH, with the real-time body limit whatever the payload variable says', () => {
    expect(batchModeFromEnv({})).toEqual({
      enabled: false,
      maxBodyBytes: MAX_BODY_BYTES,
      maxPayloadInMB: undefined,
      strategy: undefined,
      maxConcurrentTransforms: undefined,
    });
    expect(batchModeFromEnv({ SAGEMAKER_MAX_PAYLOAD_IN_MB: '50' }).maxBodyBytes).toBe(MAX_BODY_BYTES);
    expect(batchModeFromEnv({ SAGEMAKER_BATCH: 'false' }).enabled).toBe(false);
  });

  it('reads what a transform job sets', () => {
    expect(
      batchModeFromEnv({
        SAGEMAKER_BATCH: 'true',
        SAGEMAKER_MAX_PAYLOAD_IN_MB: '20',
        SAGEMAKER_BATCH_STRATEGY: 'MULTI_RECORD',
        SAGEMAKER_MAX_CONCURRENT_TRANSFORMS: '4',
      }),
    ).toEqual({
      enabled: true,
      maxBodyBytes: 20 * MiB,
      maxPayloadInMB: 20,
      strategy: 'MULTI_RECORD',
      maxConcurrentTransforms: 4,
    });
    // Not set by the job: the payload the container recommends; 0 (chunked, no limit): the most a job may send.
    expect(batchModeFromEnv({ SAGEMAKER_BATCH: 'TRUE' }).maxBodyBytes).toBe(
      EXECUTION_PARAMETERS.MaxPayloadInMB * MiB,
    );
    expect(batchModeFromEnv({ SAGEMAKER_BATCH: 'true', SAGEMAKER_MAX_PAYLOAD_IN_MB: '0' }).maxBodyBytes).toBe(
      100 * MiB,
    );
    expect(
      batchModeFromEnv({ SAGEMAKER_BATCH: 'true', SAGEMAKER_MAX_PAYLOAD_IN_MB: '100' }).maxBodyBytes,
    ).toBe(100 * MiB);
    // An empty variable is an unset one.
    expect(
      batchModeFromEnv({ SAGEMAKER_BATCH: 'true', SAGEMAKER_BATCH_STRATEGY: '' }).strategy,
    ).toBeUndefined();
    expect(batchModeFromEnv({ SAGEMAKER_BATCH_STRATEGY: 'single_record' }).strategy).toBe('SINGLE_RECORD');
  });

  it('refuses a malformed variable, naming it', () => {
    expect(() => batchModeFromEnv({ SAGEMAKER_BATCH: 'yes' })).toThrow(
      /SAGEMAKER_BATCH must be true or false/,
    );
    expect(() => batchModeFromEnv({ SAGEMAKER_MAX_PAYLOAD_IN_MB: '101' })).toThrow(
      /SAGEMAKER_MAX_PAYLOAD_IN_MB must be at most 100 \(SAGEMAKER_MAX_PAYLOAD_IN_MB="101"\)/,
    );
    expect(() => batchModeFromEnv({ SAGEMAKER_MAX_PAYLOAD_IN_MB: '6.5' })).toThrow(
      /SAGEMAKER_MAX_PAYLOAD_IN_MB must be a whole number/,
    );
    expect(() => batchModeFromEnv({ SAGEMAKER_BATCH_STRATEGY: 'MultiRecord' })).toThrow(
      /SAGEMAKER_BATCH_STRATEGY must be SINGLE_RECORD or MULTI_RECORD/,
    );
    expect(() => batchModeFromEnv({ SAGEMAKER_MAX_CONCURRENT_TRANSFORMS: '-1' })).toThrow(
      /SAGEMAKER_MAX_CONCURRENT_TRANSFORMS/,
    );
  });
});

describe('JSON Lines records', () => {
  it('parses one record per line, echoing the id even when the rest is wrong', () => {
    expect(parseJsonLinesRecord('{"b64":"AAAA","id":"a/b.jpg"}', 3)).toEqual({
      line: 3,
      id: 'a/b.jpg',
      instance: { b64: 'AAAA' },
    });
    const bad = parseJsonLinesRecord('{"b64":1,"id":"x"}', 1);
    expect(bad).toMatchObject({ id: 'x', error: { code: 'INVALID_REQUEST' } });
    expect(parseJsonLinesRecord('{"b64":"AAAA","id":7}', 2).error?.message).toBe(
      'line 2: id must be a string',
    );
    expect(parseJsonLinesRecord('{"b64":', 4).error?.code).toBe('MALFORMED_JSON');
    expect(parseJsonLinesRecord('[1]', 5).error?.code).toBe('INVALID_REQUEST');
  });
});

describe('serve: Batch Transform contract', () => {
  let modelDir: string;
  let realtime: RunningTestServer;
  let batch: RunningTestServer;
  /** Sizes of the batches the batch-mode server predicted (its Predictor is wrapped). */
  const batchSizes: number[] = [];
  let jpeg: Buffer;
  let png: Buffer;

  beforeAll(async () => {
    modelDir = await saveTinyModel();
    jpeg = await sampleImage('jpeg', 40, 1);
    png = await sampleImage('png', 24, 3);
    realtime = await startTestServer({ modelDir, batch: batchModeFromEnv({}) });
    batch = await startTestServer({
      modelDir,
      maxInstances: 2,
      batch: batchModeFromEnv({ SAGEMAKER_BATCH: 'true', SAGEMAKER_MAX_PAYLOAD_IN_MB: '8' }),
      load: async (dir) => {
        const predictor = await Predictor.load(dir);
        const predict = predictor.predict.bind(predictor);
        predictor.predict = async (images, options) => {
          batchSizes.push(images.length);
          return predict(images, options);
        };
        return predictor;
      },
    });
  });
  afterAll(async () => {
    await realtime?.close();
    await batch?.close();
    if (modelDir) await rm(modelDir, { recursive: true, force: true });
  });

  it('answers GET /execution-parameters with the recommended job settings', async () => {
    for (const server of [batch, realtime]) {
      const res = await fetch(`${server.url}/execution-parameters`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        MaxConcurrentTransforms: 2,
        BatchStrategy: 'MULTI_RECORD',
        MaxPayloadInMB: 6,
      });
    }
  });

  it('answers a JSON Lines body with one line per record, in order, errors as rows', async () => {
    const body = [
      JSON.stringify({ id: 'good.jpg', b64: jpeg.toString('base64') }),
      JSON.stringify({ id: 'bad-base64.jpg', b64: 'not base64 at all!' }),
      JSON.stringify({ id: 'undecodable.jpg', b64: Buffer.from('not an image').toString('base64') }),
      '',
    ].join('\n');
    for (const [server, type] of [
      [realtime, 'application/jsonlines'],
      [batch, 'application/x-jsonlines; charset=utf-8'],
    ] as const) {
      const res = await post(server.url, body, type);
      expect(res.status).toBe(200);
      expect(res.type).toMatch(/^application\/jsonlines/);
      const lines = res.text.split('\n');
      expect(lines).toHaveLength(3);
      const rows = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(rows[0].id).toBe('good.jpg');
      expectPredictionRow(rows[0]);
      expect(rows[1]).toMatchObject({ id: 'bad-base64.jpg', error: { code: 'INVALID_BASE64' } });
      expect(rows[2]).toMatchObject({ id: 'undecodable.jpg', error: { code: 'UNDECODABLE_IMAGE' } });
      expect((rows[2].error as { message: string }).message).toMatch(/^line 3: cannot decode image/);
    }
  });

  it('predicts any number of records per request in batches of MAX_INSTANCES, each like a single request', async () => {
    const images = await Promise.all([1, 2, 3, 4, 5].map((seed) => sampleImage('jpeg', 32, seed)));
    const records = images.map((b, i) => JSON.stringify({ id: `r${i}`, b64: b.toString('base64') }));
    // A malformed line and a pixels record between them; \r\n line ends too.
    records.splice(2, 0, '{"b64": ');
    records.push(JSON.stringify({ pixels: Array.from({ length: 12 }, (_, i) => i * 20), shape: [2, 2, 3] }));
    batchSizes.length = 0;
    const res = await post(batch.url, records.join('\r\n'), 'application/jsonlines');
    expect(res.status).toBe(200);
    const rows = res.text.split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.map((r) => r.id)).toEqual(['r0', 'r1', undefined, 'r2', 'r3', 'r4', undefined]);
    expect(rows[2]).toMatchObject({
      error: { code: 'MALFORMED_JSON', message: expect.stringMatching(/^line 3 /) },
    });
    for (const i of [0, 1, 3, 4, 5, 6]) expectPredictionRow(rows[i]);
    // maxInstances 2 on this server: 7 records, 6 images, never more than 2 per prediction.
    expect(batchSizes.reduce((a, b) => a + b, 0)).toBe(6);
    expect(Math.max(...batchSizes)).toBeLessThanOrEqual(2);
    // Each record scores as it does alone.
    const single = await post(batch.url, images[3], 'image/jpeg');
    const alone = JSON.parse(single.text) as { probabilities: Record<string, number> };
    for (const label of LABELS) {
      expect((rows[4].probabilities as Record<string, number>)[label]).toBeCloseTo(
        alone.probabilities[label],
        4,
      );
    }
  });

  it('answers an empty JSON Lines body with no lines', async () => {
    const res = await post(realtime.url, '\n', 'application/jsonlines');
    expect(res).toMatchObject({ status: 200, text: '' });
  });

  it('in batch mode answers an undecodable image body 200 with an error row; in real time 400', async () => {
    const truncated = jpeg.subarray(0, Math.floor(jpeg.length / 2));
    for (const [body, type] of [
      [truncated, 'image/jpeg'],
      [Buffer.from('random bytes'), 'application/x-image'],
      [new Uint8Array(0), 'application/x-image'],
    ] as const) {
      const res = await post(batch.url, body, type);
      expect(res.status, type).toBe(200);
      const row = JSON.parse(res.text);
      expect(Object.keys(row)).toEqual(['error']);
      expect(row.error.code).toBe(body.length ? 'UNDECODABLE_IMAGE' : 'EMPTY_BODY');
    }
    const rt = await post(realtime.url, truncated, 'image/jpeg');
    expect(rt.status).toBe(400);
    expect(JSON.parse(rt.text)).toMatchObject({ error: { code: 'UNDECODABLE_IMAGE' } });
    // Labelled as the job's Accept asks: a row is one JSON Lines line too.
    const asked = await post(batch.url, truncated, 'application/x-image', 'application/jsonlines');
    expect(asked.status).toBe(200);
    expect(asked.type).toMatch(/^application\/jsonlines/);
    const good = await post(batch.url, jpeg, 'application/x-image', 'application/jsonlines');
    expect(good.type).toMatch(/^application\/jsonlines/);
    expectPredictionRow(JSON.parse(good.text));
    expect((await post(batch.url, jpeg, 'image/jpeg')).type).toMatch(/^application\/json;/);
  });

  it('in batch mode sniffs application/x-image and image/* bodies; real time keeps its two types', async () => {
    for (const [body, type] of [
      [png, 'application/x-image'],
      [jpeg, 'application/x-image'],
      [png, 'image/jpeg'], // the job's ContentType is one for all objects: a PNG may come labelled JPEG
      [jpeg, 'image/jpg'],
    ] as const) {
      const res = await post(batch.url, body, type);
      expect(res.status, type).toBe(200);
      expectPredictionRow(JSON.parse(res.text));
    }
    expect((await post(realtime.url, png, 'application/x-image')).status).toBe(415);
    // Still a 415 in batch mode: a job with the wrong ContentType should fail loudly, not score nothing.
    const text = await post(batch.url, 'hello', 'text/plain');
    expect(text.status).toBe(415);
    expect(JSON.parse(text.text).error.message).toMatch(/application\/jsonlines.*application\/x-image/);
  });

  it('takes bodies up to SAGEMAKER_MAX_PAYLOAD_IN_MB in batch mode, 6 MB in real time', async () => {
    // 7 MB of records: over the real-time limit, under this job's 8 MB.
    const big = `${JSON.stringify({ id: 'big', b64: Buffer.alloc(Math.ceil(7 * MiB * 0.75), 7).toString('base64') })}\n`;
    const res = await post(batch.url, big, 'application/jsonlines');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toMatchObject({ id: 'big', error: { code: 'UNDECODABLE_IMAGE' } });
    const rt = await post(realtime.url, big, 'application/jsonlines');
    expect(rt.status).toBe(413);
    // Over the job's limit: an image object is its error row, a JSON Lines body cannot be (no record boundaries read).
    const huge = Buffer.alloc(8 * MiB + 1, 1);
    const image = await post(batch.url, huge, 'application/x-image');
    expect(image.status).toBe(200);
    expect(JSON.parse(image.text)).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
    expect((await post(batch.url, huge, 'application/jsonlines')).status).toBe(413);
  });

  it('refuses ?explain on JSON Lines', async () => {
    const res = await fetch(`${realtime.url}/invocations?explain=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/jsonlines' },
      body: JSON.stringify({ b64: jpeg.toString('base64') }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'INVALID_REQUEST' } });
  });
});
