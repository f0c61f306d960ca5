import { Logger } from '@aws-lambda-powertools/logger';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { z } from 'zod';
import { JsonLinesRowSchema } from '../../training-container/src/serve/contract.ts';

/** One client per Lambda container; tests replace its `send` with aws-sdk-client-mock. */
export const s3 = new S3Client({});
const logger = new Logger({ serviceName: 'brain-tumor-batch-collect' });

const EnvSchema = z.object({ BUCKET: z.string().min(1) });

/** What one child of the Distributed Map gets: its batch of `.out` keys and where to write. */
const EventSchema = z.object({
  Items: z
    .array(z.object({ key: z.string().min(1), index: z.number().int().min(0) }))
    .min(1, 'a batch holds at least one object'),
  BatchInput: z.object({
    rawPrefix: z.string().endsWith('/'),
    resultsPrefix: z.string().endsWith('/'),
    countsPrefix: z.string().endsWith('/'),
  }),
});
export type CollectEvent = z.input<typeof EventSchema>;

/** Error code of a row whose `.out` object (or line) is not one of the container's answers. */
export const MALFORMED = 'MALFORMED_OUTPUT';
/** Error code of a row whose `.out` object vanished between the listing and the read. */
export const MISSING = 'MISSING_OUTPUT';

export interface Counts {
  /** `.out` objects read. */
  objects: number;
  /** Rows written: one per image (or jsonlines record), answered or not. */
  images: number;
  /** Rows per predicted label. */
  labels: Record<string, number>;
  /** Rows per error code (the container's, MALFORMED_OUTPUT, MISSING_OUTPUT). */
  errors: Record<string, number>;
}

export interface CollectResult extends Counts {
  /** The part file written, `s3://.../results/part-<index of its first object>.jsonl`. */
  part: string;
}

/** Objects read at once; rows are still written in the batch's order. */
const READ_CONCURRENCY = 32;

/**
 * One child of the batch transform's Distributed Map: reads its batch of `<input key>.out`
 * objects (the container's JSON lines) and writes one part file of results, each line the
 * answer joined with the name of its input,
 *
 *   {"file": "scans/a.jpg", "label": "glioma", "probabilities": {...}, "modelVersion": "..."}
 *   {"file": "scans/b.jpg", "error": {"code": "UNDECODABLE_IMAGE", "message": "..."}}
 *
 * where `file` is the input's key relative to the input prefix (jsonlines input: the record's
 * `id`, else `<file>#<line>`), plus the part's counts beside it (`counts/part-<n>.json`) for the
 * summary. An object or line that is not an answer becomes a MALFORMED_OUTPUT row, never a
 * crash: one bad object must not lose the other 999. Logs counts only, never a file name or label.
 */
export async function handler(event: unknown): Promise<CollectResult> {
  const { BUCKET: bucket } = EnvSchema.parse(process.env);
  const { Items, BatchInput } = EventSchema.parse(event);
  const items = [...Items].sort((a, b) => a.index - b.index);
  const name = `part-${String(items[0].index).padStart(9, '0')}`;
  const partKey = `${BatchInput.resultsPrefix}${name}.jsonl`;
  const counts: Counts = { objects: 0, images: 0, labels: {}, errors: {} };
  const writer = new PartWriter(bucket, partKey);
  try {
    for (let i = 0; i < items.length; i += READ_CONCURRENCY) {
      const window = items.slice(i, i + READ_CONCURRENCY);
      const texts = await Promise.all(window.map((item) => readObject(bucket, item.key)));
      for (const [j, item] of window.entries()) {
        const rows = rowsOf(relativeName(item.key, BatchInput.rawPrefix), texts[j]);
        counts.objects += 1;
        for (const row of rows) {
          count(counts, row);
          await writer.write(`${JSON.stringify(row)}\n`);
        }
      }
    }
    await writer.close();
  } catch (err) {
    await writer.abort();
    throw err;
  }
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: `${BatchInput.countsPrefix}${name}.json`,
      Body: JSON.stringify({ part: partKey, ...counts }),
      ContentType: 'application/json',
    }),
  );
  logger.info('part written', {
    part: partKey,
    objects: counts.objects,
    images: counts.images,
    errors: Object.values(counts.errors).reduce((a, b) => a + b, 0),
  });
  return { part: `s3://${bucket}/${partKey}`, ...counts };
}

/** `batch-output/<run>/raw/scans/a.jpg.out` -> `scans/a.jpg` (SageMaker keeps the key below the input prefix). */
export function relativeName(key: string, rawPrefix: string): string {
  const below = key.startsWith(rawPrefix) ? key.slice(rawPrefix.length) : key;
  return below.endsWith('.out') ? below.slice(0, -'.out'.length) : below;
}

export type Row = { file: string; error: { code: string; message: string } } | ({ file: string } & Answer);
type Answer = { label: string; [field: string]: unknown };

/**
 * The rows of one `.out` object: one per answer line. `text` undefined: the object is gone.
 * A line may also be the container's JSON-request answer, `{"predictions": [...]}` (one row each).
 */
export function rowsOf(file: string, text: string | undefined): Row[] {
  if (text === undefined) {
    return [errorRow(file, MISSING, 'the .out object was listed but could not be read (deleted?)')];
  }
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  if (lines.length === 0) return [errorRow(file, MALFORMED, 'the .out object is empty')];
  const rows: Row[] = [];
  for (const [i, line] of lines.entries()) {
    const name = nameOf(file, i, lines.length);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      rows.push(errorRow(name, MALFORMED, `line ${i + 1} is not JSON`));
      continue;
    }
    const predictions = (value as { predictions?: unknown } | null)?.predictions;
    if (lines.length === 1 && Array.isArray(predictions)) {
      if (predictions.length === 0) rows.push(errorRow(file, MALFORMED, 'the answer holds no prediction'));
      for (const [k, p] of predictions.entries()) rows.push(rowOf(nameOf(file, k, predictions.length), p));
    } else {
      rows.push(rowOf(name, value));
    }
  }
  return rows;
}

/** One line's row. `id` (jsonlines input) names the record; the answer's other fields are kept. */
function rowOf(fallbackName: string, value: unknown): Row {
  // The container's own wire contract (contract.ts) decides what an answer is, not a second copy.
  const parsed = JsonLinesRowSchema.safeParse(value);
  if (!parsed.success) {
    return errorRow(fallbackName, MALFORMED, 'the answer is neither a prediction nor an error row');
  }
  const { id, ...rest } = parsed.data;
  const file = id ?? fallbackName;
  if ('error' in rest) return errorRow(file, rest.error.code, rest.error.message);
  return { file, ...rest };
}

/** A file's only answer is named after the file; several (jsonlines) are `<file>#<line>`, from 1. */
function nameOf(file: string, index: number, total: number): string {
  return total > 1 ? `${file}#${index + 1}` : file;
}

function errorRow(file: string, code: string, message: string): Row {
  return { file, error: { code, message } };
}

function count(counts: Counts, row: Row): void {
  counts.images += 1;
  if ('error' in row && row.error) {
    const code = (row.error as { code: string }).code;
    counts.errors[code] = (counts.errors[code] ?? 0) + 1;
  } else {
    const label = (row as Answer).label;
    counts.labels[label] = (counts.labels[label] ?? 0) + 1;
  }
}

async function readObject(bucket: string, key: string): Promise<string | undefined> {
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return (await object.Body?.transformToString('utf-8')) ?? '';
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
    throw err;
  }
}

/**
 * Writes a part file of any size with bounded memory: one PutObject when it stays under
 * PART_BYTES, else a multipart upload of PART_BYTES parts (jsonlines inputs can make parts of
 * hundreds of MB).
 */
export class PartWriter {
  static PART_BYTES = 8 * 1024 * 1024;
  private chunks: Buffer[] = [];
  private size = 0;
  private uploadId?: string;
  private parts: { ETag: string | undefined; PartNumber: number }[] = [];

  constructor(
    private readonly bucket: string,
    private readonly key: string,
  ) {}

  async write(text: string): Promise<void> {
    const chunk = Buffer.from(text, 'utf-8');
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size >= PartWriter.PART_BYTES) await this.flush();
  }

  async close(): Promise<void> {
    if (this.uploadId === undefined) {
      await s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key,
          Body: Buffer.concat(this.chunks),
          ContentType: 'application/jsonlines',
        }),
      );
      return;
    }
    if (this.size > 0) await this.flush();
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: this.key,
        UploadId: this.uploadId,
        MultipartUpload: { Parts: this.parts },
      }),
    );
  }

  async abort(): Promise<void> {
    if (this.uploadId === undefined) return;
    await s3
      .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, UploadId: this.uploadId }))
      .catch(() => undefined);
  }

  private async flush(): Promise<void> {
    if (this.uploadId === undefined) {
      const created = await s3.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.key,
          ContentType: 'application/jsonlines',
        }),
      );
      this.uploadId = created.UploadId;
    }
    const body = Buffer.concat(this.chunks);
    this.chunks = [];
    this.size = 0;
    const partNumber = this.parts.length + 1;
    const uploaded = await s3.send(
      new UploadPartCommand({
        Bucket: this.bucket,
        Key: this.key,
        UploadId: this.uploadId,
        PartNumber: partNumber,
        Body: body,
      }),
    );
    this.parts.push({ ETag: uploaded.ETag, PartNumber: partNumber });
  }
}
