import {
  InvokeEndpointCommand,
  ModelError,
  SageMakerRuntimeClient,
  ServiceUnavailable,
} from '@aws-sdk/client-sagemaker-runtime';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  base64Length,
  MAX_IMAGE_BYTES,
  MAX_JSON_BODY_BYTES,
} from '../../training-container/src/serve/contract.ts';
import { lambdaContext, proxyEvent } from './events.ts';

const sagemaker = mockClient(SageMakerRuntimeClient);
const PREDICTION = {
  label: 'glioma',
  probabilities: { glioma: 0.7, meningioma: 0.1, notumor: 0.1, pituitary: 0.1 },
  modelVersion: 'abc',
};
const IMAGE = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8]);

process.env.ENDPOINT_NAME = 'test-endpoint';
process.env.AWS_REGION = 'us-east-1';
process.env.AWS_ACCESS_KEY_ID = 'test';
process.env.AWS_SECRET_ACCESS_KEY = 'test';
// The module reads its configuration lazily, so importing after setting the env is enough.
const { handler, createHandler } = await import('../../lambda/predict/handler.ts');

function okBody(value: unknown = PREDICTION) {
  return { Body: new TextEncoder().encode(JSON.stringify(value)) as never, ContentType: 'application/json' };
}

function sdkError<T extends Error>(error: T, status: number): T {
  Object.assign(error, { $metadata: { httpStatusCode: status } });
  return error;
}

describe('predict Lambda handler (SDK mocked)', () => {
  let stdout: string[]; // both streams
  beforeEach(() => {
    sagemaker.reset();
    stdout = [];
    // Powertools writes INFO to stdout and ERROR to stderr; capture both.
    for (const stream of [process.stdout, process.stderr]) {
      vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
        stdout.push(String(chunk));
        return true;
      });
    }
  });
  afterEach(() => vi.restoreAllMocks());

  it('forwards a base64 JPEG to InvokeEndpoint and returns the endpoint JSON with CORS', async () => {
    sagemaker.on(InvokeEndpointCommand).resolves(okBody());
    const res = await handler(proxyEvent({ contentType: 'image/jpeg', body: IMAGE }), lambdaContext());
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toEqual(PREDICTION);
    expect(res.headers).toMatchObject({
      'content-type': 'application/json',
      'access-control-allow-origin': '*',
    });
    const calls = sagemaker.commandCalls(InvokeEndpointCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0].args[0].input;
    expect(input).toMatchObject({
      EndpointName: 'test-endpoint',
      ContentType: 'image/jpeg',
      Accept: 'application/json',
    });
    expect(Buffer.from(input.Body as Uint8Array)).toEqual(IMAGE);
    expect(input.CustomAttributes).toBe('request-id=req-123');
  });

  it('forwards JSON instances unchanged', async () => {
    sagemaker.on(InvokeEndpointCommand).resolves(okBody({ predictions: [PREDICTION, PREDICTION] }));
    const body = JSON.stringify({ instances: [{ b64: 'AAAA' }, { pixels: [0, 0, 0], shape: [1, 1, 3] }] });
    const res = await handler(
      proxyEvent({ contentType: 'application/json; charset=utf-8', body }),
      lambdaContext(),
    );
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body).predictions).toHaveLength(2);
    const input = sagemaker.commandCalls(InvokeEndpointCommand)[0].args[0].input;
    expect(Buffer.from(input.Body as Uint8Array).toString('utf8')).toBe(body);
    expect(input.ContentType).toBe('application/json');
  });

  it('names the 4 MiB limit in its 413 and forwards an image or a b64 instance of exactly 4 MiB', async () => {
    const over = await handler(
      proxyEvent({ contentType: 'image/png', body: Buffer.alloc(MAX_IMAGE_BYTES + 1) }),
      lambdaContext(),
    );
    expect(over.statusCode).toBe(413);
    expect(JSON.parse(over.body).error.message).toBe(
      "image is larger than 4 MiB (4194304 bytes), the API's limit",
    );
    sagemaker.on(InvokeEndpointCommand).resolves(okBody());
    const atLimit = Buffer.alloc(MAX_IMAGE_BYTES, 7);
    const image = await handler(proxyEvent({ contentType: 'image/png', body: atLimit }), lambdaContext());
    expect(image.statusCode).toBe(200);
    const json = JSON.stringify({ instances: [{ b64: atLimit.toString('base64') }] });
    expect(json.length).toBeLessThanOrEqual(MAX_JSON_BODY_BYTES);
    expect(json.length).toBeGreaterThan(base64Length(MAX_IMAGE_BYTES));
    const instance = await handler(
      proxyEvent({ contentType: 'application/json', body: json, base64: false }),
      lambdaContext(),
    );
    expect(instance.statusCode).toBe(200);
    const bodies = sagemaker
      .commandCalls(InvokeEndpointCommand)
      .map((c) => c.args[0].input.Body as Uint8Array);
    expect(bodies.map((b) => b.length)).toEqual([MAX_IMAGE_BYTES, json.length]);
  });

  it('reuses one SDK client across invocations', async () => {
    const clients = new Set<unknown>();
    sagemaker.on(InvokeEndpointCommand).callsFake((_input, getClient) => {
      clients.add(getClient());
      return okBody();
    });
    for (let i = 0; i < 3; i++)
      await handler(proxyEvent({ contentType: 'image/png', body: IMAGE }), lambdaContext());
    expect(sagemaker.commandCalls(InvokeEndpointCommand)).toHaveLength(3);
    expect(clients.size).toBe(1);
  });

  describe('rejects bad requests at the edge without calling the endpoint', () => {
    const cases: Array<[string, Parameters<typeof proxyEvent>[0], number, string]> = [
      [
        'unsupported type',
        { contentType: 'text/plain', body: 'hi', base64: false },
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      ],
      ['no content type', { body: IMAGE }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['empty body', { contentType: 'image/jpeg', body: null }, 400, 'EMPTY_BODY'],
      ['empty string body', { contentType: 'application/json', body: '', base64: false }, 400, 'EMPTY_BODY'],
      [
        'an image one byte over 4 MiB',
        { contentType: 'image/jpeg', body: Buffer.alloc(MAX_IMAGE_BYTES + 1) },
        413,
        'PAYLOAD_TOO_LARGE',
      ],
      [
        'a JSON body one byte over its limit',
        { contentType: 'application/json', body: 'x'.repeat(MAX_JSON_BODY_BYTES + 1), base64: false },
        413,
        'PAYLOAD_TOO_LARGE',
      ],
      [
        'a b64 instance one byte over 4 MiB',
        {
          contentType: 'application/json',
          body: JSON.stringify({
            instances: [{ b64: Buffer.alloc(MAX_IMAGE_BYTES + 1).toString('base64') }],
          }),
          base64: false,
        },
        413,
        'PAYLOAD_TOO_LARGE',
      ],
      [
        'invalid base64',
        { contentType: 'image/png', body: '%%%notbase64%%%', base64: true },
        400,
        'INVALID_BASE64',
      ],
      [
        'malformed JSON',
        { contentType: 'application/json', body: '{"instances":', base64: false },
        400,
        'MALFORMED_JSON',
      ],
      [
        'wrong JSON shape',
        { contentType: 'application/json', body: '{"images":[]}', base64: false },
        400,
        'INVALID_REQUEST',
      ],
      [
        'too many instances',
        {
          contentType: 'application/json',
          body: JSON.stringify({ instances: Array(17).fill({ b64: 'AAAA' }) }),
          base64: false,
        },
        400,
        'TOO_MANY_INSTANCES',
      ],
      [
        'bad instance',
        {
          contentType: 'application/json',
          body: JSON.stringify({ instances: [{ url: 'http://x' }] }),
          base64: false,
        },
        400,
        'INVALID_REQUEST',
      ],
      ['GET', { method: 'GET' }, 405, 'INVALID_REQUEST'],
    ];
    it.each(cases)('%s', async (_name, options, status, code) => {
      const res = await handler(proxyEvent(options), lambdaContext());
      expect(res.statusCode).toBe(status);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code, message: expect.any(String) } });
      expect(res.headers?.['access-control-allow-origin']).toBe('*');
      expect(sagemaker.commandCalls(InvokeEndpointCommand)).toHaveLength(0);
    });
  });

  it('answers a CORS preflight', async () => {
    const res = await handler(proxyEvent({ method: 'OPTIONS' }), lambdaContext());
    expect(res.statusCode).toBe(204);
    expect(res.headers).toMatchObject({ 'access-control-allow-methods': 'POST, OPTIONS' });
  });

  it('echoes an allowed origin when several are configured', async () => {
    sagemaker.on(InvokeEndpointCommand).resolves(okBody());
    const h = createHandler({ corsAllowOrigins: ['https://a.example', 'https://b.example'] });
    const res = await h(
      proxyEvent({ contentType: 'image/jpeg', body: IMAGE, headers: { Origin: 'https://b.example' } }),
      lambdaContext(),
    );
    expect(res.headers).toMatchObject({ 'access-control-allow-origin': 'https://b.example', vary: 'Origin' });
  });

  describe('maps endpoint failures', () => {
    const containerError = { error: { code: 'UNDECODABLE_IMAGE', message: 'image: cannot decode image' } };
    const cases: Array<[string, () => Error, number, string, string | undefined]> = [
      [
        "the container's 4xx (ModelError) passes through unchanged",
        () =>
          sdkError(
            new ModelError({
              $metadata: {},
              message: 'Received client error (400)',
              OriginalStatusCode: 400,
              OriginalMessage: JSON.stringify(containerError),
            }),
            424,
          ),
        400,
        'UNDECODABLE_IMAGE',
        undefined,
      ],
      [
        "the container's 413",
        () =>
          sdkError(
            new ModelError({
              $metadata: {},
              message: 'x',
              OriginalStatusCode: 413,
              OriginalMessage: '{"error":{"code":"IMAGE_TOO_LARGE","message":"too big"}}',
            }),
            424,
          ),
        413,
        'IMAGE_TOO_LARGE',
        undefined,
      ],
      [
        'a container 500 -> 502',
        () =>
          sdkError(
            new ModelError({ $metadata: {}, message: 'x', OriginalStatusCode: 500, OriginalMessage: 'boom' }),
            424,
          ),
        502,
        'UPSTREAM_ERROR',
        undefined,
      ],
      [
        "the container's 501 EXPLAIN_UNSUPPORTED stays a 501 (retrying cannot help)",
        () =>
          sdkError(
            new ModelError({
              $metadata: {},
              message: 'x',
              OriginalStatusCode: 501,
              OriginalMessage: JSON.stringify({
                error: { code: 'EXPLAIN_UNSUPPORTED', message: 'no conv block' },
              }),
            }),
            424,
          ),
        501,
        'EXPLAIN_UNSUPPORTED',
        undefined,
      ],
      [
        'throttling -> 429',
        () => sdkError(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }), 400),
        429,
        'THROTTLED',
        '1',
      ],
      [
        'service unavailable -> 503',
        () => sdkError(new ServiceUnavailable({ $metadata: {}, message: 'down' }), 503),
        503,
        'UPSTREAM_UNAVAILABLE',
        '5',
      ],
      [
        'connection refused -> 503',
        () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
        503,
        'UPSTREAM_UNAVAILABLE',
        '5',
      ],
      [
        'endpoint not found -> 503',
        () =>
          sdkError(
            Object.assign(new Error('Endpoint x of account 1 not found.'), { name: 'ValidationError' }),
            400,
          ),
        503,
        'UPSTREAM_UNAVAILABLE',
        '5',
      ],
      [
        'timeout -> 504',
        () => Object.assign(new Error('aborted'), { name: 'AbortError' }),
        504,
        'UPSTREAM_TIMEOUT',
        undefined,
      ],
      ['anything else -> 502', () => new TypeError('surprise'), 502, 'UPSTREAM_ERROR', undefined],
    ];
    it.each(cases)('%s', async (_name, makeError, status, code, retryAfter) => {
      sagemaker.on(InvokeEndpointCommand).rejects(makeError());
      const res = await handler(proxyEvent({ contentType: 'image/jpeg', body: IMAGE }), lambdaContext());
      expect(res.statusCode).toBe(status);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code } });
      expect(res.headers?.['retry-after']).toBe(retryAfter);
      expect(res.headers?.['access-control-allow-origin']).toBe('*');
      if (code === 'UNDECODABLE_IMAGE') expect(JSON.parse(res.body)).toEqual(containerError);
    });

    it('answers 502 when the endpoint returns something other than JSON', async () => {
      sagemaker.on(InvokeEndpointCommand).resolves({ Body: new TextEncoder().encode('<html>') as never });
      const res = await handler(proxyEvent({ contentType: 'image/jpeg', body: IMAGE }), lambdaContext());
      expect(res.statusCode).toBe(502);
    });
  });

  it('never throws, whatever the event', async () => {
    for (const event of [
      null,
      undefined,
      42,
      'x',
      {},
      { httpMethod: 5 },
      { httpMethod: 'POST', headers: 'x' },
    ]) {
      const res = await handler(event as never, lambdaContext());
      expect(res.statusCode).toBeGreaterThanOrEqual(400);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: expect.any(String) } });
    }
    expect(sagemaker.commandCalls(InvokeEndpointCommand)).toHaveLength(0);
  });

  it('answers 500 when ENDPOINT_NAME is missing', async () => {
    const saved = process.env.ENDPOINT_NAME;
    delete process.env.ENDPOINT_NAME;
    try {
      const res = await createHandler()(
        proxyEvent({ contentType: 'image/jpeg', body: IMAGE }),
        lambdaContext(),
      );
      expect(res.statusCode).toBe(500);
      expect(JSON.parse(res.body).error.code).toBe('INTERNAL');
    } finally {
      process.env.ENDPOINT_NAME = saved;
    }
  });

  it('logs structured JSON with the request ids and never the image bytes', async () => {
    sagemaker.on(InvokeEndpointCommand).resolves(okBody());
    const image = Buffer.alloc(3000, 0xab);
    await handler(
      proxyEvent({ contentType: 'image/jpeg', body: image, requestId: 'api-req-42' }),
      lambdaContext(),
    );
    await handler(
      proxyEvent({
        contentType: 'application/json',
        body: '{"instances":[{"b64":"SECRETPIXELS"}',
        base64: false,
      }),
      lambdaContext(),
    );
    const lines = stdout
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const ok = lines.find((l) => l.message === 'prediction');
    expect(ok).toMatchObject({
      level: 'INFO',
      apiRequestId: 'api-req-42',
      function_request_id: 'lambda-req-1',
      status: 200,
      bytes: 3000,
      label: 'glioma',
    });
    expect(lines.find((l) => l.message === 'request failed')).toMatchObject({
      status: 400,
      code: 'MALFORMED_JSON',
    });
    const all = stdout.join('');
    expect(all).not.toContain(image.toString('base64').slice(0, 40));
    expect(all).not.toContain('SECRETPIXELS');
  });

  describe('strict configuration', () => {
    const parsedLines = () =>
      stdout
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);

    it('LOG_PREDICTIONS=false: the log line says nothing of the prediction, and still counts the response', async () => {
      sagemaker.on(InvokeEndpointCommand).resolves(okBody());
      const saved = process.env.LOG_PREDICTIONS;
      process.env.LOG_PREDICTIONS = 'false';
      try {
        const res = await createHandler()(
          proxyEvent({ contentType: 'image/jpeg', body: IMAGE, requestId: 'api-req-7' }),
          lambdaContext(),
        );
        // The caller still gets the prediction.
        expect(JSON.parse(res.body)).toEqual(PREDICTION);
      } finally {
        if (saved === undefined) delete process.env.LOG_PREDICTIONS;
        else process.env.LOG_PREDICTIONS = saved;
      }
      const lines = parsedLines();
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({
        message: 'prediction',
        apiRequestId: 'api-req-7',
        status: 200,
        bytes: IMAGE.length,
        StatusClass: '2xx',
        Responses: 1,
      });
      expect(lines[0]).not.toHaveProperty('label');
      const all = stdout.join('');
      for (const word of ['glioma', 'meningioma', 'notumor', 'pituitary', 'probabilities']) {
        expect(all, word).not.toContain(word);
      }
    });

    it('the option overrides the environment, and the label is logged by default', async () => {
      sagemaker.on(InvokeEndpointCommand).resolves(okBody());
      await createHandler({ logPredictions: false })(
        proxyEvent({ contentType: 'image/jpeg', body: IMAGE }),
        lambdaContext(),
      );
      await createHandler()(proxyEvent({ contentType: 'image/jpeg', body: IMAGE }), lambdaContext());
      const [quiet, logged] = parsedLines();
      expect(quiet).not.toHaveProperty('label');
      expect(logged).toMatchObject({ label: 'glioma' });
    });

    it('CORS_ALLOW_ORIGIN set but empty (strict without corsAllowOrigins): no CORS headers at all', async () => {
      sagemaker.on(InvokeEndpointCommand).resolves(okBody());
      const saved = process.env.CORS_ALLOW_ORIGIN;
      process.env.CORS_ALLOW_ORIGIN = '';
      try {
        const h = createHandler();
        const res = await h(
          proxyEvent({ contentType: 'image/jpeg', body: IMAGE, headers: { Origin: 'https://evil.example' } }),
          lambdaContext(),
        );
        expect(res.statusCode).toBe(200);
        expect(Object.keys(res.headers ?? {}).filter((k) => k.startsWith('access-control-'))).toEqual([]);
        const preflight = await h(proxyEvent({ method: 'OPTIONS' }), lambdaContext());
        expect(preflight.headers).toEqual({});
      } finally {
        if (saved === undefined) delete process.env.CORS_ALLOW_ORIGIN;
        else process.env.CORS_ALLOW_ORIGIN = saved;
      }
    });
  });
});
