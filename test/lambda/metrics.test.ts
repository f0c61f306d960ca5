import { InvokeEndpointCommand, ModelError, SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  METRICS_NAMESPACE,
  RESPONSES_METRIC,
  responseMetricFields,
  statusClass,
} from '../../lambda/predict/metrics.ts';
import { lambdaContext, proxyEvent } from './events.ts';

const sagemaker = mockClient(SageMakerRuntimeClient);
const IMAGE = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4]);

process.env.ENDPOINT_NAME = 'test-endpoint';
process.env.AWS_REGION = 'us-east-1';
process.env.AWS_ACCESS_KEY_ID = 'test';
process.env.AWS_SECRET_ACCESS_KEY = 'test';
const { createHandler } = await import('../../lambda/predict/handler.ts');

type Line = Record<string, unknown> & { _aws?: { Timestamp: number; CloudWatchMetrics: EmfDirective[] } };
interface EmfDirective {
  Namespace: string;
  Dimensions: string[][];
  Metrics: { Name: string; Unit?: string }[];
}

/** What CloudWatch Logs requires of an EMF log event (the parts the alarm depends on). */
function expectValidEmf(line: Line): void {
  const root = line._aws;
  expect(root, 'EMF _aws block').toBeDefined();
  if (!root) return;
  expect(Number.isInteger(root.Timestamp)).toBe(true);
  for (const directive of root.CloudWatchMetrics) {
    expect(directive.Namespace).toBe(METRICS_NAMESPACE);
    for (const set of directive.Dimensions) {
      expect(set.length).toBeLessThanOrEqual(30);
      for (const dim of set) expect(typeof line[dim], `dimension ${dim}`).toBe('string');
    }
    for (const m of directive.Metrics) expect(typeof line[m.Name], `metric ${m.Name}`).toBe('number');
  }
}

describe('predict handler: responses by status class (EMF)', () => {
  let out: string[];
  beforeEach(() => {
    sagemaker.reset();
    out = [];
    for (const stream of [process.stdout, process.stderr]) {
      vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
        out.push(String(chunk));
        return true;
      });
    }
  });
  afterEach(() => vi.restoreAllMocks());

  const lines = (): Line[] =>
    out
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Line);

  it('classifies statuses', () => {
    expect([200, 204, 302, 400, 404, 413, 429, 500, 502, 504].map(statusClass)).toEqual([
      '2xx',
      '2xx',
      '3xx',
      '4xx',
      '4xx',
      '4xx',
      '4xx',
      '5xx',
      '5xx',
      '5xx',
    ]);
    expect(responseMetricFields(503, 'fn', 1234)).toEqual({
      _aws: {
        Timestamp: 1234,
        CloudWatchMetrics: [
          {
            Namespace: 'BrainTumor/Predict',
            Dimensions: [['FunctionName', 'StatusClass']],
            Metrics: [{ Name: 'Responses', Unit: 'Count' }],
          },
        ],
      },
      FunctionName: 'fn',
      StatusClass: '5xx',
      Responses: 1,
    });
  });

  it.each([
    ['a prediction', 200, '2xx'],
    ['a bad request', 415, '4xx'],
    ['a container 4xx', 400, '4xx'],
    ['an upstream failure', 502, '5xx'],
    ['an unreachable endpoint', 503, '5xx'],
  ] as const)('%s: one log line, which counts one %s response as %s', async (_name, status, cls) => {
    if (status === 200) {
      sagemaker
        .on(InvokeEndpointCommand)
        .resolves({ Body: new TextEncoder().encode('{"label":"glioma"}') as never });
    } else if (status === 400) {
      sagemaker.on(InvokeEndpointCommand).rejects(
        new ModelError({
          $metadata: { httpStatusCode: 424 },
          message: 'x',
          OriginalStatusCode: 400,
          OriginalMessage: '{"error":{"code":"UNDECODABLE_IMAGE","message":"no"}}',
        }),
      );
    } else if (status === 502) {
      sagemaker.on(InvokeEndpointCommand).rejects(new TypeError('surprise'));
    } else if (status === 503) {
      sagemaker
        .on(InvokeEndpointCommand)
        .rejects(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    }
    const handler = createHandler();
    const event =
      status === 415
        ? proxyEvent({ contentType: 'text/plain', body: 'hi', base64: false })
        : proxyEvent({ contentType: 'image/jpeg', body: IMAGE });
    const res = await handler(event, lambdaContext());
    expect(res.statusCode).toBe(status);
    const logged = lines();
    // The metric rides on the request's own log line: no extra line (stdout discipline in local mode).
    expect(logged).toHaveLength(1);
    const [line] = logged;
    expectValidEmf(line);
    expect(line).toMatchObject({
      status,
      FunctionName: 'predict',
      StatusClass: cls,
      [RESPONSES_METRIC]: 1,
      level: status >= 500 ? 'ERROR' : 'INFO',
    });
  });

  it('counts a misconfigured function (no ENDPOINT_NAME) as 5xx', async () => {
    const saved = process.env.ENDPOINT_NAME;
    delete process.env.ENDPOINT_NAME;
    try {
      const res = await createHandler()(
        proxyEvent({ contentType: 'image/jpeg', body: IMAGE }),
        lambdaContext(),
      );
      expect(res.statusCode).toBe(500);
    } finally {
      process.env.ENDPOINT_NAME = saved;
    }
    const [line] = lines();
    expectValidEmf(line);
    expect(line).toMatchObject({ StatusClass: '5xx', Responses: 1, level: 'ERROR' });
  });

  it('outside Lambda (local mode) the dimension is the env function name, else `local`', async () => {
    sagemaker
      .on(InvokeEndpointCommand)
      .resolves({ Body: new TextEncoder().encode('{"label":"x"}') as never });
    const saved = process.env.AWS_LAMBDA_FUNCTION_NAME;
    delete process.env.AWS_LAMBDA_FUNCTION_NAME;
    try {
      await createHandler()(proxyEvent({ contentType: 'image/jpeg', body: IMAGE }));
    } finally {
      if (saved !== undefined) process.env.AWS_LAMBDA_FUNCTION_NAME = saved;
    }
    expect(lines()[0]).toMatchObject({ FunctionName: 'local', StatusClass: '2xx' });
  });
});
