import { Logger } from '@aws-lambda-powertools/logger';
import { InvokeEndpointCommand, SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../lambda/predict/handler.ts';
import { lambdaContext, proxyEvent } from './events.ts';

/** `explain` at the edge: `?explain=true` on an image body becomes a JSON request; bad values are 400s. */

const sagemaker = mockClient(SageMakerRuntimeClient);
const PREDICTION = {
  label: 'glioma',
  probabilities: { glioma: 0.7, meningioma: 0.1, notumor: 0.1, pituitary: 0.1 },
  modelVersion: 'abc',
  heatmap: { width: 2, height: 2, png: 'iVBORw0KGgo=', frame: { left: 0, top: 0, width: 8, height: 8 } },
};
const IMAGE = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8]);
const silent = new Logger({ serviceName: 'test', logLevel: 'SILENT' });
const handler = createHandler({
  client: new SageMakerRuntimeClient({ region: 'us-east-1' }),
  endpointName: 'ep',
  logger: silent,
});

function withQuery(event: ReturnType<typeof proxyEvent>, query: Record<string, string>) {
  return { ...event, queryStringParameters: query };
}

function okBody(value: unknown) {
  return { Body: new TextEncoder().encode(JSON.stringify(value)) as never, ContentType: 'application/json' };
}

describe('predict Lambda: explain', () => {
  beforeEach(() => sagemaker.reset());

  it('maps an image body with ?explain=true to a JSON request and answers the single prediction', async () => {
    sagemaker.on(InvokeEndpointCommand).resolves(okBody({ predictions: [PREDICTION] }));
    const event = withQuery(proxyEvent({ contentType: 'image/jpeg', body: IMAGE }), { explain: 'true' });
    const res = await handler(event, lambdaContext());
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toEqual(PREDICTION);
    const input = sagemaker.commandCalls(InvokeEndpointCommand)[0].args[0].input;
    expect(input.ContentType).toBe('application/json');
    expect(JSON.parse(Buffer.from(input.Body as Uint8Array).toString('utf8'))).toEqual({
      instances: [{ b64: IMAGE.toString('base64') }],
      explain: true,
    });
  });

  it('?explain=false or none forwards the image unchanged', async () => {
    sagemaker.on(InvokeEndpointCommand).resolves(okBody(PREDICTION));
    for (const query of [{ explain: 'false' }, {}] as Record<string, string>[]) {
      const res = await handler(
        withQuery(proxyEvent({ contentType: 'image/jpeg', body: IMAGE }), query),
        lambdaContext(),
      );
      expect(res.statusCode).toBe(200);
    }
    for (const call of sagemaker.commandCalls(InvokeEndpointCommand)) {
      expect(call.args[0].input.ContentType).toBe('image/jpeg');
      expect(Buffer.from(call.args[0].input.Body as Uint8Array)).toEqual(IMAGE);
    }
  });

  it('passes "explain": true in a JSON body through, heatmaps included', async () => {
    sagemaker.on(InvokeEndpointCommand).resolves(okBody({ predictions: [PREDICTION] }));
    const body = JSON.stringify({ instances: [{ b64: 'AAAA' }], explain: true });
    const res = await handler(proxyEvent({ contentType: 'application/json', body }), lambdaContext());
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ predictions: [PREDICTION] });
    const input = sagemaker.commandCalls(InvokeEndpointCommand)[0].args[0].input;
    expect(Buffer.from(input.Body as Uint8Array).toString('utf8')).toBe(body);
  });

  it('a non-boolean explain is a 400 with a JSON error, without calling the endpoint', async () => {
    const bad = [
      proxyEvent({
        contentType: 'application/json',
        body: JSON.stringify({ instances: [{ b64: 'AAAA' }], explain: 'true' }),
      }),
      proxyEvent({
        contentType: 'application/json',
        body: JSON.stringify({ instances: [{ b64: 'AAAA' }], explain: 1 }),
      }),
      withQuery(proxyEvent({ contentType: 'image/jpeg', body: IMAGE }), { explain: 'yes' }),
      withQuery(
        proxyEvent({
          contentType: 'application/json',
          body: JSON.stringify({ instances: [{ b64: 'AAAA' }] }),
        }),
        {
          explain: 'true',
        },
      ),
    ];
    for (const event of bad) {
      const res = await handler(event, lambdaContext());
      expect(res.statusCode).toBe(400);
      expect(res.headers?.['content-type']).toBe('application/json');
      expect(JSON.parse(res.body)).toMatchObject({
        error: { code: 'INVALID_REQUEST', message: expect.stringMatching(/explain/) },
      });
    }
    expect(sagemaker.commandCalls(InvokeEndpointCommand)).toHaveLength(0);
  });
});
