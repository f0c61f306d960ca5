import type { Dirent } from 'node:fs';
import { open, readdir, readFile, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import {
  type BatchStrategy,
  base64Length,
  type ExecutionParameters,
  ExecutionParametersSchema,
  JSONLINES_CONTENT_TYPE,
  type JsonLinesRow,
  JsonLinesRowSchema,
  MAX_BATCH_PAYLOAD_MB,
  payloadBytes,
} from '../../training-container/src/serve/contract.ts';
import { startServeProcess } from './serve-process.ts';

/**
 * `brain-tumor batch`: scores a folder of images the way a SageMaker Batch Transform job with
 * SplitType=Line and BatchStrategy=MULTI_RECORD drives the container. The files become JSON Lines
 * records (`{"id": "<path relative to the folder>", "b64": ...}`), grouped into
 * `application/jsonlines` requests under MaxPayloadInMB, with MaxConcurrentTransforms requests in
 * flight, against the container's own `serve` entrypoint started with SAGEMAKER_BATCH=true.
 *
 * Results go to a JSON Lines file, one row per image, appended (and fsynced) as each answer
 * arrives, so a run that is killed loses at most its requests in flight, and a rerun skips the
 * images already there: it neither duplicates nor drops a row.
 */

/** The images a run picks up: JPEG and PNG by extension, in any case. */
export const IMAGE_FILE = /\.(jpe?g|png)$/i;

/** Retries of a request that failed on the network or with a 5xx, as a transform job's InvocationsMaxRetries (default 3). */
const RETRIES = 3;

/** One row of the results file. */
export type BatchRow =
  | { file: string; label: string; probabilities: Record<string, number>; modelVersion: string }
  | { file: string; error: { code: string; message: string } };

const BatchRowSchema = z.union([
  z.looseObject({
    file: z.string(),
    label: z.string(),
    probabilities: z.record(z.string(), z.number()),
    modelVersion: z.string(),
  }),
  z.looseObject({ file: z.string(), error: z.object({ code: z.string(), message: z.string() }) }),
]);

/** The images under `dir` (recursive), as `/`-separated paths relative to it, sorted by code point. */
export async function listImages(dir: string): Promise<string[]> {
  const info = await stat(dir).catch(() => undefined);
  if (!info) throw new Error(`no such folder: ${dir}`);
  if (!info.isDirectory()) throw new Error(`not a folder: ${dir}`);
  const files: string[] = [];
  const walk = async (rel: string) => {
    const entries: Dirent[] = await readdir(path.join(dir, rel), { withFileTypes: true });
    for (const entry of entries) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      // Symlinked folders are not followed (no loops); a symlink named like an image is listed, and
      // if it leads nowhere readable it gets its UNREADABLE_FILE row like any unreadable file.
      if (entry.isDirectory()) await walk(child);
      else if ((entry.isFile() || entry.isSymbolicLink()) && IMAGE_FILE.test(entry.name)) files.push(child);
    }
  };
  await walk('');
  // Code-point order, not locale order: the same on every machine.
  return files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export interface ExistingResults {
  /** The last row of each file already in the results file. */
  rows: Map<string, BatchRow>;
  /** Whether an incomplete last line (a run killed mid-write) was cut off the file. */
  droppedPartialLine: boolean;
}

/**
 * Reads a results file left by an earlier run (none: nothing done). Its last line, when it does
 * not end in a newline, was cut short by a killed run: it is removed from the file, and its image
 * is done again. Any other line that is not a result row stops the run, naming the line: guessing
 * could drop or repeat rows.
 */
export async function readResults(file: string): Promise<ExistingResults> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return { rows: new Map(), droppedPartialLine: false };
    throw err;
  }
  const complete = bytes.lastIndexOf(0x0a) + 1;
  const droppedPartialLine = complete < bytes.length;
  if (droppedPartialLine) await truncate(file, complete);
  const rows = new Map<string, BatchRow>();
  bytes
    .subarray(0, complete)
    .toString('utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      let row: z.infer<typeof BatchRowSchema>;
      try {
        row = BatchRowSchema.parse(JSON.parse(line));
      } catch {
        throw new Error(
          `${file} line ${i + 1} is not a result row of this command; move the file away or remove the line`,
        );
      }
      rows.set(row.file, row as BatchRow);
    });
  return { rows, droppedPartialLine };
}

export interface BatchPlan {
  inputDir: string;
  outFile: string;
  /** Every image under inputDir, sorted. */
  files: string[];
  /** Rows already in outFile, by file. */
  existing: Map<string, BatchRow>;
  /** The images without a row yet, sorted: what this run sends. */
  pending: string[];
  droppedPartialLine: boolean;
}

/** Lists the images and reads what an earlier run left; fails with a clear message on a missing folder. */
export async function planBatch(inputDir: string, outFile: string): Promise<BatchPlan> {
  const files = await listImages(inputDir);
  const outDir = path.dirname(path.resolve(outFile));
  if (!(await stat(outDir).catch(() => undefined))?.isDirectory()) {
    throw new Error(`cannot write ${outFile}: no such folder ${outDir}`);
  }
  const { rows, droppedPartialLine } = await readResults(outFile);
  const pending = files.filter((f) => !rows.has(f));
  return { inputDir, outFile, files, existing: rows, pending, droppedPartialLine };
}

/** How requests are made: the job's settings (options), else the container's /execution-parameters, else SageMaker's defaults. */
export interface BatchSettings {
  concurrency: number;
  maxPayloadInMB: number;
  strategy: BatchStrategy;
  /** Where the values came from, per field (for the summary). */
  source: 'options' | 'execution-parameters' | 'defaults' | 'mixed';
}

/** SageMaker's own defaults when neither the job nor the container says: 1 request, MULTI_RECORD, 6 MB. */
export const SAGEMAKER_DEFAULTS: Readonly<ExecutionParameters> = Object.freeze({
  MaxConcurrentTransforms: 1,
  BatchStrategy: 'MULTI_RECORD',
  MaxPayloadInMB: 6,
});

/** `GET /execution-parameters`, or undefined when the container does not answer it (it is optional). */
export async function fetchExecutionParameters(url: string): Promise<ExecutionParameters | undefined> {
  let res: Response;
  try {
    res = await fetch(`${url}/execution-parameters`, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const reason =
      err instanceof Error ? `${err.message}${err.cause ? ` (${String(err.cause)})` : ''}` : String(err);
    throw new Error(`cannot reach the serve container at ${url}: ${reason}`);
  }
  const text = await res.text();
  if (res.status === 404) return undefined;
  if (res.status !== 200)
    throw new Error(`GET /execution-parameters answered ${res.status}: ${text.slice(0, 200)}`);
  const parsed = ExecutionParametersSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new Error(`GET /execution-parameters answered an unexpected body: ${text.slice(0, 200)}`);
  return parsed.data;
}

export interface BatchOverrides {
  /** MaxConcurrentTransforms: requests in flight. */
  concurrency?: number;
  /** MaxPayloadInMB: the largest request body (0: the most a job may have, 100). */
  maxPayloadInMB?: number;
  /** MULTI_RECORD: as many records per request as fit; SINGLE_RECORD: one. */
  strategy?: BatchStrategy;
}

export function resolveSettings(
  overrides: BatchOverrides,
  container: ExecutionParameters | undefined,
): BatchSettings {
  const fallback = container ?? SAGEMAKER_DEFAULTS;
  const given = [overrides.concurrency, overrides.maxPayloadInMB, overrides.strategy].filter(
    (v) => v !== undefined,
  );
  const source =
    given.length === 3
      ? 'options'
      : given.length > 0
        ? 'mixed'
        : container
          ? 'execution-parameters'
          : 'defaults';
  return {
    concurrency: overrides.concurrency ?? fallback.MaxConcurrentTransforms,
    maxPayloadInMB: overrides.maxPayloadInMB ?? fallback.MaxPayloadInMB,
    strategy: overrides.strategy ?? fallback.BatchStrategy,
    source,
  };
}

export interface BatchProgress {
  /** Images with a row written in this run. */
  done: number;
  /** Images this run has to do (pending when it started). */
  total: number;
  /** Error rows among `done`. */
  errors: number;
  imagesPerSecond: number;
}

export interface RunBatchOptions extends BatchOverrides {
  plan: BatchPlan;
  /** The serve container's base URL (GET /execution-parameters, POST /invocations). */
  url: string;
  /** Stops sending; requests in flight are abandoned (their images stay pending for the next run). */
  signal?: AbortSignal;
  /** Once the settings are known, before the first request. */
  onStart?: (settings: BatchSettings) => void;
  /** After each answer's rows are written. */
  onProgress?: (progress: BatchProgress) => void;
}

export interface BatchSummary {
  inputDir: string;
  out: string;
  /** Images found under inputDir. */
  images: number;
  /** Already in the results file when the run started. */
  skipped: number;
  /** Rows written by this run (predictions and errors). */
  processed: number;
  /** Images still without a row (a run that was interrupted). */
  remaining: number;
  /** Per label, over every image of the folder with a row (this run and earlier ones). */
  labels: Record<string, number>;
  /** Error rows per code, over the same rows. */
  errors: Record<string, number>;
  /** This run's sending time: from the first request to the last row written. */
  seconds: number;
  /** processed / seconds. */
  imagesPerSecond: number;
  requests: number;
  concurrency: number;
  maxPayloadInMB: number;
  batchStrategy: BatchStrategy;
  settingsFrom: BatchSettings['source'];
  /** An incomplete last line of the results file was removed (a run killed while writing). */
  droppedPartialLine: boolean;
  interrupted: boolean;
  /** The container's tfjs engine, when this command started it. */
  engine?: string;
}

/** MULTI_RECORD: the file as a JSON Lines record. SINGLE_RECORD: its bytes, posted as they are (AWS `images`). */
type Record_ =
  | { file: string; line: string; bytes?: undefined }
  | { file: string; line?: undefined; bytes: Buffer };

/**
 * Sends the plan's pending images to a running `serve` container (SAGEMAKER_BATCH=true for the
 * batch-mode limits) and appends their rows to the results file. Resolves with the summary,
 * `interrupted` when the signal stopped it; rejects when the container fails a request after its
 * retries (rows written so far stay, and a rerun resumes).
 */
export async function runBatch(options: RunBatchOptions): Promise<BatchSummary> {
  const { plan, url } = options;
  // Nothing pending (a finished run, run again): no container to ask, nothing to send.
  // Stopped before it started (Ctrl-C while the container loaded): nothing to ask either.
  const container =
    plan.pending.length > 0 && !options.signal?.aborted ? await fetchExecutionParameters(url) : undefined;
  const settings = resolveSettings(options, container);
  if (!Number.isInteger(settings.concurrency) || settings.concurrency < 1) {
    throw new Error(`MaxConcurrentTransforms must be a positive whole number, got ${settings.concurrency}`);
  }
  options.onStart?.(settings);
  const limit = payloadBytes(settings.maxPayloadInMB === 0 ? MAX_BATCH_PAYLOAD_MB : settings.maxPayloadInMB);

  // One controller for the run: the caller's signal, or the first failed request, stops every worker.
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();

  const newRows: BatchRow[] = [];
  let requests = 0;
  let errors = 0;
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  const out = await open(plan.outFile, 'a');
  // Appends are chained: each answer's rows land together, in arrival order.
  let writing: Promise<void> = Promise.resolve();
  const append = (rows: BatchRow[]): Promise<void> => {
    writing = writing.then(async () => {
      // appendFile writes it all (write() alone may stop short); one call per answer.
      await out.appendFile(rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
      // On disk before the next request is counted done: a killed run loses only requests in flight.
      await out.datasync();
      newRows.push(...rows);
      errors += rows.filter((r) => 'error' in r).length;
      options.onProgress?.({
        done: newRows.length,
        total: plan.pending.length,
        errors,
        imagesPerSecond: newRows.length / Math.max(elapsed(), 1e-3),
      });
    });
    return writing;
  };

  const batches = requestBodies(plan, limit, settings, append, stop.signal);
  let failure: unknown;
  const worker = async () => {
    while (!stop.signal.aborted) {
      const next = await batches.next();
      if (next.done) return;
      requests++;
      const rows = await send(url, next.value, stop.signal, settings.strategy === 'SINGLE_RECORD');
      if (rows) await append(rows);
    }
  };
  try {
    await Promise.all(
      Array.from({ length: settings.concurrency }, () =>
        worker().catch((err: unknown) => {
          if (!stop.signal.aborted) {
            failure = err;
            stop.abort(err);
          }
        }),
      ),
    );
    await writing;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    await batches.return(undefined);
    await writing.catch(() => {});
    await out.close();
  }
  if (failure) throw failure;

  const seconds = elapsed();
  const all = new Map(plan.existing);
  for (const row of newRows) all.set(row.file, row);
  const labels: Record<string, number> = {};
  const errorCodes: Record<string, number> = {};
  for (const file of plan.files) {
    const row = all.get(file);
    if (!row) continue;
    if ('error' in row) errorCodes[row.error.code] = (errorCodes[row.error.code] ?? 0) + 1;
    else labels[row.label] = (labels[row.label] ?? 0) + 1;
  }
  return {
    inputDir: plan.inputDir,
    out: plan.outFile,
    images: plan.files.length,
    skipped: plan.files.length - plan.pending.length,
    processed: newRows.length,
    remaining: plan.files.filter((f) => !all.has(f)).length,
    labels: sortKeys(labels),
    errors: sortKeys(errorCodes),
    seconds,
    imagesPerSecond: newRows.length / Math.max(seconds, 1e-3),
    requests,
    concurrency: settings.concurrency,
    maxPayloadInMB: settings.maxPayloadInMB,
    batchStrategy: settings.strategy,
    settingsFrom: settings.source,
    droppedPartialLine: plan.droppedPartialLine,
    interrupted: options.signal?.aborted ?? false,
  };
}

/**
 * The request bodies, in file order: records joined by newlines, as many as fit in `limit` bytes
 * (MULTI_RECORD) or one each (SINGLE_RECORD). A file that cannot be read, or whose record alone
 * is over the limit, never reaches the container: its error row is appended here.
 */
async function* requestBodies(
  plan: BatchPlan,
  limit: number,
  settings: BatchSettings,
  append: (rows: BatchRow[]) => Promise<void>,
  signal: AbortSignal,
): AsyncGenerator<Record_[], void, undefined> {
  let records: Record_[] = [];
  let size = 0;
  for (const file of plan.pending) {
    if (signal.aborted) return;
    // SINGLE_RECORD sends the file's own bytes (as a transform job over image objects does), so
    // the limit applies to them; MULTI_RECORD sends a base64 JSON Lines record, a third larger.
    const single = settings.strategy === 'SINGLE_RECORD';
    const prefix = `{"id":${JSON.stringify(file)},"b64":"`;
    const suffix = '"}\n';
    const overhead = Buffer.byteLength(prefix) + suffix.length;
    const recordSize = (fileBytes: number) => (single ? fileBytes : overhead + base64Length(fileBytes));
    const tooLarge = (bytes: number, recordBytes: number): BatchRow => ({
      file,
      error: {
        code: 'PAYLOAD_TOO_LARGE',
        message: `${single ? `${bytes} bytes` : `${bytes} bytes, ${recordBytes} as a JSON Lines record`}: over MaxPayloadInMB ${settings.maxPayloadInMB} (${limit} bytes)`,
      },
    });
    let bytes: Buffer;
    try {
      const absolute = path.join(plan.inputDir, file);
      // The size first, so a huge file is refused without reading it.
      const { size: fileSize } = await stat(absolute);
      if (recordSize(fileSize) > limit) {
        await append([tooLarge(fileSize, recordSize(fileSize))]);
        continue;
      }
      bytes = await readFile(absolute);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const reason = e.code ? `${e.code}` : e.message;
      await append([
        { file, error: { code: 'UNREADABLE_FILE', message: `cannot read the file: ${reason}` } },
      ]);
      continue;
    }
    if (recordSize(bytes.length) > limit) {
      // Grew between stat and read.
      await append([tooLarge(bytes.length, recordSize(bytes.length))]);
      continue;
    }
    if (single) {
      yield [{ file, bytes }];
      continue;
    }
    const line = `${prefix}${bytes.toString('base64')}${suffix}`;
    const lineBytes = Buffer.byteLength(line);
    if (records.length > 0 && size + lineBytes > limit) {
      yield records;
      records = [];
      size = 0;
    }
    records.push({ file, line });
    size += lineBytes;
  }
  if (records.length > 0 && !signal.aborted) yield records;
}

/**
 * One `application/jsonlines` request, retried on network errors and 5xx like a transform job;
 * its answer checked line by line against the records sent (count, order, ids). Undefined when
 * the run was stopped while it was in flight.
 */
async function send(
  url: string,
  records: Record_[],
  signal: AbortSignal,
  single: boolean,
): Promise<BatchRow[] | undefined> {
  // SINGLE_RECORD is what a transform job over image objects sends (SplitType None): the file's
  // bytes as application/x-image, answered with one row and no id. MULTI_RECORD: JSON Lines.
  const bytes = single && records.length === 1 ? records[0].bytes : undefined;
  const raw = bytes !== undefined;
  const body = raw ? new Uint8Array(bytes) : records.map((r) => r.line).join('');
  let lastError = '';
  for (let attempt = 0; attempt <= RETRIES; attempt++) {
    if (attempt > 0) await sleep(500 * 2 ** (attempt - 1), signal);
    if (signal.aborted) return undefined;
    let status: number;
    let text: string;
    try {
      const res = await fetch(`${url}/invocations`, {
        method: 'POST',
        headers: {
          'content-type': raw ? 'application/x-image' : JSONLINES_CONTENT_TYPE,
          accept: JSONLINES_CONTENT_TYPE,
        },
        body,
        signal,
      });
      status = res.status;
      text = await res.text();
    } catch (err) {
      if (signal.aborted) return undefined;
      lastError =
        err instanceof Error ? `${err.message}${err.cause ? ` (${String(err.cause)})` : ''}` : String(err);
      continue;
    }
    if (status === 200) return toRows(records, text, !raw);
    lastError = `${status} ${text.slice(0, 300)}`;
    if (status < 500) break;
  }
  throw new Error(
    `serve failed a request of ${records.length} images (${records[0].file} ...): ${lastError}; ` +
      'the rows written so far are kept, run the command again to resume',
  );
}

function toRows(records: Record_[], text: string, withIds: boolean): BatchRow[] {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  if (lines.length !== records.length) {
    throw new Error(`serve answered ${lines.length} lines for ${records.length} records`);
  }
  return lines.map((line, i) => {
    const file = records[i].file;
    let row: JsonLinesRow;
    try {
      row = JsonLinesRowSchema.parse(JSON.parse(line));
    } catch {
      throw new Error(
        `serve answered line ${i + 1} that is not a prediction or an error row: ${line.slice(0, 200)}`,
      );
    }
    if (withIds && row.id !== file)
      throw new Error(`serve answered line ${i + 1} for "${row.id}", expected "${file}"`);
    if ('error' in row) return { file, error: { code: row.error.code, message: row.error.message } };
    return { file, label: row.label, probabilities: row.probabilities, modelVersion: row.modelVersion };
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function sortKeys(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export interface BatchLocallyOptions extends BatchOverrides {
  inputDir: string;
  outFile: string;
  /** Model folder (model.json, weights.bin, preprocessing.json). */
  modelDir: string;
  /** tfjs engine of the serve process; default: inherited BRAIN_TUMOR_ENGINE, else auto. */
  engine?: string;
  /** Port of the serve process; default 0 (a free one). */
  port?: number;
  signal?: AbortSignal;
  /** After planning, before the container starts (it takes a few seconds to load the model). */
  onPlan?: (plan: BatchPlan) => void;
  onStart?: RunBatchOptions['onStart'];
  onProgress?: RunBatchOptions['onProgress'];
  /** Each log line of the serve process; default dropped. */
  onLog?: (line: string) => void;
}

/**
 * The whole local run: plan (fails fast on a missing folder), start the container's `serve` as a
 * transform job would (SAGEMAKER_BATCH=true, and the job's settings as SAGEMAKER_* variables when
 * given), send, stop it. Nothing pending: no container is started.
 */
export async function batchLocally(options: BatchLocallyOptions): Promise<BatchSummary> {
  const plan = await planBatch(options.inputDir, options.outFile);
  options.onPlan?.(plan);
  if (plan.pending.length === 0) return runBatch({ ...options, plan, url: '' });
  // SageMaker passes these only when the job sets them; unset, the container's recommendation applies.
  const env: Record<string, string> = { SAGEMAKER_BATCH: 'true' };
  if (options.maxPayloadInMB !== undefined) env.SAGEMAKER_MAX_PAYLOAD_IN_MB = String(options.maxPayloadInMB);
  if (options.strategy !== undefined) env.SAGEMAKER_BATCH_STRATEGY = options.strategy;
  if (options.concurrency !== undefined)
    env.SAGEMAKER_MAX_CONCURRENT_TRANSFORMS = String(options.concurrency);
  let engine: string | undefined;
  let serve: Awaited<ReturnType<typeof startServeProcess>>;
  try {
    serve = await startServeProcess({
      modelDir: options.modelDir,
      port: options.port ?? 0,
      engine: options.engine,
      env,
      onLog: (line) => {
        engine ??= engineOf(line);
        options.onLog?.(line);
      },
    });
  } catch (err) {
    // Ctrl-C in a terminal reaches the child too, which then exits before it is ready: that is
    // the interruption, not a failure of the container.
    if (options.signal?.aborted) return runBatch({ ...options, plan, url: '' });
    throw err;
  }
  try {
    return { ...(await runBatch({ ...options, plan, url: serve.url })), ...(engine && { engine }) };
  } finally {
    await serve.close();
  }
}

/** The engine from serve's "model loaded" log line (pino JSON), if this is that line. */
function engineOf(line: string): string | undefined {
  if (!line.includes('"engine"')) return undefined;
  try {
    const parsed = JSON.parse(line) as { engine?: unknown };
    return typeof parsed.engine === 'string' ? parsed.engine : undefined;
  } catch {
    return undefined;
  }
}
