import { z } from 'zod';
import {
  type BatchStrategy,
  type ExecutionParameters,
  MAX_BATCH_PAYLOAD_MB,
  MAX_BODY_BYTES,
  payloadBytes,
} from './contract.ts';

/**
 * Batch Transform mode, read from the environment SageMaker sets on the `serve` container of a
 * transform job (docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-batch-code.html):
 *
 *   SAGEMAKER_BATCH                      "true" in a transform job
 *   SAGEMAKER_MAX_PAYLOAD_IN_MB          the largest body the agent sends (only when the job sets it)
 *   SAGEMAKER_BATCH_STRATEGY             SINGLE_RECORD | MULTI_RECORD (only when the job sets it)
 *   SAGEMAKER_MAX_CONCURRENT_TRANSFORMS  most /invocations open at once (only when the job sets it)
 *
 * A malformed value is an error at start-up: the job then fails at once with a log line naming the
 * variable, rather than later on a request the container sized wrongly.
 */

/**
 * What `GET /execution-parameters` recommends, used by a job that does not set them itself.
 *
 * - MaxConcurrentTransforms 2: the server is one Node process with one model. Predictions run one
 *   at a time (bench:serve: throughput is flat from 1 to 16 concurrent requests), but decoding a
 *   request's images (sharp, on libuv's thread pool) and receiving its body do not need the main
 *   thread, so with a second request in flight its images decode while the first one's batch
 *   predicts, and the CPU does not idle between requests. More would only queue bodies (up to
 *   MaxPayloadInMB each) in memory and lengthen each request toward the invocation timeout.
 * - MULTI_RECORD: one request then carries as many JSON Lines records as fit, which the container
 *   predicts in batches of MAX_INSTANCES, the cheapest way per image.
 * - MaxPayloadInMB 6: the real-time limit, so a body either path accepts is the same size; at
 *   224 px a JPEG record is 20-40 KB as base64, so 6 MB is 150-300 images, tens of seconds of
 *   prediction on a small CPU instance, well inside the default invocation timeout. It must be at
 *   least one record's size, and 2 x 6 stays far below SageMaker's 100 MB for
 *   MaxConcurrentTransforms x MaxPayloadInMB.
 */
export const EXECUTION_PARAMETERS: Readonly<ExecutionParameters> = Object.freeze({
  MaxConcurrentTransforms: 2,
  BatchStrategy: 'MULTI_RECORD',
  MaxPayloadInMB: 6,
});

export interface BatchMode {
  /** SAGEMAKER_BATCH=true: a record that cannot be decoded is answered 200 with an error row. */
  enabled: boolean;
  /** The /invocations body limit: MaxPayloadInMB in batch mode, else the real-time 6 MB. */
  maxBodyBytes: number;
  /** As the job set them (undefined: not set, SageMaker then uses EXECUTION_PARAMETERS). */
  maxPayloadInMB?: number;
  strategy?: BatchStrategy;
  maxConcurrentTransforms?: number;
}

/** Unset and empty are the same: an environment map cannot always drop a key. */
const unset = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const integer = (name: string, max?: number) =>
  z.preprocess(
    unset,
    z
      .string()
      .trim()
      .regex(/^\d+$/, `${name} must be a whole number`)
      .transform(Number)
      .pipe(
        max === undefined
          ? z.number().int().min(0)
          : z.number().int().min(0).max(max, `${name} must be at most ${max}`),
      )
      .optional(),
  );

const BatchEnvSchema = z.object({
  SAGEMAKER_BATCH: z.preprocess(
    unset,
    z
      .string()
      .trim()
      .toLowerCase()
      .pipe(z.enum(['true', 'false'], { error: 'SAGEMAKER_BATCH must be true or false' }))
      .optional(),
  ),
  // 0 means "no limit, chunked bodies" in the SageMaker API; the container then takes the largest
  // payload a job may have.
  SAGEMAKER_MAX_PAYLOAD_IN_MB: integer('SAGEMAKER_MAX_PAYLOAD_IN_MB', MAX_BATCH_PAYLOAD_MB),
  SAGEMAKER_BATCH_STRATEGY: z.preprocess(
    unset,
    z
      .string()
      .trim()
      .toUpperCase()
      .pipe(
        z.enum(['SINGLE_RECORD', 'MULTI_RECORD'], {
          error: 'SAGEMAKER_BATCH_STRATEGY must be SINGLE_RECORD or MULTI_RECORD',
        }),
      )
      .optional(),
  ),
  // 0 lets SageMaker choose; the container does not need the value, it is validated and logged.
  SAGEMAKER_MAX_CONCURRENT_TRANSFORMS: integer('SAGEMAKER_MAX_CONCURRENT_TRANSFORMS'),
});

/** Batch mode from an environment (default `process.env`); throws on a malformed variable, naming it. */
export function batchModeFromEnv(env: NodeJS.ProcessEnv = process.env): BatchMode {
  const parsed = BatchEnvSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? 'environment');
    const value = env[name];
    throw new Error(`${issue?.message ?? 'invalid value'} (${name}=${JSON.stringify(value)})`);
  }
  const e = parsed.data;
  const enabled = e.SAGEMAKER_BATCH === 'true';
  // Outside a transform job the payload variable means nothing: the real-time limit stays.
  const mb = e.SAGEMAKER_MAX_PAYLOAD_IN_MB ?? EXECUTION_PARAMETERS.MaxPayloadInMB;
  return {
    enabled,
    maxBodyBytes: enabled ? payloadBytes(mb === 0 ? MAX_BATCH_PAYLOAD_MB : mb) : MAX_BODY_BYTES,
    maxPayloadInMB: e.SAGEMAKER_MAX_PAYLOAD_IN_MB,
    strategy: e.SAGEMAKER_BATCH_STRATEGY,
    maxConcurrentTransforms: e.SAGEMAKER_MAX_CONCURRENT_TRANSFORMS,
  };
}
