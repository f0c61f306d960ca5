import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalApi, startApi } from '../../lib/local/api.ts';
import { LAMBDA_TOO_LARGE, startApiGateway } from '../../lib/local/api-gateway-adapter.ts';
import { formatPredictionTable, predictFiles } from '../../lib/local/predict-client.ts';
import { LABELS } from '../../training-container/src/labels.ts';
import { LAMBDA_SYNC_PAYLOAD_BYTES, MAX_IMAGE_BYTES } from '../../training-container/src/serve/contract.ts';
import { type RunningTestServer, sampleImage, startTestServer } from '../serve/fixtures.ts';

const KEY = 'test-key-123';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';

async function post(
  url: string,
  body: Uint8Array | string | undefined,
  headers: Record<string, string> = {},
) {
  const res = await fetch(url, { method: 'POST', body: body as BodyInit | undefined, headers });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

/** A valid JPEG of exactly `size` bytes: comment segments, which decoders skip, pad a small one. */
function paddedJpeg(jpeg: Buffer, size: number): Buffer {
  const parts = [jpeg.subarray(0, 2)]; // SOI; the segments go right after it
  let pad = size - jpeg.length;
  while (pad > 0) {
    // A segment is its 2-byte marker plus a length field of 2..65535 that counts itself.
    let total = Math.min(pad, 65_537);
    if (pad - total > 0 && pad - total < 4) total -= 4;
    if (total < 4) throw new Error(`cannot pad a JPEG by ${pad} bytes`);
    const segment = Buffer.alloc(total, 0x20);
    segment.writeUInt16BE(0xfffe, 0);
    segment.writeUInt16BE(total - 2, 2);
    parts.push(segment);
    pad -= total;
  }
  parts.push(jpeg.subarray(2));
  return Buffer.concat(parts);
}

describe('local API: adapter -> real Lambda handler -> SageMaker-Runtime emulator -> serve', () => {
  let server: RunningTestServer;
  let api: LocalApi;
  let jpeg: Buffer;

  beforeAll(async () => {
    server = await startTestServer();
    api = await startApi({ serveUrl: server.url, port: 0, apiKey: KEY });
    jpeg = await sampleImage('jpeg', 40, 3);
  });
  afterAll(async () => {
    await api?.close();
    await server?.close();
  });

  it('answers a prediction for a JPEG sent with the API key', async () => {
    const res = await post(api.predictUrl, jpeg, { 'content-type': 'image/jpeg', 'x-api-key': KEY });
    expect(res.status).toBe(200);
    expect(LABELS).toContain(res.json.label);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('answers JSON instances in order', async () => {
    const body = JSON.stringify({
      instances: [{ b64: jpeg.toString('base64') }, { pixels: [9, 9, 9], shape: [1, 1, 3] }],
    });
    const res = await post(api.predictUrl, body, { 'content-type': 'application/json', 'x-api-key': KEY });
    expect(res.status).toBe(200);
    expect(res.json.predictions).toHaveLength(2);
  });

  it('rejects a request without or with a wrong API key', async () => {
    const attempts: Record<string, string>[] = [
      { 'content-type': 'image/jpeg' },
      { 'content-type': 'image/jpeg', 'x-api-key': 'wrong' },
    ];
    for (const headers of attempts) {
      const res = await post(api.predictUrl, jpeg, headers);
      expect(res.status).toBe(403);
      expect(res.json).toMatchObject({ error: { code: 'INVALID_API_KEY' } });
    }
  });

  it("passes the container's 4xx through to the client", async () => {
    const res = await post(api.predictUrl, jpeg.subarray(0, 100), {
      'content-type': 'image/jpeg',
      'x-api-key': KEY,
    });
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ error: { code: 'UNDECODABLE_IMAGE' } });
  });

  it('one image limit: 4 MiB reaches the model, one byte more gets the JSON 413 naming the limit', async () => {
    const headers = { 'content-type': 'image/jpeg', 'x-api-key': KEY };
    const atLimit = paddedJpeg(jpeg, MAX_IMAGE_BYTES);
    expect(atLimit.length).toBe(MAX_IMAGE_BYTES);
    const ok = await post(api.predictUrl, atLimit, headers);
    expect(ok.status).toBe(200);
    expect(LABELS).toContain(ok.json.label);

    const over = await post(api.predictUrl, paddedJpeg(jpeg, MAX_IMAGE_BYTES + 1), headers);
    expect(over.status).toBe(413);
    expect(over.headers.get('access-control-allow-origin')).toBe('*');
    expect(over.json).toEqual({
      error: {
        code: 'PAYLOAD_TOO_LARGE',
        message: "image is larger than 4 MiB (4194304 bytes), the API's limit",
      },
    });
  });

  it("past Lambda's 6 MB event limit the handler never runs: API Gateway's own 413", async () => {
    // 4.75 MB of image is 6.33 MB of base64 in the event.
    const res = await post(api.predictUrl, paddedJpeg(jpeg, 4_750_000), {
      'content-type': 'image/jpeg',
      'x-api-key': KEY,
    });
    expect(res.status).toBe(LAMBDA_TOO_LARGE.status);
    expect(res.json).toEqual({ message: 'Request Too Long' });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('answers CORS preflights and unknown routes as API Gateway does', async () => {
    const preflight = await fetch(api.predictUrl, { method: 'OPTIONS' });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toContain('X-Api-Key');
    const unknown = await post(`${api.url}/nope`, 'x', { 'x-api-key': KEY });
    expect(unknown.status).toBe(403);
    expect(unknown.json).toMatchObject({ error: { code: 'MISSING_AUTHENTICATION_TOKEN' } });
  });

  it('serves the web page at GET / and /app.js without a key, with a CSP; other GETs stay 403', async () => {
    expect(api.webUrl).toBe(`${api.url}/`);
    const page = await fetch(api.url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await page.text()).toContain('<script type="module" src="./app.js"></script>');
    const script = await fetch(`${api.url}/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await script.text()).toContain("new URL('predict?explain=true', base)");
    for (const route of ['/web/app.js', '/../package.json', '/index.js']) {
      const res = await fetch(`${api.url}${route}`);
      expect(res.status, route).toBe(403);
      await res.arrayBuffer();
    }
  });

  it('predict client: a table row per file, errors included', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bt-predict-'));
    try {
      await writeFile(path.join(dir, 'scan.jpg'), jpeg);
      await writeFile(path.join(dir, 'scan.png'), await sampleImage('png', 30, 2));
      await writeFile(path.join(dir, 'notes.txt'), 'hello');
      const files = ['scan.jpg', 'scan.png', 'notes.txt', 'missing.png'].map((f) => path.join(dir, f));
      const results = await predictFiles(files, { url: api.predictUrl, apiKey: KEY });
      expect(results.map((r) => r.status)).toEqual([200, 200, 0, 0]);
      expect(results[2].error?.code).toBe('UNSUPPORTED_FILE');
      expect(results[3].error?.code).toBe('FILE_UNREADABLE');
      const table = formatPredictionTable(results, LABELS).split('\n');
      expect(table[0]).toMatch(/^file\s+label\s+glioma\s+meningioma\s+notumor\s+pituitary$/);
      expect(table[1]).toMatch(
        new RegExp(`^scan\\.jpg\\s+${results[0].prediction?.label}\\s+(0\\.\\d{3}\\s*){4}$`),
      );
      expect(table[3]).toContain('UNSUPPORTED_FILE');
      const denied = await predictFiles([files[0]], { url: api.predictUrl });
      expect(denied[0]).toMatchObject({ status: 403, error: { code: 'INVALID_API_KEY' } });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('answers 503 when serve is not running', async () => {
    const orphan = await startApi({ serveUrl: 'http://127.0.0.1:9', port: 0 });
    try {
      const res = await post(orphan.predictUrl, jpeg, { 'content-type': 'image/jpeg' });
      expect(res.status).toBe(503);
      expect(res.json).toMatchObject({ error: { code: 'UPSTREAM_UNAVAILABLE' } });
    } finally {
      await orphan.close();
    }
  });
});

describe('API Gateway adapter', () => {
  it('turns binary bodies into base64 proxy events and text bodies into strings', async () => {
    const seen: Array<{ body: string | null; isBase64Encoded: boolean; path: string; stage: string }> = [];
    const gateway = await startApiGateway({
      port: 0,
      handler: async (event) => {
        seen.push({
          body: event.body,
          isBase64Encoded: event.isBase64Encoded,
          path: event.path,
          stage: event.requestContext.stage,
        });
        return { statusCode: 201, headers: { 'x-test': 'yes' }, body: '{"ok":true}' };
      },
    });
    try {
      const bytes = Buffer.from([0xff, 0xd8, 0x00, 0x80, 0xfe]);
      const a = await post(`${gateway.url}/predict`, bytes, { 'content-type': 'image/jpeg' });
      expect(a.status).toBe(201);
      expect(a.headers.get('x-test')).toBe('yes');
      await post(`${gateway.url}/predict`, '{"a":"é"}', { 'content-type': 'application/json' });
      expect(seen).toEqual([
        { body: bytes.toString('base64'), isBase64Encoded: true, path: '/predict', stage: 'prod' },
        { body: '{"a":"é"}', isBase64Encoded: false, path: '/predict', stage: 'prod' },
      ]);
    } finally {
      await gateway.close();
    }
  });

  it("refuses events over Lambda's limit, measured on the event JSON, without calling the handler", async () => {
    let calls = 0;
    const gateway = await startApiGateway({
      port: 0,
      handler: async () => {
        calls++;
        return { statusCode: 200, body: '{}' };
      },
    });
    try {
      const url = `${gateway.url}/predict`;
      // Base64 alone: 4,718,592 bytes become exactly 6 MiB, so the whole event is over it.
      const image = await post(url, new Uint8Array((LAMBDA_SYNC_PAYLOAD_BYTES / 4) * 3), {
        'content-type': 'image/png',
      });
      expect(image.status).toBe(413);
      expect(image.headers.get('x-amzn-errortype')).toBe('BadRequestException');
      expect(image.json).toEqual({ message: 'Request Too Long' });
      // Quotes are escaped in the event: 3.5 MB of them is 7 MB there.
      const quotes = await post(url, '"'.repeat(3_500_000), { 'content-type': 'application/json' });
      expect(quotes.status).toBe(413);
      expect(calls).toBe(0);
      const small = await post(url, 'x'.repeat(1_000_000), { 'content-type': 'application/json' });
      expect(small.status).toBe(200);
      expect(calls).toBe(1);
    } finally {
      await gateway.close();
    }
  });

  it('serves no page unless given a web folder', async () => {
    const gateway = await startApiGateway({
      port: 0,
      handler: async () => ({ statusCode: 200, body: '{}' }),
    });
    try {
      const res = await fetch(`${gateway.url}/`);
      expect(res.status).toBe(403);
      await res.arrayBuffer();
    } finally {
      await gateway.close();
    }
  });

  it('answers 502 when the handler throws and 504 when it outlives the integration timeout', async () => {
    const throwing = await startApiGateway({
      port: 0,
      handler: async () => {
        throw new Error('boom');
      },
    });
    const slow = await startApiGateway({
      port: 0,
      integrationTimeoutMs: 200,
      handler: () =>
        new Promise((resolve) => setTimeout(() => resolve({ statusCode: 200, body: '{}' }), 2_000)),
    });
    try {
      const a = await post(`${throwing.url}/predict`, 'x', { 'content-type': 'application/json' });
      expect(a.status).toBe(502);
      expect(a.json).toMatchObject({ error: { code: 'DEFAULT_5XX' } });
      const b = await post(`${slow.url}/predict`, 'x', { 'content-type': 'application/json' });
      expect(b.status).toBe(504);
      expect(b.json).toMatchObject({ error: { code: 'INTEGRATION_TIMEOUT' } });
    } finally {
      await throwing.close();
      await slow.close();
    }
  });
});
