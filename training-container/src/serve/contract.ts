import { z } from 'zod';

/**
 * The prediction wire contract shared by the container's `/invocations` and the predict Lambda,
 * so both ends validate the same shapes with the same limits. Only zod here: the Lambda bundles
 * this file and must not pull in tfjs or sharp.
 */

/**
 * SageMaker real-time endpoints (InvokeEndpoint) accept at most 6 MB per request, so the container
 * takes that much from a direct caller. The HTTPS API is stricter: see MAX_IMAGE_BYTES.
 */
export const MAX_BODY_BYTES = 6 * 1024 * 1024;

/**
 * Lambda's synchronous invocation limit (6,291,456 bytes), which applies to the whole JSON event
 * API Gateway builds: the body (base64 for images), headers twice over and the request context.
 * Lambda refuses a larger event before our handler runs, so the client never sees our 413.
 */
export const LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024;

/** Base64 characters (with padding) that encode `bytes` bytes. */
export function base64Length(bytes: number): number {
  return 4 * Math.ceil(bytes / 3);
}

/**
 * The largest image the HTTPS API accepts, as an image/jpeg or image/png body or as one `b64`
 * instance. 4 MiB becomes 5,592,408 base64 characters in the Lambda event, which leaves 699,048
 * bytes of LAMBDA_SYNC_PAYLOAD_BYTES for the rest of the event (API Gateway allows 10 KiB of
 * request line and headers, which the event holds twice), so a request the handler can answer
 * with 413 always reaches it.
 */
export const MAX_IMAGE_BYTES = 4 * 1024 * 1024;

/** A JSON body at the API may hold one MAX_IMAGE_BYTES image as base64, plus 1 KiB of JSON around it. */
export const MAX_JSON_BODY_BYTES = base64Length(MAX_IMAGE_BYTES) + 1024;

/** Instances per JSON request: one batch per request, so this bounds memory and latency. */
export const MAX_INSTANCES = 16;

export const IMAGE_CONTENT_TYPES = ['image/jpeg', 'image/png'] as const;
export const JSON_CONTENT_TYPE = 'application/json';
/** What the HTTPS API (and so the predict Lambda) accepts; the container takes these and the batch types below. */
export const SUPPORTED_CONTENT_TYPES: readonly string[] = [...IMAGE_CONTENT_TYPES, JSON_CONTENT_TYPE];

/**
 * JSON Lines: one record per line, what a Batch Transform job with SplitType=Line and
 * BatchStrategy=MULTI_RECORD sends (many records of a .jsonl object, joined by newlines). The
 * container only: the API has no use for it. Answered as `application/jsonlines`.
 */
export const JSONLINES_CONTENT_TYPE = 'application/jsonlines';
export const JSONLINES_CONTENT_TYPES: readonly string[] = [JSONLINES_CONTENT_TYPE, 'application/x-jsonlines'];

/** SageMaker's name for "some image" (Batch Transform with SplitType=None sends one S3 object per request). */
export const X_IMAGE_CONTENT_TYPE = 'application/x-image';

/** In batch mode any image type is accepted and the bytes are sniffed: the job's ContentType is one for all objects. */
export function isBatchImageType(type: string | undefined): boolean {
  return type === X_IMAGE_CONTENT_TYPE || (type?.startsWith('image/') ?? false);
}

/** SageMaker caps a transform job's MaxPayloadInMB at 100. */
export const MAX_BATCH_PAYLOAD_MB = 100;

/**
 * Bytes in `mb` "MB" of payload. SageMaker does not say whether its MB is 10^6 or 2^20 bytes; the
 * larger reading lets the container accept whatever the agent sends, and it is the unit
 * MAX_BODY_BYTES already uses. The local batch client packs its bodies with the same function.
 */
export function payloadBytes(mb: number): number {
  return mb * 1024 * 1024;
}

/**
 * `GET /execution-parameters`: what the container asks a transform job to use when the job does
 * not set these itself (SageMaker: job parameters, else this answer, else its defaults 1 /
 * MULTI_RECORD / 6).
 */
export const ExecutionParametersSchema = z.object({
  MaxConcurrentTransforms: z.number().int().positive(),
  BatchStrategy: z.enum(['MULTI_RECORD', 'SINGLE_RECORD']),
  MaxPayloadInMB: z.number().int().min(0).max(MAX_BATCH_PAYLOAD_MB),
});
export type ExecutionParameters = z.infer<typeof ExecutionParametersSchema>;
export type BatchStrategy = ExecutionParameters['BatchStrategy'];

/** Error codes a client can see; each comes with an HTTP status and a human message. */
export type ErrorCode =
  | 'EMPTY_BODY'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'PAYLOAD_TOO_LARGE'
  | 'MALFORMED_JSON'
  | 'INVALID_REQUEST'
  | 'TOO_MANY_INSTANCES'
  | 'INVALID_BASE64'
  | 'UNDECODABLE_IMAGE'
  | 'IMAGE_TOO_LARGE'
  | 'INVALID_PIXELS'
  | 'NOT_FOUND'
  | 'MODEL_NOT_READY'
  | 'EXPLAIN_UNSUPPORTED'
  | 'THROTTLED'
  | 'UPSTREAM_ERROR'
  | 'UPSTREAM_UNAVAILABLE'
  | 'UPSTREAM_TIMEOUT'
  | 'INTERNAL';

export interface ErrorBody {
  error: { code: ErrorCode | string; message: string };
}

export const ErrorBodySchema = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
});

/** An error caused by the request; its status is always 4xx and its message is safe to return. */
export class ClientError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ClientError';
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message } };
  }
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

/** `image/JPEG; charset=x` -> `image/jpeg`; undefined when absent. */
export function mediaType(contentType: string | undefined | null): string | undefined {
  const type = contentType?.split(';')[0]?.trim().toLowerCase();
  return type ? type : undefined;
}

// Pixel values are checked one by one by the preprocessing module (finite, 0-255), which stops
// at the first bad value; validating millions of numbers here would only be slower.
const PixelsInstance = z.strictObject({
  pixels: z.array(z.unknown()),
  shape: z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]),
});
const B64Instance = z.strictObject({ b64: z.string() });

/** A JSON Lines record's `id`: any string the caller picks (the local batch command sends file paths), echoed back. */
export const MAX_RECORD_ID_LENGTH = 4096;
const RecordId = z
  .string({ error: 'id must be a string' })
  .max(MAX_RECORD_ID_LENGTH, `id must be at most ${MAX_RECORD_ID_LENGTH} characters`)
  .optional();

export const InstanceSchema = z.union([B64Instance, PixelsInstance], {
  error: 'each instance must be {"b64": "<base64 image>"} or {"pixels": [...], "shape": [h, w, c]}',
});
export type Instance = z.infer<typeof InstanceSchema>;

export const InstancesRequestSchema = z.strictObject({
  instances: z.array(z.unknown()).min(1, 'instances must hold at least one instance'),
  /** Each prediction also carries a Grad-CAM heatmap of its label (docs/serving.md). */
  explain: z.boolean({ error: 'explain must be true or false' }).optional(),
});

/**
 * Where the model's input square lies in the decoded (EXIF-rotated) image, in its pixels: the
 * whole image when it is stretched, the head box when cropped, a larger square (negative
 * offsets possible) when padded. Map the heatmap onto the image with it.
 */
export const FrameSchema = z.object({
  left: z.number(),
  top: z.number(),
  width: z.number(),
  height: z.number(),
});
export type Frame = z.infer<typeof FrameSchema>;

/** A Grad-CAM heatmap: a base64 RGB PNG of `width x height` (the model's input size). */
export const HeatmapSchema = z.object({
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  png: z.string(),
  frame: FrameSchema.optional(),
});
export type Heatmap = z.infer<typeof HeatmapSchema>;

/** One prediction as the container returns it and the Lambda passes it on. */
export const PredictionSchema = z.object({
  label: z.string(),
  probabilities: z.record(z.string(), z.number()),
  modelVersion: z.string(),
  heatmap: HeatmapSchema.optional(),
});
export type Prediction = z.infer<typeof PredictionSchema>;

export const PredictionsSchema = z.object({ predictions: z.array(PredictionSchema) });

/** One answer line: the prediction (plus `id`), or the record's error (plus `id` when it could be read). */
export const JsonLinesRowSchema = z.union([
  PredictionSchema.extend({ id: z.string().optional() }),
  z.object({ id: z.string().optional(), error: z.object({ code: z.string(), message: z.string() }) }),
]);
export type JsonLinesRow = z.infer<typeof JsonLinesRowSchema>;

/** A line of a JSON Lines body, validated: an instance to predict, or the error its answer line carries. */
export type JsonLinesRecord =
  | { line: number; id?: string; instance: Instance; error?: undefined }
  | { line: number; id?: string; instance?: undefined; error: ClientError };

/**
 * The records of a JSON Lines body, one per non-blank line (`\n` or `\r\n`; a trailing newline
 * and blank lines are not records), still unparsed so that a large body is parsed a chunk at a time.
 */
export function splitJsonLines(text: string): { line: number; text: string }[] {
  const records: { line: number; text: string }[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim()) records.push({ line: i + 1, text: line });
  });
  return records;
}

/**
 * Validates one JSON Lines record. Never throws: a bad record becomes its own error row, because a
 * transform job fails as a whole on a non-2xx answer and one bad file must not stop the others.
 */
export function parseJsonLinesRecord(text: string, line: number): JsonLinesRecord {
  const what = `line ${line}`;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : 'invalid JSON';
    return { line, error: new ClientError(400, 'MALFORMED_JSON', `${what} is not valid JSON: ${reason}`) };
  }
  const shape = `each line must be {"b64": "<base64 image>", "id"?: "..."} or {"pixels": [...], "shape": [h, w, c], "id"?: "..."}`;
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { line, error: new ClientError(400, 'INVALID_REQUEST', `${what}: ${shape}`) };
  }
  const { id: rawId, ...rest } = json as Record<string, unknown>;
  const id = RecordId.safeParse(rawId);
  if (!id.success) {
    return { line, error: new ClientError(400, 'INVALID_REQUEST', `${what}: ${firstIssue(id.error)}`) };
  }
  // The rest is an instance of the JSON contract; the id is echoed even when that part is wrong,
  // so the caller can tell which record it was.
  const instance = InstanceSchema.safeParse(rest);
  if (!instance.success) {
    return { line, id: id.data, error: new ClientError(400, 'INVALID_REQUEST', `${what}: ${shape}`) };
  }
  return { line, id: id.data, instance: instance.data };
}

/** `?explain=...` of an image request: absent -> false; `true`/`false` (any case); anything else is a 400. */
export function parseExplainQuery(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  // A repeated key arrives as an array from some servers (fastify), as its last value from others.
  if (typeof value !== 'string')
    throw new ClientError(400, 'INVALID_REQUEST', 'explain must be given once, as true or false');
  const v = value.trim().toLowerCase();
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new ClientError(400, 'INVALID_REQUEST', `explain must be true or false, got "${value.slice(0, 20)}"`);
}

/** A JSON body says `"explain": true` itself; `?explain` is only for image bodies (both paths check this). */
export function explainQueryOnJson(): ClientError {
  return new ClientError(
    400,
    'INVALID_REQUEST',
    'a JSON request asks for heatmaps with "explain": true in its body, not ?explain',
  );
}

/**
 * Parses and validates a JSON instances body; throws ClientError with the first problem found.
 * Instances are validated one by one so the error names the bad instance.
 */
export function parseInstancesRequest(text: string, maxInstances = MAX_INSTANCES): Instance[] {
  return parseJsonRequest(text, maxInstances).instances;
}

/** `parseInstancesRequest` plus the request's `explain` flag (false when absent). */
export function parseJsonRequest(
  text: string,
  maxInstances = MAX_INSTANCES,
): { instances: Instance[]; explain: boolean } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : 'invalid JSON';
    throw new ClientError(400, 'MALFORMED_JSON', `request body is not valid JSON: ${reason}`);
  }
  const request = InstancesRequestSchema.safeParse(json);
  if (!request.success) {
    throw new ClientError(
      400,
      'INVALID_REQUEST',
      `expected {"instances": [...]}: ${firstIssue(request.error)}`,
    );
  }
  const { instances, explain = false } = request.data;
  if (instances.length > maxInstances) {
    throw new ClientError(
      400,
      'TOO_MANY_INSTANCES',
      `${instances.length} instances in one request; at most ${maxInstances} are allowed`,
    );
  }
  const parsed = instances.map((raw, i) => {
    const instance = InstanceSchema.safeParse(raw);
    if (!instance.success) {
      throw new ClientError(400, 'INVALID_REQUEST', `instances[${i}]: ${firstIssue(instance.error)}`);
    }
    return instance.data;
  });
  return { instances: parsed, explain };
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Strict base64 (standard or URL-safe alphabet, whitespace ignored); Buffer.from alone accepts garbage. */
export function decodeBase64(text: string, what: string): Buffer {
  const compact = text.replace(/\s+/g, '');
  if (!BASE64.test(compact) || compact.length % 4 === 1) {
    throw new ClientError(400, 'INVALID_BASE64', `${what} is not valid base64`);
  }
  return Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64');
}

/** The bytes a base64 text decodes to, counted without decoding it (whitespace ignored). */
export function base64DecodedLength(text: string): number {
  const compact = /\s/.test(text) ? text.replace(/\s+/g, '') : text;
  const padding = compact.endsWith('==') ? 2 : compact.endsWith('=') ? 1 : 0;
  return Math.floor((compact.length * 3) / 4) - padding;
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid value';
  const where = issue.path.length ? `${issue.path.join('.')}: ` : '';
  return `${where}${issue.message}`;
}
