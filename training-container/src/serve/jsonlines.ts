import type { PreprocessConfig } from '../preprocess.ts';
import {
  ClientError,
  type JsonLinesRow,
  MAX_INSTANCES,
  type Prediction,
  parseJsonLinesRecord,
  splitJsonLines,
} from './contract.ts';
import { decodeInstance } from './decode-request.ts';

/** What the JSON Lines path needs of the Predictor (tests pass a stand-in to see the batches). */
export interface BatchPredictor {
  preprocessing: number | PreprocessConfig;
  predict(images: readonly Float32Array[]): Promise<Prediction[]>;
}

export interface JsonLinesAnswer {
  /** The answer body: one line per record, in order, joined by `\n` (see below on the last newline). */
  body: string;
  records: number;
  errors: number;
}

/**
 * Answers an `application/jsonlines` body: exactly one line per record (non-blank line), in order,
 * the prediction with the record's `id`, or `{"id"?, "error": {"code", "message"}}` for a record
 * that cannot be read or decoded. A transform job fails as a whole on a non-2xx answer, so one
 * bad file must cost one error row, not the job; only faults of the server itself throw.
 *
 * Records are decoded and predicted `maxInstances` at a time: any number of them fit in a body up
 * to MaxPayloadInMB, while one prediction batch stays as large as a JSON request's, bounding the
 * decoded pixels held at once.
 *
 * The lines are joined without a final newline: with AssembleWith=Line, Batch Transform adds one
 * after each answer, so a trailing one here would leave a blank line between answers in the output.
 */
export async function answerJsonLines(
  body: Buffer,
  predictor: BatchPredictor,
  maxInstances = MAX_INSTANCES,
): Promise<JsonLinesAnswer> {
  const lines = splitJsonLines(body.toString('utf8'));
  const rows: string[] = [];
  let errors = 0;
  for (let start = 0; start < lines.length; start += maxInstances) {
    const chunk = lines.slice(start, start + maxInstances).map((l) => parseJsonLinesRecord(l.text, l.line));
    const chunkRows: (JsonLinesRow | undefined)[] = [];
    const images: Float32Array[] = [];
    const slots: number[] = [];
    // Sequential on purpose, as for JSON bodies: one full-size decoded image in memory at a time.
    for (const [i, record] of chunk.entries()) {
      if (record.error) {
        chunkRows[i] = errorRow(record.id, record.error);
        continue;
      }
      try {
        const what = `line ${record.line}`;
        const input = await decodeInstance(record.instance, predictor.preprocessing, what, `${what}: b64`);
        images.push(input.pixels);
        slots.push(i);
      } catch (err) {
        if (!(err instanceof ClientError)) throw err;
        chunkRows[i] = errorRow(record.id, err);
      }
    }
    const predictions = images.length ? await predictor.predict(images) : [];
    predictions.forEach((prediction, k) => {
      const i = slots[k];
      const id = chunk[i].id;
      chunkRows[i] = id === undefined ? prediction : { id, ...prediction };
    });
    for (const row of chunkRows) {
      if (!row) throw new Error('a JSON Lines record got no answer');
      if ('error' in row) errors++;
      rows.push(JSON.stringify(row));
    }
  }
  return { body: rows.join('\n'), records: lines.length, errors };
}

/** The error row of a record: the same `{code, message}` a request gets, plus the record's id. */
export function errorRow(id: string | undefined, error: ClientError): JsonLinesRow {
  const { code, message } = error.toBody().error;
  return id === undefined ? { error: { code, message } } : { id, error: { code, message } };
}
