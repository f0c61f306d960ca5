import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * The batch transform state machine's execution input, and what follows from it. Only zod and
 * node:crypto here: the Plan Lambda validates the input it receives with this schema, and the
 * `brain-tumor batch --aws` start (lib/pipeline/batch-aws.ts) validates what it sends with the
 * same one, so a bad option fails on the command line and a hand-written input in the console
 * fails in the first state, with the same message.
 */

/** Where every batch run writes: `batch-output/<execution name>/{raw,results,counts}/`, `summary.json`. */
export const OUTPUT_ROOT = 'batch-output/';

/** `images`: one image per S3 object. `jsonlines`: `.jsonl` objects of `{"b64": ..., "id": ...}` lines. */
export const INPUT_FORMATS = ['images', 'jsonlines'] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];

/** How each format reaches the container: the request's content type and how objects are split into records. */
export const FORMAT_SETTINGS: Record<InputFormat, { contentType: string; splitType: 'None' | 'Line' }> = {
  // The container reads the image type from the bytes; one whole object per request.
  images: { contentType: 'application/x-image', splitType: 'None' },
  jsonlines: { contentType: 'application/jsonlines', splitType: 'Line' },
};
/** The container answers every record with one JSON line; SageMaker joins them with newlines. */
export const ACCEPT = 'application/jsonlines';

/** SageMaker's limits: MaxPayloadInMB 0..100 and MaxPayloadInMB x MaxConcurrentTransforms <= 100 MB. */
export const MAX_PAYLOAD_MB = 100;
/** TransformResources.InstanceCount: 1..100. */
export const MAX_INSTANCES = 100;
/** TransformJobName: `^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`. */
export const MAX_JOB_NAME = 63;
const JOB_NAME = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;

const int = (min: number, max: number) => z.number().int().min(min).max(max);

/**
 * A key prefix of the data bucket, as the user names it: `images/`, `images` or
 * `s3://<bucket>/images/`. Normalised to `images/` (no leading slash, one trailing slash); the
 * bucket of an s3:// URI is kept for the Plan step, which checks it is the data bucket.
 */
export const PrefixSchema = z
  .string()
  .trim()
  .min(1, 'prefix is required (the key prefix of the images in the data bucket, e.g. images/)')
  .transform((value, ctx) => {
    let bucket: string | undefined;
    let key = value;
    const uri = /^s3:\/\/([^/]+)\/?(.*)$/.exec(value);
    if (uri) {
      bucket = uri[1];
      key = uri[2] ?? '';
    }
    key = key.replace(/^\/+/, '');
    if (key && !key.endsWith('/')) key += '/';
    const problem = !key
      ? 'prefix must name a folder of the bucket, not the whole bucket'
      : key.split('/').some((part, i, all) => part === '..' || (part === '' && i < all.length - 1))
        ? 'prefix must not contain empty or ".." path segments'
        : key.startsWith(OUTPUT_ROOT)
          ? `prefix must not be under ${OUTPUT_ROOT} (that is where batch runs write)`
          : key.length > 900
            ? 'prefix is longer than 900 characters'
            : undefined;
    if (problem) {
      ctx.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
    return { bucket, key };
  });

/**
 * The execution input (JSON), every field but `prefix` optional: the state machine fills the rest
 * from the defaults it was deployed with (docs/batch.md has the table). Unknown keys are refused,
 * so a misspelt option is an error, not a silent default.
 */
export const BatchInputSchema = z
  .strictObject({
    /** Key prefix (or s3:// URI) of the inputs in the data bucket. */
    prefix: PrefixSchema,
    /** @default 'images' */
    format: z.enum(INPUT_FORMATS).optional(),
    /** e.g. `ml.c5.xlarge` (CPU) or `ml.g4dn.xlarge` (GPU). */
    instanceType: z
      .string()
      .regex(/^ml\.[a-z0-9-]+\.[a-z0-9]+$/, 'expected an instance type like ml.c5.xlarge')
      .optional(),
    instanceCount: int(1, MAX_INSTANCES).optional(),
    /** Largest request SageMaker sends (one image, or a mini-batch of jsonlines records). */
    maxPayloadInMB: int(1, MAX_PAYLOAD_MB).optional(),
    /** Parallel requests per instance; 0 = ask the container (GET /execution-parameters). */
    maxConcurrentTransforms: int(0, 1000).optional(),
    /** `SingleRecord` only for images; jsonlines may batch lines (`MultiRecord`). */
    batchStrategy: z.enum(['SingleRecord', 'MultiRecord']).optional(),
    /** Collector Lambdas running at once. */
    collectConcurrency: int(1, 1000).optional(),
  })
  .superRefine((input, ctx) => {
    if ((input.format ?? 'images') === 'images' && input.batchStrategy === 'MultiRecord') {
      ctx.addIssue({
        code: 'custom',
        path: ['batchStrategy'],
        message: 'images go one per request: MultiRecord needs format jsonlines (records split by line)',
      });
    }
  });
export type BatchInput = z.input<typeof BatchInputSchema>;
export type ParsedBatchInput = z.output<typeof BatchInputSchema>;

/** The deployed defaults (construct props), which the Plan step gets in its environment. */
export interface BatchDefaults {
  instanceType: string;
  instanceCount: number;
  maxPayloadInMB: number;
  maxConcurrentTransforms: number;
  collectConcurrency: number;
}

/** Everything the later states need, in the execution's state under `$.plan`. */
export interface BatchPlan {
  jobName: string;
  format: InputFormat;
  contentType: string;
  splitType: 'None' | 'Line';
  batchStrategy: 'SingleRecord' | 'MultiRecord';
  instanceType: string;
  instanceCount: number;
  maxPayloadInMB: number;
  maxConcurrentTransforms: number;
  collectConcurrency: number;
  inputPrefix: string;
  inputUri: string;
  outputPrefix: string;
  rawPrefix: string;
  outputUri: string;
  resultsPrefix: string;
  countsPrefix: string;
  summaryKey: string;
}

/** The message of every problem in one line, each with its field: what the user reads. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}

/**
 * The input with the defaults applied, checked once more as a whole (SageMaker refuses
 * MaxPayloadInMB x MaxConcurrentTransforms above 100 MB), and the names and S3 locations of the
 * run. Throws an Error with every problem in one line.
 */
export function planBatch(
  input: ParsedBatchInput,
  defaults: BatchDefaults,
  context: { bucket: string; namePrefix: string; executionName: string },
): BatchPlan {
  if (input.prefix.bucket !== undefined && input.prefix.bucket !== context.bucket) {
    throw new Error(
      `prefix: the transform job reads the stack's data bucket ${context.bucket} only, not ${input.prefix.bucket}; copy the images there first`,
    );
  }
  const format = input.format ?? 'images';
  const maxPayloadInMB = input.maxPayloadInMB ?? defaults.maxPayloadInMB;
  const maxConcurrentTransforms = input.maxConcurrentTransforms ?? defaults.maxConcurrentTransforms;
  if (maxConcurrentTransforms > 0 && maxPayloadInMB * maxConcurrentTransforms > MAX_PAYLOAD_MB) {
    throw new Error(
      `maxPayloadInMB x maxConcurrentTransforms is ${maxPayloadInMB * maxConcurrentTransforms} MB; SageMaker allows at most ${MAX_PAYLOAD_MB}`,
    );
  }
  const outputPrefix = `${OUTPUT_ROOT}${context.executionName}/`;
  const rawPrefix = `${outputPrefix}raw/`;
  return {
    jobName: transformJobName(context.namePrefix, context.executionName),
    format,
    ...FORMAT_SETTINGS[format],
    batchStrategy: input.batchStrategy ?? (format === 'jsonlines' ? 'MultiRecord' : 'SingleRecord'),
    instanceType: input.instanceType ?? defaults.instanceType,
    instanceCount: input.instanceCount ?? defaults.instanceCount,
    maxPayloadInMB,
    maxConcurrentTransforms,
    collectConcurrency: input.collectConcurrency ?? defaults.collectConcurrency,
    inputPrefix: input.prefix.key,
    inputUri: `s3://${context.bucket}/${input.prefix.key}`,
    outputPrefix,
    rawPrefix,
    outputUri: `s3://${context.bucket}/${rawPrefix}`,
    resultsPrefix: `${outputPrefix}results/`,
    countsPrefix: `${outputPrefix}counts/`,
    summaryKey: `${outputPrefix}summary.json`,
  };
}

/** Every transform job of a stack starts with this (IAM and the docs match on it). */
export function jobNamePrefixOf(namePrefix: string): string {
  return `${namePrefix}-batch-`;
}

/**
 * The transform job's name, from the execution's: `<namePrefix>-batch-<execution name>` when that
 * is a valid job name, else the name's letters and digits (runs of anything else as `-`), cut to
 * fit 63 characters, and 8 hex digits of its SHA-256, so two execution names never share a job.
 * The same execution name always gives the same job name: a redriven execution finds its job.
 */
export function transformJobName(namePrefix: string, executionName: string): string {
  const base = jobNamePrefixOf(namePrefix);
  const room = MAX_JOB_NAME - base.length;
  if (room < 16) throw new Error(`name prefix ${namePrefix} leaves no room for a job name`);
  const plain = `${base}${executionName}`;
  if (executionName.length <= room && JOB_NAME.test(plain)) return plain;
  const clean = executionName.replace(/[^a-zA-Z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  const hash = createHash('sha256').update(executionName).digest('hex').slice(0, 8);
  const head = clean.slice(0, room - hash.length - 1).replace(/-+$/, '');
  return head ? `${base}${head}-${hash}` : `${base}${hash}`;
}
