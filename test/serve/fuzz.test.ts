import { deflateSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRng } from '../../training-container/src/data/rng.ts';
import { MAX_BODY_BYTES } from '../../training-container/src/serve/contract.ts';
import { postInvocation, type RunningTestServer, sampleImage, startTestServer } from './fixtures.ts';

/** Deterministic PRNG so a failing payload can be reproduced from its index. */
const rng = createRng;

interface Payload {
  name: string;
  body: Uint8Array | string;
  contentType?: string;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
/** A well-formed PNG header that claims `w x h` pixels: a decompression bomb's first bytes. */
function hugePng(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(1024))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
/** A JPEG whose SOF0 marker claims `w x h` (patched into a real small JPEG). */
function hugeJpeg(jpeg: Buffer, w: number, h: number): Buffer {
  const out = Buffer.from(jpeg);
  for (let i = 2; i < out.length - 9; i++) {
    if (out[i] === 0xff && (out[i + 1] === 0xc0 || out[i + 1] === 0xc2)) {
      out.writeUInt16BE(h, i + 5);
      out.writeUInt16BE(w, i + 7);
      return out;
    }
  }
  throw new Error('no SOF marker in the sample JPEG');
}

/** Hundreds of malformed requests, each of which a client could send by mistake or on purpose. */
function generatePayloads(jpeg: Buffer, png: Buffer, count: number): Payload[] {
  const random = rng(20240601);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  const json = (value: unknown) => JSON.stringify(value);
  const deep = (depth: number, open: string, close: string, inner = '1') =>
    `{"instances":${open.repeat(depth)}${inner}${close.repeat(depth)}}`;
  const imageTypes = ['image/jpeg', 'image/png'];

  const generators: Array<() => Payload> = [
    () => ({ name: 'random bytes', body: bytes(1 + int(4096)), contentType: pick(imageTypes) }),
    () => ({ name: 'random bytes as JSON', body: bytes(1 + int(512)), contentType: 'application/json' }),
    () => {
      const cut = 1 + int(Math.floor(jpeg.length * 0.9));
      return { name: `JPEG truncated at ${cut}`, body: jpeg.subarray(0, cut), contentType: 'image/jpeg' };
    },
    () => {
      const cut = 1 + int(Math.floor(png.length * 0.9));
      return { name: `PNG truncated at ${cut}`, body: png.subarray(0, cut), contentType: 'image/png' };
    },
    () => {
      const cut = 1 + int(Math.floor(jpeg.length * 0.9));
      return {
        name: 'truncated JPEG as b64',
        body: json({ instances: [{ b64: jpeg.subarray(0, cut).toString('base64') }] }),
        contentType: 'application/json',
      };
    },
    () => ({
      name: 'PNG header claiming a huge image',
      body: hugePng(50_000 + int(100_000), 50_000 + int(100_000)),
      contentType: pick(imageTypes),
    }),
    () => ({
      name: 'JPEG header claiming a huge image',
      body: hugeJpeg(jpeg, 60_000 + int(5_000), 60_000 + int(5_000)),
      contentType: 'image/jpeg',
    }),
    () => ({
      name: 'huge shape',
      body: json({ instances: [{ pixels: [0, 0, 0], shape: [1e5 + int(1e6), 1e5, 3] }] }),
      contentType: 'application/json',
    }),
    () => ({
      name: 'deep arrays',
      body: deep(1000 + int(50_000), '[', ']'),
      contentType: 'application/json',
    }),
    () => ({
      name: 'deep objects',
      body: deep(1000 + int(20_000), '{"a":', '}'),
      contentType: 'application/json',
    }),
    () => ({
      name: 'deep pixels',
      body: `{"instances":[{"pixels":${'['.repeat(5000)}1${']'.repeat(5000)},"shape":[1,1,1]}]}`,
      contentType: 'application/json',
    }),
    () => ({
      name: 'wrong types',
      body: json(
        pick<unknown>([
          null,
          42,
          'instances',
          [],
          [1, 2],
          true,
          { instances: null },
          { instances: 'x' },
          { instances: {} },
          { instances: [null] },
          { instances: [[]] },
          { instances: [{ b64: 42 }] },
          { instances: [{ b64: null }] },
          { instances: [{ b64: ['AAAA'] }] },
          { instances: [{ pixels: 'abc', shape: [1, 1, 3] }] },
          { instances: [{ pixels: [1, 2, 3] }] },
          { instances: [{ shape: [1, 1, 3] }] },
          { instances: [{ pixels: [1, 2, 3], shape: [1, 1] }] },
          { instances: [{ pixels: [1, 2, 3], shape: [1, 1, 3, 1] }] },
          { instances: [{ pixels: [1, 2, 3], shape: ['1', 1, 3] }] },
          { instances: [{ pixels: [1, 2, 3], shape: [0, 1, 3] }] },
          { instances: [{ pixels: [1, 2, 3], shape: [-1, -1, 3] }] },
          { instances: [{ pixels: [], shape: [1, 1, 3] }] },
          { instances: [{ b64: 'AAAA', pixels: [1], shape: [1, 1, 1] }] },
          { instances: [{ b64: '' }] },
          { instances: [{ pixels: [null, null, null], shape: [1, 1, 3] }] },
          { instances: [{ pixels: [[1], [2], [3]], shape: [1, 1, 3] }] },
          { instances: [{ pixels: [{}, {}, {}], shape: [1, 1, 3] }] },
          { instances: [{ pixels: [1, 2, 3, 4, 5], shape: [1, 1, 5] }] },
          { instances: [{ pixels: [1, 2], shape: [1, 1, 2] }] },
          { __proto__: { instances: [] } },
          { instances: [{ __proto__: { b64: 'AAAA' } }] },
        ]),
      ),
      contentType: 'application/json',
    }),
    () => ({
      name: 'pixels out of range',
      body: json({ instances: [{ pixels: [0, 0, pick([256, -1, 1e9, -0.5, 255.5])], shape: [1, 1, 3] }] }),
      contentType: 'application/json',
    }),
    () => ({
      name: 'non-finite literal',
      body: `{"instances":[{"pixels":[0,${pick(['NaN', 'Infinity', '-Infinity', '1e999', '-1e999', 'undefined'])},0],"shape":[1,1,3]}]}`,
      contentType: 'application/json',
    }),
    () => {
      const h = 2 + int(20);
      const w = 2 + int(20);
      const c = pick([1, 3, 4]);
      const n = h * w * c + pick([-1, 1, -h, w * c]);
      return {
        name: 'wrong pixel count',
        body: json({
          instances: [{ pixels: Array.from({ length: Math.max(0, n) }, () => int(256)), shape: [h, w, c] }],
        }),
        contentType: 'application/json',
      };
    },
    () => {
      const text = json({ instances: [{ b64: jpeg.toString('base64') }] });
      return {
        name: 'truncated JSON',
        body: text.slice(0, int(text.length - 1)),
        contentType: 'application/json',
      };
    },
    () => ({
      name: 'invalid base64',
      body: json({ instances: [{ b64: `${bytes(30).toString('latin1')}` }] }),
      contentType: 'application/json',
    }),
    () => ({
      name: 'base64 of random bytes',
      body: json({ instances: [{ b64: bytes(1 + int(2000)).toString('base64') }] }),
      contentType: 'application/json',
    }),
    () => ({
      name: 'too many instances',
      body: json({ instances: Array.from({ length: 17 + int(200) }, () => ({ b64: 'AAAA' })) }),
      contentType: 'application/json',
    }),
    () => ({
      name: 'one bad instance among good ones',
      body: json({
        instances: [{ b64: png.toString('base64') }, { b64: 'QUJD' }, { b64: jpeg.toString('base64') }],
      }),
      contentType: 'application/json',
    }),
    () => ({
      name: 'unsupported content type',
      body: pick<Uint8Array | string>([jpeg, png, '{}', 'x']),
      contentType: pick([
        'text/plain',
        'application/octet-stream',
        'image/gif',
        'multipart/form-data; boundary=x',
        'application/x-www-form-urlencoded',
        'image/webp',
        'application/jsonx',
        '',
        ';;',
      ]),
    }),
    () => ({ name: 'empty body', body: '', contentType: pick([...imageTypes, 'application/json']) }),
    () => ({ name: 'whitespace JSON', body: ' \n\t ', contentType: 'application/json' }),
    () => ({
      name: 'unicode junk',
      body: Array.from({ length: 1 + int(200) }, () => String.fromCharCode(int(0xd7ff))).join(''),
      contentType: pick([...imageTypes, 'application/json']),
    }),
  ];
  const payloads = Array.from({ length: count }, (_, i) => generators[i % generators.length]());
  // A few over the size limit; they are large, so only two.
  payloads.push(
    {
      name: 'image over 6 MB',
      body: Buffer.alloc(MAX_BODY_BYTES + 1 + int(1000), 0xff),
      contentType: 'image/jpeg',
    },
    {
      name: 'JSON over 6 MB',
      body: `{"instances":[{"b64":"${'A'.repeat(MAX_BODY_BYTES)}"}]}`,
      contentType: 'application/json',
    },
  );
  return payloads;
}

const FUZZ_COUNT = 400;

describe('serve: fuzzed malformed requests', () => {
  let server: RunningTestServer;
  let jpeg: Buffer;
  let png: Buffer;

  beforeAll(async () => {
    server = await startTestServer();
    jpeg = await sampleImage('jpeg', 48, 2);
    png = await sampleImage('png', 48, 4);
  });
  afterAll(() => server?.close());

  it(`answers ${FUZZ_COUNT + 2} malformed payloads with 4xx JSON errors and stays up`, async () => {
    const payloads = generatePayloads(jpeg, png, FUZZ_COUNT);
    const tensorsBefore = tf.memory().numTensors;
    const failures: string[] = [];
    const concurrency = 8;
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < payloads.length) {
          const i = next++;
          const p = payloads[i];
          const res = await postInvocation(server.url, p.body, p.contentType);
          const error = (res.json as { error?: { code?: unknown; message?: unknown } }).error;
          const ok =
            res.status >= 400 &&
            res.status < 500 &&
            typeof error?.code === 'string' &&
            typeof error.message === 'string' &&
            !/\n\s+at /.test(error.message);
          if (!ok) failures.push(`#${i} ${p.name}: ${res.status} ${JSON.stringify(res.json).slice(0, 200)}`);
        }
      }),
    );
    expect(failures).toEqual([]);
    expect(tf.memory().numTensors).toBe(tensorsBefore);

    // Still alive and still right.
    expect((await fetch(`${server.url}/ping`)).status).toBe(200);
    const res = await postInvocation(server.url, jpeg, 'image/jpeg');
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ label: expect.any(String), modelVersion: expect.any(String) });
  });
});
