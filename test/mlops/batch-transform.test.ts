import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import {
  DescribeEndpointCommand,
  DescribeEndpointConfigCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type CollectEvent, handler as collect, PartWriter } from '../../lambda/batch-transform/collect.ts';
import {
  BatchInputSchema,
  FORMAT_SETTINGS,
  MAX_JOB_NAME,
  planBatch,
  transformJobName,
} from '../../lambda/batch-transform/input.ts';
import { handler as plan } from '../../lambda/batch-transform/plan.ts';
import { handler as summarize } from '../../lambda/batch-transform/summarize.ts';

/**
 * The batch transform's Lambdas against mocked AWS clients: Plan (the execution input, the job
 * name, the endpoint's model), Collect (joining answers with their input names, bad answers as
 * rows) and Summarize (adding up the parts).
 */

const s3 = mockClient(S3Client);
const sagemaker = mockClient(SageMakerClient);
const log = vi.spyOn(console, 'log').mockImplementation(() => {});
// The collectors' Powertools logger writes JSON lines to stdout: kept here, and checked below.
const stdout: string[] = [];
const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
  stdout.push(String(chunk));
  return true;
});
afterAll(() => {
  log.mockRestore();
  write.mockRestore();
});

const body = (text: string) => ({ Body: { transformToString: async () => text } }) as never;
const notFound = () =>
  Object.assign(new Error('Could not find endpoint "stack-endpoint".'), { name: 'ValidationException' });

/** The text and key of every PutObject, by key. */
function puts(): Map<string, string> {
  return new Map(
    s3.commandCalls(PutObjectCommand).map((c) => {
      const { Key, Body } = c.args[0].input;
      return [Key as string, Buffer.isBuffer(Body) ? Body.toString('utf8') : String(Body)];
    }),
  );
}
const rowsOf = (text: string | undefined) =>
  (text ?? '')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));

beforeEach(() => {
  s3.reset();
  sagemaker.reset();
  Object.assign(process.env, {
    BUCKET: 'data-bucket',
    NAME_PREFIX: 'stack',
    ENDPOINT_NAME: 'stack-endpoint',
    VARIANT_NAME: 'AllTraffic',
    DEFAULT_INSTANCE_TYPE: 'ml.c5.xlarge',
    DEFAULT_INSTANCE_COUNT: '1',
    DEFAULT_MAX_PAYLOAD_MB: '6',
    DEFAULT_MAX_CONCURRENT_TRANSFORMS: '0',
    DEFAULT_COLLECT_CONCURRENCY: '4',
    ENCRYPT_VOLUME: 'false',
  });
  sagemaker.on(DescribeEndpointCommand).resolves({
    EndpointStatus: 'InService',
    EndpointConfigName: 'stack-v7-abc',
  } as never);
  sagemaker.on(DescribeEndpointConfigCommand).resolves({
    ProductionVariants: [{ VariantName: 'AllTraffic', ModelName: 'stack-v7-abc' }],
  } as never);
});

describe('batch: plan', () => {
  it('fills the defaults, names the job after the execution and finds the model the endpoint serves', async () => {
    const result = await plan({ input: { prefix: 'scans' }, executionName: 'run-1' });
    expect(result).toEqual({
      jobName: 'stack-batch-run-1',
      format: 'images',
      contentType: 'application/x-image',
      splitType: 'None',
      batchStrategy: 'SingleRecord',
      instanceType: 'ml.c5.xlarge',
      instanceCount: 1,
      maxPayloadInMB: 6,
      maxConcurrentTransforms: 0,
      collectConcurrency: 4,
      inputPrefix: 'scans/',
      inputUri: 's3://data-bucket/scans/',
      outputPrefix: 'batch-output/run-1/',
      rawPrefix: 'batch-output/run-1/raw/',
      outputUri: 's3://data-bucket/batch-output/run-1/raw/',
      resultsPrefix: 'batch-output/run-1/results/',
      countsPrefix: 'batch-output/run-1/counts/',
      summaryKey: 'batch-output/run-1/summary.json',
      modelName: 'stack-v7-abc',
      endpointConfigName: 'stack-v7-abc',
      encryptVolume: false,
    });
    expect(sagemaker.commandCalls(DescribeEndpointConfigCommand)[0].args[0].input).toEqual({
      EndpointConfigName: 'stack-v7-abc',
    });
  });

  it('jsonlines: records split by line, several per request by default; the options given win', async () => {
    const result = await plan({
      input: {
        prefix: 's3://data-bucket/packed/',
        format: 'jsonlines',
        instanceType: 'ml.g4dn.xlarge',
        instanceCount: 3,
        maxPayloadInMB: 20,
        maxConcurrentTransforms: 5,
        collectConcurrency: 10,
      },
      executionName: 'run-2',
    });
    expect(result).toMatchObject({
      contentType: 'application/jsonlines',
      splitType: 'Line',
      batchStrategy: 'MultiRecord',
      instanceType: 'ml.g4dn.xlarge',
      instanceCount: 3,
      maxPayloadInMB: 20,
      maxConcurrentTransforms: 5,
      collectConcurrency: 10,
      inputUri: 's3://data-bucket/packed/',
    });
    expect(FORMAT_SETTINGS.images).toEqual({ contentType: 'application/x-image', splitType: 'None' });
  });

  it('strict: the volume gets the key except on instance types with local storage (SageMaker refuses it)', async () => {
    process.env.ENCRYPT_VOLUME = 'true';
    const ebs = await plan({ input: { prefix: 'a/' }, executionName: 'r' });
    const nvme = await plan({ input: { prefix: 'a/', instanceType: 'ml.g4dn.xlarge' }, executionName: 'r' });
    expect([ebs.encryptVolume, nvme.encryptVolume]).toEqual([true, false]);
  });

  it('refuses a bad input with every problem named, before any AWS call', async () => {
    const bad = plan({
      input: {
        prefix: 'scans/',
        format: 'images',
        batchStrategy: 'MultiRecord',
        instanceType: 'c5.xlarge',
        instanceCount: 0,
        colour: 'blue',
      },
      executionName: 'r',
    });
    await expect(bad).rejects.toMatchObject({ name: 'InvalidInput' });
    const message = await bad.catch((err: Error) => err.message);
    for (const part of ['instanceType', 'instanceCount', 'colour', 'batchStrategy'])
      expect(message).toContain(part);
    for (const prefix of ['', '/', 'batch-output/run-1/', 'a/../b', 's3://data-bucket']) {
      await expect(plan({ input: { prefix }, executionName: 'r' }), prefix).rejects.toMatchObject({
        name: 'InvalidInput',
      });
    }
    await expect(plan({ input: { prefix: 's3://other-bucket/scans/' }, executionName: 'r' })).rejects.toThrow(
      /reads the stack's data bucket data-bucket only/,
    );
    await expect(
      plan({ input: { prefix: 'a/', maxPayloadInMB: 20, maxConcurrentTransforms: 6 }, executionName: 'r' }),
    ).rejects.toThrow(/at most 100/);
    expect(sagemaker.commandCalls(DescribeEndpointCommand)).toHaveLength(0);
  });

  it('no endpoint, or one not InService: NoDeployedModel that says to approve a model; other errors pass through', async () => {
    sagemaker.on(DescribeEndpointCommand).rejects(notFound());
    await expect(plan({ input: { prefix: 'a/' }, executionName: 'r' })).rejects.toMatchObject({
      name: 'NoDeployedModel',
      message: expect.stringMatching(
        /^no deployed model: endpoint stack-endpoint does not exist; approve a model package first/,
      ),
    });
    sagemaker
      .on(DescribeEndpointCommand)
      .resolves({ EndpointStatus: 'Updating', EndpointConfigName: 'x' } as never);
    await expect(plan({ input: { prefix: 'a/' }, executionName: 'r' })).rejects.toMatchObject({
      name: 'NoDeployedModel',
      message: expect.stringContaining('is Updating, not InService'),
    });
    sagemaker
      .on(DescribeEndpointCommand)
      .rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }));
    await expect(plan({ input: { prefix: 'a/' }, executionName: 'r' })).rejects.toMatchObject({
      name: 'AccessDeniedException',
    });
  });

  it('the model is the AllTraffic variant', async () => {
    sagemaker.on(DescribeEndpointConfigCommand).resolves({
      ProductionVariants: [
        { VariantName: 'Other', ModelName: 'wrong' },
        { VariantName: 'AllTraffic', ModelName: 'right' },
      ],
    } as never);
    expect((await plan({ input: { prefix: 'a/' }, executionName: 'r' })).modelName).toBe('right');
    sagemaker.on(DescribeEndpointConfigCommand).resolves({ ProductionVariants: [] } as never);
    await expect(plan({ input: { prefix: 'a/' }, executionName: 'r' })).rejects.toMatchObject({
      name: 'NoDeployedModel',
    });
  });
});

describe('batch: transform job names', () => {
  const valid = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;
  it('are the execution name when it fits, else a cut-down name plus a hash; always valid and deterministic', () => {
    expect(transformJobName('stack', 'run-1')).toBe('stack-batch-run-1');
    const prefix40 = 'x'.repeat(40);
    const names = [
      'batch_2026_12_02',
      'batch-2026_12_02',
      'a'.repeat(80),
      `${'a'.repeat(79)}b`,
      '___',
      'Run.With.Dots-and_underscores',
    ];
    const jobs = names.map((n) => transformJobName(prefix40, n));
    for (const job of jobs) {
      expect(job.length).toBeLessThanOrEqual(MAX_JOB_NAME);
      expect(job).toMatch(valid);
      expect(job.startsWith(`${prefix40}-batch-`)).toBe(true);
    }
    expect(new Set(jobs).size).toBe(names.length);
    expect(names.map((n) => transformJobName(prefix40, n))).toEqual(jobs);
  });

  it('refuse a name prefix that leaves no room', () => {
    expect(() => transformJobName('x'.repeat(41), 'r')).toThrow(/no room/);
  });
});

describe('batch: the input schema', () => {
  it('normalises the prefix and keeps an s3:// bucket for the check', () => {
    const parse = (prefix: string) => BatchInputSchema.parse({ prefix }).prefix;
    expect(parse('scans')).toEqual({ bucket: undefined, key: 'scans/' });
    expect(parse('/scans/2026/')).toEqual({ bucket: undefined, key: 'scans/2026/' });
    expect(parse('s3://b/scans')).toEqual({ bucket: 'b', key: 'scans/' });
    const input = BatchInputSchema.parse({ prefix: 'scans' });
    expect(() =>
      planBatch(
        { ...input, maxPayloadInMB: 50 },
        {
          instanceType: 'ml.c5.xlarge',
          instanceCount: 1,
          maxPayloadInMB: 6,
          maxConcurrentTransforms: 3,
          collectConcurrency: 4,
        },
        { bucket: 'b', namePrefix: 'stack', executionName: 'r' },
      ),
    ).toThrow(/150 MB/);
  });
});

const BATCH = {
  rawPrefix: 'batch-output/run-1/raw/',
  resultsPrefix: 'batch-output/run-1/results/',
  countsPrefix: 'batch-output/run-1/counts/',
};
const key = (file: string) => `${BATCH.rawPrefix}${file}.out`;
const answer = (label: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ label, probabilities: { [label]: 0.9 }, modelVersion: 'v7', ...extra });

describe('batch: collect', () => {
  afterEach(() => {
    PartWriter.PART_BYTES = 8 * 1024 * 1024;
  });

  it("joins each answer with its input's key relative to the input prefix, in the listing's order", async () => {
    s3.on(GetObjectCommand, { Key: key('scans/a.jpg') }).resolves(body(`${answer('glioma')}\n`));
    s3.on(GetObjectCommand, { Key: key('scans/sub/b.png') }).resolves(body(`${answer('notumor')}\n`));
    const event: CollectEvent = {
      Items: [
        { key: key('scans/sub/b.png'), index: 1001 },
        { key: key('scans/a.jpg'), index: 1000 },
      ],
      BatchInput: BATCH,
    };
    const result = await collect(event);
    const part = puts().get('batch-output/run-1/results/part-000001000.jsonl');
    expect(rowsOf(part)).toEqual([
      { file: 'scans/a.jpg', label: 'glioma', probabilities: { glioma: 0.9 }, modelVersion: 'v7' },
      { file: 'scans/sub/b.png', label: 'notumor', probabilities: { notumor: 0.9 }, modelVersion: 'v7' },
    ]);
    expect(result).toEqual({
      part: 's3://data-bucket/batch-output/run-1/results/part-000001000.jsonl',
      objects: 2,
      images: 2,
      labels: { glioma: 1, notumor: 1 },
      errors: {},
    });
    expect(JSON.parse(puts().get('batch-output/run-1/counts/part-000001000.json') ?? '')).toEqual({
      part: 'batch-output/run-1/results/part-000001000.jsonl',
      objects: 2,
      images: 2,
      labels: { glioma: 1, notumor: 1 },
      errors: {},
    });
  });

  it("counts the container's error rows by code, and reports a malformed, empty or vanished .out as a row", async () => {
    s3.on(GetObjectCommand, { Key: key('bad.jpg') }).resolves(
      body(`${JSON.stringify({ error: { code: 'UNDECODABLE_IMAGE', message: 'not an image' } })}\n`),
    );
    s3.on(GetObjectCommand, { Key: key('garbled.jpg') }).resolves(body('<html>502 Bad Gateway</html>\n'));
    s3.on(GetObjectCommand, { Key: key('empty.jpg') }).resolves(body(''));
    s3.on(GetObjectCommand, { Key: key('odd.jpg') }).resolves(body('{"score": 3}\n'));
    s3.on(GetObjectCommand, { Key: key('gone.jpg') }).rejects(
      Object.assign(new Error('gone'), { name: 'NoSuchKey' }),
    );
    s3.on(GetObjectCommand, { Key: key('good.jpg') }).resolves(body(answer('pituitary')));
    const files = ['bad.jpg', 'garbled.jpg', 'empty.jpg', 'odd.jpg', 'gone.jpg', 'good.jpg'];
    const result = await collect({
      Items: files.map((f, index) => ({ key: key(f), index })),
      BatchInput: BATCH,
    });
    expect(result).toMatchObject({
      objects: 6,
      images: 6,
      labels: { pituitary: 1 },
      errors: { UNDECODABLE_IMAGE: 1, MALFORMED_OUTPUT: 3, MISSING_OUTPUT: 1 },
    });
    const rows = rowsOf(puts().get('batch-output/run-1/results/part-000000000.jsonl'));
    expect(rows.map((r) => [r.file, r.error?.code ?? r.label])).toEqual([
      ['bad.jpg', 'UNDECODABLE_IMAGE'],
      ['garbled.jpg', 'MALFORMED_OUTPUT'],
      ['empty.jpg', 'MALFORMED_OUTPUT'],
      ['odd.jpg', 'MALFORMED_OUTPUT'],
      ['gone.jpg', 'MISSING_OUTPUT'],
      ['good.jpg', 'pituitary'],
    ]);
    expect(rows[0].error.message).toBe('not an image');
  });

  it('jsonlines: each line is a row named by its id, else <file>#<line>', async () => {
    const lines = [
      answer('glioma', { id: 'patient-1/scan-1' }),
      JSON.stringify({ id: 'patient-1/scan-2', error: { code: 'INVALID_BASE64', message: 'bad' } }),
      answer('meningioma'),
      'not json',
    ];
    s3.on(GetObjectCommand).resolves(body(`${lines.join('\n')}\n`));
    const result = await collect({
      Items: [{ key: key('packed/batch-1.jsonl'), index: 0 }],
      BatchInput: BATCH,
    });
    const rows = rowsOf(puts().get('batch-output/run-1/results/part-000000000.jsonl'));
    expect(rows.map((r) => r.file)).toEqual([
      'patient-1/scan-1',
      'patient-1/scan-2',
      'packed/batch-1.jsonl#3',
      'packed/batch-1.jsonl#4',
    ]);
    expect(rows[0]).not.toHaveProperty('id');
    expect(result).toMatchObject({
      objects: 1,
      images: 4,
      labels: { glioma: 1, meningioma: 1 },
      errors: { INVALID_BASE64: 1, MALFORMED_OUTPUT: 1 },
    });
  });

  it('a large part goes up as a multipart upload, in order', async () => {
    PartWriter.PART_BYTES = 300;
    s3.on(GetObjectCommand).callsFake((input: { Key: string }) => body(answer('glioma', { pad: input.Key })));
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'u1' });
    s3.on(UploadPartCommand).callsFake((input: { PartNumber: number }) => ({ ETag: `e${input.PartNumber}` }));
    const items = Array.from({ length: 10 }, (_, index) => ({ key: key(`f${index}.jpg`), index }));
    const result = await collect({ Items: items, BatchInput: BATCH });
    expect(result.images).toBe(10);
    const uploaded = s3
      .commandCalls(UploadPartCommand)
      .map((c) => (c.args[0].input.Body as Buffer).toString('utf8'))
      .join('');
    expect(rowsOf(uploaded).map((r) => r.file)).toEqual(items.map((_, i) => `f${i}.jpg`));
    const complete = s3.commandCalls(CompleteMultipartUploadCommand)[0].args[0].input;
    expect(complete.MultipartUpload?.Parts?.map((p) => p.PartNumber)).toEqual(
      s3.commandCalls(UploadPartCommand).map((_, i) => i + 1),
    );
    expect(puts().has('batch-output/run-1/results/part-000000000.jsonl')).toBe(false);
  });

  it('logs counts only: no file name and no label', async () => {
    s3.on(GetObjectCommand).resolves(body(answer('glioma')));
    stdout.length = 0;
    await collect({ Items: [{ key: key('patient-smith/scan.jpg'), index: 0 }], BatchInput: BATCH });
    const logs = stdout.join('');
    expect(logs).toContain('part written');
    expect(logs).not.toContain('patient-smith');
    expect(logs).not.toContain('glioma');
  });

  it('refuses an event that is not a batch', async () => {
    await expect(collect({ Items: [], BatchInput: BATCH })).rejects.toThrow(/at least one object/);
  });
});

describe('batch: summarize', () => {
  const event = {
    countsPrefix: 'batch-output/run-1/counts/',
    resultsPrefix: 'batch-output/run-1/results/',
    summaryKey: 'batch-output/run-1/summary.json',
    inputUri: 's3://data-bucket/scans/',
    transformJobName: 'stack-batch-run-1',
    modelName: 'stack-v7-abc',
    instanceType: 'ml.c5.xlarge',
    instanceCount: 1,
  };

  it("adds up every part's counts (all listing pages), writes summary.json and returns it", async () => {
    const counts = (images: number, labels: Record<string, number>, errors: Record<string, number>) =>
      body(JSON.stringify({ part: 'p', objects: images, images, labels, errors }));
    s3.on(ListObjectsV2Command)
      .resolvesOnce({
        Contents: [{ Key: 'batch-output/run-1/counts/part-000000000.json' }],
        IsTruncated: true,
        NextContinuationToken: 't',
      })
      .resolvesOnce({
        Contents: [{ Key: 'batch-output/run-1/counts/part-000001000.json' }],
        IsTruncated: false,
      });
    s3.on(GetObjectCommand, { Key: 'batch-output/run-1/counts/part-000000000.json' }).resolves(
      counts(1000, { glioma: 600, notumor: 399 }, { UNDECODABLE_IMAGE: 1 }),
    );
    s3.on(GetObjectCommand, { Key: 'batch-output/run-1/counts/part-000001000.json' }).resolves(
      counts(5, { glioma: 5 }, {}),
    );
    const summary = await summarize(event);
    expect(summary).toEqual({
      images: 1005,
      labels: { glioma: 605, notumor: 399 },
      errors: { UNDECODABLE_IMAGE: 1 },
      objects: 1005,
      parts: 2,
      transformJobName: 'stack-batch-run-1',
      modelName: 'stack-v7-abc',
      instanceType: 'ml.c5.xlarge',
      instanceCount: 1,
      input: 's3://data-bucket/scans/',
      results: 's3://data-bucket/batch-output/run-1/results/',
      summary: 's3://data-bucket/batch-output/run-1/summary.json',
    });
    expect(JSON.parse(puts().get('batch-output/run-1/summary.json') ?? '')).toEqual(summary);
    expect(s3.commandCalls(ListObjectsV2Command)[1].args[0].input.ContinuationToken).toBe('t');
  });

  it('an empty run sums to zero; a file that is not counts fails the step', async () => {
    s3.on(ListObjectsV2Command).resolves({ Contents: [] });
    expect(await summarize(event)).toMatchObject({ images: 0, parts: 0, labels: {}, errors: {} });
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: 'batch-output/run-1/counts/x.json' }] });
    s3.on(GetObjectCommand).resolves(body('{"images": "many"}'));
    await expect(summarize(event)).rejects.toThrow(/not a collector's counts/);
  });
});
