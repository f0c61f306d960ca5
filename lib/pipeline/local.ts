import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import {
  DEFAULT_APPROVAL_THRESHOLDS,
  decideApproval,
  evaluationFromReport,
} from '../../lambda/model-registry/gate.ts';
import { formatAuditSummary } from '../../training-container/src/audit/format.ts';
import { auditDataset } from '../../training-container/src/audit/index.ts';
import { renderHtml, samplePairs } from '../../training-container/src/audit/sheet.ts';
import { LABELS, labelFromFolder } from '../../training-container/src/labels.ts';
import { parseHyperparameters } from '../../training-container/src/train/hyperparameters.ts';
import { type LocalApi, startApi } from '../local/api.ts';
import { type FilePrediction, predictFiles } from '../local/predict-client.ts';
import { type ServeProcess, startServeProcess } from '../local/serve-process.ts';
import { hashDataset, listDatasetFiles } from '../storage/dataset-files.ts';
import { type LocalS3, startLocalS3 } from '../storage/local-s3.ts';
import {
  downloadFile,
  downloadPrefix,
  objectExists,
  uploadDataset,
  uploadFile,
} from '../storage/s3-transfer.ts';
import { trainLocally } from './train-locally.ts';

/**
 * Local mode: the whole AWS pipeline on one machine, with the same code at every step.
 *
 *   dataset -> S3 (loopback server, real S3 client) -> audit -> `train` entrypoint (process)
 *   -> model.tar.gz -> S3 -> `serve` entrypoint (process) -> predict Lambda handler behind an
 *   API-Gateway-style adapter -> sample predictions through the API.
 */
export interface LocalPipelineOptions {
  /** Dataset root with Training/ and Testing/ (class sub-folders). */
  dataDir: string;
  /** Where S3 objects, jobs, the model and reports live. */
  workDir: string;
  /** Train even when a model for the same data and hyperparameters exists. Default false. */
  retrain?: boolean;
  /** Hyperparameters for the training job (strings, as SageMaker passes them). Default `{profile: 'quick'}`. */
  hyperparameters?: Record<string, string>;
  /** Default 3000 (0: any free port). */
  apiPort?: number;
  /** Default 8080 (0: any free port). */
  servePort?: number;
  /** The API key clients must send; default: one generated on first run and kept in workDir. */
  apiKey?: string;
  /** Receives progress lines. Default console.log. */
  log?: (line: string) => void;
  /** Receives (done, total) for long transfers, e.g. to drive a progress bar. */
  onProgress?: (phase: string, done: number, total: number) => void;
  /**
   * Where the training process's output goes: 'stdout' (default) or 'stderr', which keeps stdout
   * free for one machine-readable result (`local --json`). The API's log lines always go to stderr.
   */
  processOutput?: 'stdout' | 'stderr';
}

export interface PhaseTiming {
  phase: string;
  seconds: number;
}

export interface LocalPipeline {
  predictUrl: string;
  serveUrl: string;
  s3Endpoint: string;
  apiKey: string;
  jobName: string;
  evaluation: unknown;
  samples: FilePrediction[];
  /** Status of a request sent without the API key (403 expected). */
  unauthenticatedStatus: number;
  timings: PhaseTiming[];
  close: () => Promise<void>;
}

export const LOCAL_BUCKET = 'brain-tumor-local';

export async function runLocalPipeline(options: LocalPipelineOptions): Promise<LocalPipeline> {
  const log = options.log ?? console.log;
  const work = path.resolve(options.workDir);
  const hyperparameters = { profile: 'quick', ...options.hyperparameters };
  const timings: PhaseTiming[] = [];
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    log(`\n== ${name}`);
    const started = performance.now();
    const result = await fn();
    const seconds = (performance.now() - started) / 1000;
    timings.push({ phase: name, seconds });
    log(`   ${name}: ${seconds.toFixed(1)} s`);
    return result;
  };

  const resources: { s3?: LocalS3; serve?: ServeProcess; api?: LocalApi } = {};
  const close = async () => {
    await resources.api?.close();
    await resources.serve?.close();
    await resources.s3?.close();
  };

  try {
    const { dataHash, s3 } = await phase('data', async () => {
      resources.s3 = await startLocalS3({ directory: path.join(work, 's3'), buckets: [LOCAL_BUCKET] });
      const dataHash = await hashDataset(options.dataDir);
      const prefix = `datasets/${dataHash}`;
      const result = await uploadDataset(resources.s3.client, LOCAL_BUCKET, prefix, options.dataDir, {
        onProgress: (d, t) => options.onProgress?.('upload', d, t),
      });
      log(`   dataset ${options.dataDir}`);
      log(
        `   -> s3://${LOCAL_BUCKET}/${prefix}/ (${result.uploaded} uploaded, ${result.skipped} already there)`,
      );
      log(`   S3 endpoint ${resources.s3.endpoint}`);
      return { dataHash, s3: resources.s3 };
    });

    await phase('audit', async () => {
      // The trainer groups its validation split by the same audit (sharing its cache); this report is for people.
      const report = await auditDataset(options.dataDir, {
        onProgress: (d, t, p) => options.onProgress?.(`audit ${p}`, d, t),
        onWarning: (m) => log(`   warning: ${m}`),
      });
      const dir = path.join(work, 'audit');
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'audit.json'), JSON.stringify(report, null, 2));
      await writeFile(path.join(dir, 'pairs.html'), await renderHtml(report, samplePairs(report)));
      for (const line of formatAuditSummary(report).split('\n')) log(`   ${line}`);
      log(`   report ${path.join(dir, 'audit.json')}, sample pairs ${path.join(dir, 'pairs.html')}`);
    });

    // Named by the resolved hyperparameters (profile values included), so a changed profile trains anew.
    const jobName = localJobName(dataHash, hyperparameters);
    const modelKey = `jobs/${jobName}/output/model.tar.gz`;
    const evaluationKey = `jobs/${jobName}/output/data/evaluation.json`;
    const jobDir = path.join(work, 'jobs', jobName);

    const trained = !options.retrain && (await objectExists(s3.client, LOCAL_BUCKET, modelKey));
    if (trained) {
      log(
        `\n== train: reusing s3://${LOCAL_BUCKET}/${modelKey} (same data and hyperparameters; --retrain to train again)`,
      );
    } else {
      await phase('train', async () => {
        // As SageMaker does in File mode: copy each channel from S3 to local disk, then run `train`.
        const channels = path.join(jobDir, 'channels');
        await rm(channels, { recursive: true, force: true });
        await downloadPrefix(
          s3.client,
          LOCAL_BUCKET,
          `datasets/${dataHash}/Training`,
          path.join(channels, 'train'),
          {
            onProgress: (d, t) => options.onProgress?.('download train', d, t),
          },
        );
        const hasTest = existsSync(path.join(options.dataDir, 'Testing'));
        if (hasTest) {
          await downloadPrefix(
            s3.client,
            LOCAL_BUCKET,
            `datasets/${dataHash}/Testing`,
            path.join(channels, 'test'),
          );
        }
        const result = await trainLocally({
          data: path.join(channels, 'train'),
          test: hasTest ? path.join(channels, 'test') : undefined,
          out: path.join(jobDir, 'result'),
          hyperparameters,
          output: options.processOutput,
        });
        await uploadFile(s3.client, LOCAL_BUCKET, modelKey, result.modelTarball);
        for (const file of await readdir(result.outputDir)) {
          await uploadFile(
            s3.client,
            LOCAL_BUCKET,
            `jobs/${jobName}/output/data/${file}`,
            path.join(result.outputDir, file),
          );
        }
        await rm(channels, { recursive: true, force: true });
        log(`   model -> s3://${LOCAL_BUCKET}/${modelKey}`);
      });
    }

    const evaluation = await phase('evaluate', async () => {
      if (!(await objectExists(s3.client, LOCAL_BUCKET, evaluationKey))) {
        log('   no Testing/ folder: nothing to evaluate');
        return undefined;
      }
      const file = path.join(jobDir, 'evaluation.json');
      await downloadFile(s3.client, LOCAL_BUCKET, evaluationKey, file);
      const evaluation = JSON.parse(await readFile(file, 'utf8'));
      for (const line of summariseEvaluation(evaluation)) log(`   ${line}`);
      log(`   ${approvalLine(evaluation)}`);
      log(`   reports: s3://${LOCAL_BUCKET}/jobs/${jobName}/output/data/`);
      return evaluation;
    });

    const serveUrl = await phase('serve', async () => {
      // As a SageMaker endpoint does: fetch model.tar.gz from S3, unpack it, start `serve`.
      const modelDir = path.join(work, 'endpoint', 'model');
      await rm(modelDir, { recursive: true, force: true });
      await mkdir(modelDir, { recursive: true });
      const tarball = path.join(work, 'endpoint', 'model.tar.gz');
      await downloadFile(s3.client, LOCAL_BUCKET, modelKey, tarball);
      await tar.x({ file: tarball, cwd: modelDir });
      resources.serve = await startServeProcess({ modelDir, port: options.servePort ?? 8080 });
      log(`   serve ${resources.serve.url} (/ping, /invocations)`);
      return resources.serve.url;
    });

    const apiKey = options.apiKey ?? (await localApiKey(work));
    const api = await phase('api', async () => {
      resources.api = await startApi({ serveUrl, port: options.apiPort ?? 3000, apiKey });
      log(`   API ${resources.api.predictUrl} (x-api-key required)`);
      return resources.api;
    });

    const { samples, unauthenticatedStatus } = await phase('predict', async () => {
      const files = await sampleImages(options.dataDir);
      const samples = await predictFiles(files, { url: api.predictUrl, apiKey });
      const denied = await fetch(api.predictUrl, {
        method: 'POST',
        headers: { 'content-type': 'image/jpeg' },
        body: await readFile(files[0]),
      });
      await denied.arrayBuffer();
      return { samples, unauthenticatedStatus: denied.status };
    });

    return {
      predictUrl: api.predictUrl,
      serveUrl,
      s3Endpoint: s3.endpoint,
      apiKey,
      jobName,
      evaluation,
      samples,
      unauthenticatedStatus,
      timings,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The local training job's name for a dataset and hyperparameters: named by the resolved
 * hyperparameters (profile values included), so a changed profile trains anew and the same ones
 * reuse `jobs/<name>/output/model.tar.gz`.
 */
export function localJobName(dataHash: string, hyperparameters: Record<string, string>): string {
  const resolved = parseHyperparameters({ profile: 'quick', ...hyperparameters });
  return `local-${dataHash}-${shortHash(JSON.stringify(sortKeys(resolved)))}`;
}

/** One image per class from Testing (else Training), for the sample predictions. */
async function sampleImages(dataDir: string): Promise<string[]> {
  const split = existsSync(path.join(dataDir, 'Testing')) ? 'Testing' : 'Training';
  const files = await listDatasetFiles(path.join(dataDir, split));
  const picked = new Map<string, string>();
  for (const file of files) {
    const label = labelFromFolder(file.split('/')[0]);
    if (label && !picked.has(label)) picked.set(label, path.join(dataDir, split, file));
  }
  return [...picked.values()];
}

interface EvaluationSummary {
  n: number;
  accuracy: number;
  balancedAccuracy: number;
  /** Absent in evaluations written before the lookup baseline existed (a reused model). */
  lookupBaseline?: { accuracy: number; balancedAccuracy: number };
}

/** The model's scores, each beside what a no-learning lookup of the training images scores. */
export function summariseEvaluation(evaluation: {
  overall?: EvaluationSummary;
  leakFree?: EvaluationSummary;
}): string[] {
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const line = (name: string, m?: EvaluationSummary) =>
    m
      ? `${name}: accuracy ${pct(m.accuracy)}, balanced ${pct(m.balancedAccuracy)} (n=${m.n})` +
        (m.lookupBaseline
          ? `; lookup baseline ${pct(m.lookupBaseline.accuracy)}, balanced ${pct(m.lookupBaseline.balancedAccuracy)}`
          : '')
      : `${name}: not available`;
  const lines = [line('Testing', evaluation.overall), line('Testing, leak-free part', evaluation.leakFree)];
  if (evaluation.overall?.lookupBaseline) {
    lines.push(
      'lookup baseline: each test image labelled as its nearest Training image (32x32 grey, no learning)',
    );
  }
  return lines;
}

/** What the deployed stack's model registry would decide for this model (default thresholds). */
export function approvalLine(evaluation: Parameters<typeof evaluationFromReport>[0]): string {
  const { status, reasons } = decideApproval(
    evaluationFromReport(evaluation, LABELS),
    DEFAULT_APPROVAL_THRESHOLDS,
  );
  return `approval gate (as the AWS model registry would decide): ${status}${reasons.length ? ` (${reasons.join('; ')})` : ''}`;
}

/** A random key generated once per work folder, so URLs and curl lines stay valid across runs. */
async function localApiKey(work: string): Promise<string> {
  const file = path.join(work, 'api-key');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    const key = randomBytes(18).toString('base64url');
    await mkdir(work, { recursive: true });
    await writeFile(file, `${key}\n`, { mode: 0o600 });
    return key;
  }
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

function sortKeys(obj: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).sort(([a], [b]) => a.localeCompare(b)));
}
