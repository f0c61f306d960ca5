import { Logger } from '@aws-lambda-powertools/logger';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';

/** One client per Lambda container; tests replace its `send` with aws-sdk-client-mock. */
export const s3 = new S3Client({});
const logger = new Logger({ serviceName: 'brain-tumor-batch-summarize' });

const EnvSchema = z.object({ BUCKET: z.string().min(1) });

const EventSchema = z.object({
  countsPrefix: z.string().endsWith('/'),
  resultsPrefix: z.string().endsWith('/'),
  summaryKey: z.string().min(1),
  inputUri: z.string().startsWith('s3://'),
  transformJobName: z.string().min(1),
  modelName: z.string().min(1),
  instanceType: z.string().min(1),
  instanceCount: z.number().int().min(1),
});

/** What each collector wrote beside its part (lambda/batch-transform/collect.ts). */
const CountsSchema = z.object({
  objects: z.number().int().min(0),
  images: z.number().int().min(0),
  labels: z.record(z.string(), z.number().int().min(0)),
  errors: z.record(z.string(), z.number().int().min(0)),
});

export interface Summary {
  /** Rows in the results: images (or jsonlines records), answered or not. */
  images: number;
  /** Rows per predicted label. */
  labels: Record<string, number>;
  /** Rows per error code. */
  errors: Record<string, number>;
  /** `.out` objects the transform job wrote. */
  objects: number;
  parts: number;
  transformJobName: string;
  modelName: string;
  instanceType: string;
  instanceCount: number;
  input: string;
  results: string;
  summary: string;
}

/** Parts read at once. */
const READ_CONCURRENCY = 32;

/**
 * Last state of the batch transform: adds up the collectors' counts (`counts/part-*.json`, one
 * per part, so the total is right for any number of parts without passing them through the
 * execution's 256 KiB state), writes `summary.json` beside the results and returns it as the
 * execution's output.
 */
export async function handler(event: unknown): Promise<Summary> {
  const { BUCKET: bucket } = EnvSchema.parse(process.env);
  const e = EventSchema.parse(event);
  const keys = await listKeys(bucket, e.countsPrefix);
  const total = {
    objects: 0,
    images: 0,
    labels: {} as Record<string, number>,
    errors: {} as Record<string, number>,
  };
  for (let i = 0; i < keys.length; i += READ_CONCURRENCY) {
    const window = keys.slice(i, i + READ_CONCURRENCY);
    const parts = await Promise.all(window.map((key) => readCounts(bucket, key)));
    for (const part of parts) {
      total.objects += part.objects;
      total.images += part.images;
      add(total.labels, part.labels);
      add(total.errors, part.errors);
    }
  }
  const summary: Summary = {
    images: total.images,
    labels: sorted(total.labels),
    errors: sorted(total.errors),
    objects: total.objects,
    parts: keys.length,
    transformJobName: e.transformJobName,
    modelName: e.modelName,
    instanceType: e.instanceType,
    instanceCount: e.instanceCount,
    input: e.inputUri,
    results: `s3://${bucket}/${e.resultsPrefix}`,
    summary: `s3://${bucket}/${e.summaryKey}`,
  };
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: e.summaryKey,
      Body: `${JSON.stringify(summary, null, 2)}\n`,
      ContentType: 'application/json',
    }),
  );
  // Counts only: labels per run are aggregate figures, but strict keeps predictions out of logs.
  logger.info('batch summarized', {
    transformJobName: e.transformJobName,
    images: summary.images,
    parts: summary.parts,
    errors: Object.values(summary.errors).reduce((a, b) => a + b, 0),
  });
  return summary;
}

async function listKeys(bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) if (object.Key?.endsWith('.json')) keys.push(object.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

async function readCounts(bucket: string, key: string): Promise<z.infer<typeof CountsSchema>> {
  const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const text = (await object.Body?.transformToString('utf-8')) ?? '';
  const parsed = CountsSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${key} is not a collector's counts: ${parsed.error.message}`);
  return parsed.data;
}

function add(into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n;
}

function sorted(record: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}
