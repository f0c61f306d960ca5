import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningApiGateway, startApiGateway } from '../../lib/local/api-gateway-adapter.ts';
import { readBody } from '../../training-container/src/serve/body-limit.ts';
import { MAX_BODY_BYTES } from '../../training-container/src/serve/contract.ts';
import { type RunningTestServer, startTestServer } from './fixtures.ts';

/** The adapter's default payload limit (API Gateway's 10 MB). */
const ADAPTER_LIMIT = 10 * 1024 * 1024;
/**
 * Far enough over each limit that, before the fix, the server closed the connection while
 * `fetch` was still sending a streamed body: EPIPE/ECONNRESET instead of the 413.
 */
const OVERSIZED = 24 * 1024 * 1024;

/** A body `fetch` streams in 64 KiB chunks (chunked transfer encoding: no Content-Length). */
function streamed(bytes: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      const n = Math.min(64 * 1024, bytes - sent);
      sent += n;
      controller.enqueue(new Uint8Array(n).fill(0xff));
    },
  });
}

async function post(
  url: string,
  body: 'buffer' | 'stream',
  bytes: number,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'image/jpeg', 'x-api-key': 'k' },
    body: body === 'buffer' ? Buffer.alloc(bytes, 0xff) : streamed(bytes),
    duplex: 'half',
  } as RequestInit);
  return { status: res.status, json: await res.json() };
}

describe('an oversized body: every client reads the 413 (no EPIPE/ECONNRESET)', () => {
  let server: RunningTestServer;
  let gateway: RunningApiGateway;
  let handlerCalls = 0;

  beforeAll(async () => {
    server = await startTestServer();
    gateway = await startApiGateway({
      port: 0,
      apiKey: 'k',
      handler: async () => {
        handlerCalls++;
        return { statusCode: 200, body: '{}' };
      },
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await server?.close();
  });

  for (const body of ['stream', 'buffer'] as const) {
    it(`serve /invocations, ${body} body over ${MAX_BODY_BYTES} bytes: 413 PAYLOAD_TOO_LARGE`, async () => {
      for (let i = 0; i < 2; i++) {
        const { status, json } = await post(`${server.url}/invocations`, body, OVERSIZED);
        expect(status).toBe(413);
        expect(json).toEqual({
          error: { code: 'PAYLOAD_TOO_LARGE', message: expect.stringContaining('larger than 6 MB') },
        });
      }
    });

    it(`the local API adapter, ${body} body over 10 MB: 413 REQUEST_TOO_LARGE, handler not called`, async () => {
      for (let i = 0; i < 2; i++) {
        const { status, json } = await post(`${gateway.url}/predict`, body, OVERSIZED);
        expect(status).toBe(413);
        expect(json).toEqual({ error: { code: 'REQUEST_TOO_LARGE', message: 'Request Too Long' } });
      }
      expect(handlerCalls).toBe(0);
    });
  }

  it('still accepts a body of exactly the limit (the handler gets all of it)', async () => {
    const res = await fetch(`${gateway.url}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'x-api-key': 'k' },
      body: streamed(ADAPTER_LIMIT),
      duplex: 'half',
    } as RequestInit);
    // The Lambda event limit answers (not the payload limit): the body got through the adapter.
    expect(res.status).toBe(413);
    expect(await res.text()).toBe('{"message": "Request Too Long"}');
  });
});

describe('readBody (the drain and its caps)', () => {
  const read = (
    contentLength: string | undefined,
    options: Parameters<typeof readBody>[2],
    feed: (s: PassThrough) => void,
  ) =>
    new Promise<{ err: (Error & { statusCode?: number }) | null; body?: Buffer }>((resolve) => {
      const stream = new PassThrough();
      readBody(stream, contentLength, options, (err, body) => resolve({ err, body }));
      feed(stream);
    });

  it('returns the body within the limit', async () => {
    const { err, body } = await read('5', { limit: 5 }, (s) => s.end(Buffer.from('hello')));
    expect(err).toBeNull();
    expect(body?.toString()).toBe('hello');
  });

  it('drains an oversized body to its end, then reports 413', async () => {
    let ended = false;
    const { err } = await read(undefined, { limit: 4 }, (s) => {
      s.write(Buffer.alloc(10));
      setTimeout(() => {
        ended = true;
        s.end(Buffer.alloc(10));
      }, 50);
    });
    expect(err?.statusCode).toBe(413);
    expect(ended).toBe(true);
  });

  it('answers at once past the drain cap, or when more than the cap is announced', async () => {
    const past = await read(undefined, { limit: 4, drainBytes: 16 }, (s) => s.write(Buffer.alloc(64)));
    expect(past.err?.statusCode).toBe(413);
    const announced = await read('100', { limit: 4, drainBytes: 16 }, () => {});
    expect(announced.err?.statusCode).toBe(413);
  });

  it('stops draining after drainMs', async () => {
    const { err } = await read(undefined, { limit: 4, drainMs: 50 }, (s) => s.write(Buffer.alloc(8)));
    expect(err?.statusCode).toBe(413);
  });

  it('reports a body shorter than its Content-Length as 400', async () => {
    const { err } = await read('10', { limit: 100 }, (s) => s.end(Buffer.alloc(3)));
    expect(err?.statusCode).toBe(400);
  });
});
