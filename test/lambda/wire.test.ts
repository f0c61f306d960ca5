import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvokeEndpointCommand, SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type RunningEmulator,
  startSageMakerRuntimeEmulator,
} from '../../lib/local/sagemaker-runtime-emulator.ts';
import { type RunningTestServer, sampleImage, startTestServer } from '../serve/fixtures.ts';
import { lambdaContext, proxyEvent } from './events.ts';

const ENDPOINT = 'wire-test-endpoint';

function realClient(endpoint: string): SageMakerRuntimeClient {
  return new SageMakerRuntimeClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'dummy', secretAccessKey: 'dummy' },
    maxAttempts: 1,
  });
}

/**
 * The real SageMakerRuntimeClient, with dummy credentials, against the SageMaker-Runtime REST
 * shape served on loopback by the emulator, which forwards to the real container server.
 */
describe('predict Lambda over the SageMaker Runtime wire contract', () => {
  let server: RunningTestServer;
  let emulator: RunningEmulator;
  let jpeg: Buffer;

  beforeAll(async () => {
    server = await startTestServer();
    emulator = await startSageMakerRuntimeEmulator({ serveUrl: server.url, endpointName: ENDPOINT });
    jpeg = await sampleImage('jpeg', 40, 2);
    // The exported Lambda `handler` itself: its default client honours SAGEMAKER_RUNTIME_ENDPOINT.
    Object.assign(process.env, {
      ENDPOINT_NAME: ENDPOINT,
      SAGEMAKER_RUNTIME_ENDPOINT: emulator.url,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'dummy',
      AWS_SECRET_ACCESS_KEY: 'dummy',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
    });
  });
  afterAll(async () => {
    await emulator?.close();
    await server?.close();
  });

  it('InvokeEndpoint succeeds and ModelError carries the container error', async () => {
    const client = realClient(emulator.url);
    const ok = await client.send(
      new InvokeEndpointCommand({
        EndpointName: ENDPOINT,
        ContentType: 'image/jpeg',
        Accept: 'application/json',
        Body: jpeg,
        CustomAttributes: 'request-id=abc',
      }),
    );
    expect(ok.InvokedProductionVariant).toBe('AllTraffic');
    expect(ok.ContentType).toMatch(/^application\/json/);
    expect(JSON.parse(Buffer.from(ok.Body ?? []).toString('utf8'))).toMatchObject({
      label: expect.any(String),
    });

    const err = await client
      .send(
        new InvokeEndpointCommand({
          EndpointName: ENDPOINT,
          ContentType: 'image/png',
          Body: Buffer.from('junk'),
        }),
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      name: 'ModelError',
      OriginalStatusCode: 400,
      $metadata: { httpStatusCode: 424 },
      message: expect.stringContaining('Received client error (400) from primary'),
    });
    expect(JSON.parse((err as { OriginalMessage: string }).OriginalMessage)).toMatchObject({
      error: { code: 'UNDECODABLE_IMAGE' },
    });

    const missing = await client
      .send(new InvokeEndpointCommand({ EndpointName: 'nope', ContentType: 'image/jpeg', Body: jpeg }))
      .catch((e: unknown) => e);
    expect(missing).toMatchObject({ name: 'ValidationError', message: expect.stringContaining('not found') });
    client.destroy();
  });

  it('the exported handler predicts through the real client', async () => {
    const { handler } = await import('../../lambda/predict/handler.ts');
    const res = await handler(proxyEvent({ contentType: 'image/jpeg', body: jpeg }), lambdaContext());
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({
      label: expect.any(String),
      modelVersion: expect.any(String),
    });

    const batch = await handler(
      proxyEvent({
        contentType: 'application/json',
        body: JSON.stringify({
          instances: [{ b64: jpeg.toString('base64') }, { pixels: [0, 128, 255], shape: [1, 1, 3] }],
        }),
        base64: false,
      }),
      lambdaContext(),
    );
    expect(batch.statusCode).toBe(200);
    expect(JSON.parse(batch.body).predictions).toHaveLength(2);
  });

  it("turns the container's 4xx into the same 4xx for the client", async () => {
    const { handler } = await import('../../lambda/predict/handler.ts');
    const truncated = jpeg.subarray(0, Math.floor(jpeg.length / 2));
    const res = await handler(proxyEvent({ contentType: 'image/jpeg', body: truncated }), lambdaContext());
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'UNDECODABLE_IMAGE' } });
    const pixels = await handler(
      proxyEvent({
        contentType: 'application/json',
        body: JSON.stringify({ instances: [{ pixels: [0, 999, 0], shape: [1, 1, 3] }] }),
        base64: false,
      }),
      lambdaContext(),
    );
    expect(pixels.statusCode).toBe(400);
    expect(JSON.parse(pixels.body)).toMatchObject({ error: { code: 'INVALID_PIXELS' } });
  });

  it('answers 503 when the container is down and 504 when it hangs', async () => {
    const { createHandler } = await import('../../lambda/predict/handler.ts');
    // Port 9 (discard): nothing listens there.
    const down = await startSageMakerRuntimeEmulator({ serveUrl: 'http://127.0.0.1:9' });
    const hanging: Server = createServer(() => {
      // Never answers.
    });
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const slow = await startSageMakerRuntimeEmulator({
      serveUrl: `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`,
    });
    try {
      const event = proxyEvent({ contentType: 'image/jpeg', body: jpeg });
      const unreachable = await createHandler({ client: realClient(down.url), endpointName: ENDPOINT })(
        event,
        lambdaContext(),
      );
      expect(unreachable.statusCode).toBe(503);
      expect(JSON.parse(unreachable.body)).toMatchObject({ error: { code: 'UPSTREAM_UNAVAILABLE' } });

      const started = Date.now();
      const timedOut = await createHandler({
        client: realClient(slow.url),
        endpointName: ENDPOINT,
        upstreamTimeoutMs: 1_000,
      })(event, lambdaContext());
      expect(timedOut.statusCode).toBe(504);
      expect(JSON.parse(timedOut.body)).toMatchObject({ error: { code: 'UPSTREAM_TIMEOUT' } });
      expect(Date.now() - started).toBeLessThan(10_000);

      const noEmulator = await createHandler({
        client: realClient('http://127.0.0.1:9'),
        endpointName: ENDPOINT,
      })(event, lambdaContext());
      expect(noEmulator.statusCode).toBe(503);
    } finally {
      await down.close();
      await slow.close();
      hanging.closeAllConnections();
      hanging.close();
    }
  });
});
