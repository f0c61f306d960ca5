import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  type ErrorBody,
  ErrorBodySchema,
  type Prediction,
  PredictionSchema,
} from '../../training-container/src/serve/contract.ts';
import { overlayHeatmap } from './heatmap-overlay.ts';

export interface PredictClientOptions {
  /** The API's predict URL (http://127.0.0.1:3000/predict) or a container's /invocations URL. */
  url: string;
  /** Sent as `x-api-key` when set. */
  apiKey?: string;
  /** Per request; default 30 s. */
  timeoutMs?: number;
  /** Ask for a Grad-CAM heatmap with each prediction (`?explain=true`). */
  explain?: boolean;
}

export interface FilePrediction {
  file: string;
  /** HTTP status; 0 when no request was sent or it failed on the network. */
  status: number;
  prediction?: Prediction;
  error?: ErrorBody['error'];
  /** Where `saveHeatmaps` wrote the heatmap blended over the image. */
  heatmapFile?: string;
}

/** JPEG or PNG by content (magic bytes), else by extension; undefined for anything else. */
export function imageContentType(bytes: Uint8Array, file: string): string | undefined {
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'image/png';
  const ext = path.extname(file).toLowerCase();
  if (ext === '.jpg' || ext === '.jpeg') return 'image/jpeg';
  if (ext === '.png') return 'image/png';
  return undefined;
}

/** Sends each file as one raw image request, one after another; never throws for a failed file. */
export async function predictFiles(
  files: string[],
  options: PredictClientOptions,
): Promise<FilePrediction[]> {
  const results: FilePrediction[] = [];
  for (const file of files) results.push(await predictFile(file, options));
  return results;
}

async function predictFile(file: string, options: PredictClientOptions): Promise<FilePrediction> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    return {
      file,
      status: 0,
      error: { code: 'FILE_UNREADABLE', message: `cannot read ${file} (${reason})` },
    };
  }
  const contentType = imageContentType(bytes, file);
  if (!contentType) {
    return { file, status: 0, error: { code: 'UNSUPPORTED_FILE', message: 'not a JPEG or PNG file' } };
  }
  const headers: Record<string, string> = { 'content-type': contentType, accept: 'application/json' };
  if (options.apiKey) headers['x-api-key'] = options.apiKey;
  let res: Response;
  let text: string;
  try {
    const url = new URL(options.url);
    if (options.explain) url.searchParams.set('explain', 'true');
    res = await fetch(url, {
      method: 'POST',
      headers,
      body: new Uint8Array(bytes),
      signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
    });
    text = await res.text();
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    return {
      file,
      status: 0,
      error: { code: 'NETWORK_ERROR', message: `cannot reach ${options.url} (${cause})` },
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (res.ok) {
    const prediction = PredictionSchema.safeParse(json);
    if (prediction.success) return { file, status: res.status, prediction: prediction.data };
    return {
      file,
      status: res.status,
      error: { code: 'BAD_RESPONSE', message: 'the answer is not a prediction' },
    };
  }
  const error = ErrorBodySchema.safeParse(json);
  // API Gateway's own rejections may use its `{"message": ...}` shape.
  const message = (json as { message?: unknown } | undefined)?.message;
  return {
    file,
    status: res.status,
    error: error.success
      ? error.data.error
      : { code: `HTTP_${res.status}`, message: typeof message === 'string' ? message : text.slice(0, 200) },
  };
}

/** Default folder for `saveHeatmaps` (and `brain-tumor predict --explain`), relative to the working directory. */
export const DEFAULT_HEATMAP_DIR = 'heatmaps';

/**
 * Writes each result's heatmap blended over its image (heatmap-overlay.ts) to
 * `<outDir>/<file name without extension>.heatmap.png` (`-2`, `-3`, ... when two inputs share a
 * name), sets `heatmapFile`, and drops the heatmap (its base64 PNG) from the result. Results without a heatmap
 * are left alone.
 */
export async function saveHeatmaps(results: FilePrediction[], outDir: string): Promise<void> {
  const used = new Set<string>();
  for (const result of results) {
    const heatmap = result.prediction?.heatmap;
    if (!result.prediction || !heatmap) continue;
    const stem = path.basename(result.file, path.extname(result.file)) || 'image';
    let name = `${stem}.heatmap.png`;
    for (let k = 2; used.has(name); k++) name = `${stem}-${k}.heatmap.png`;
    used.add(name);
    await mkdir(outDir, { recursive: true });
    const file = path.join(outDir, name);
    await writeFile(file, await overlayHeatmap(await readFile(result.file), heatmap));
    result.heatmapFile = file;
    delete result.prediction.heatmap;
  }
}

/**
 * A fixed-width table: one row per file with its label and each class probability. Files show
 * by base name unless `fullPath` (for paths that carry meaning, like a class folder).
 */
export function formatPredictionTable(
  results: FilePrediction[],
  labels: readonly string[],
  { fullPath = false }: { fullPath?: boolean } = {},
): string {
  const display = (file: string) => (fullPath ? file : path.basename(file));
  const nameWidth = Math.max(4, ...results.map((r) => display(r.file).length));
  const cols = labels.map((l) => Math.max(l.length, 6));
  const header = [
    'file'.padEnd(nameWidth),
    'label'.padEnd(10),
    ...labels.map((l, i) => l.padStart(cols[i])),
    ...(results.some((r) => r.heatmapFile) ? ['heatmap'] : []),
  ].join('  ');
  const rows = results.map((r) => {
    const name = display(r.file).padEnd(nameWidth);
    if (!r.prediction) {
      return `${name}  ${'error'.padEnd(10)}  ${r.status ? `${r.status} ` : ''}${r.error?.code}: ${r.error?.message}`;
    }
    const p = r.prediction;
    const probs = labels.map((l, i) => (p.probabilities[l] ?? 0).toFixed(3).padStart(cols[i]));
    return [name, p.label.padEnd(10), ...probs, ...(r.heatmapFile ? [r.heatmapFile] : [])].join('  ');
  });
  return [header, ...rows].join('\n');
}
