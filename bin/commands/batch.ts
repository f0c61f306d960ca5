import { SingleBar } from 'cli-progress';
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  type BatchLocallyOptions,
  type BatchSummary,
  batchLocally,
  planBatch,
  runBatch,
} from '../../lib/local/batch.ts';
import { startAwsBatch } from '../../lib/pipeline/batch-aws.ts';
import { resolveModel } from '../../lib/pipeline/model-location.ts';
import { ENGINE_NAMES } from '../../training-container/src/engine/index.ts';
import { loadArtifactConfig } from '../../training-container/src/model-io.ts';
import type { BatchStrategy } from '../../training-container/src/serve/contract.ts';
import { parsePort } from './serve.ts';

interface BatchFlags {
  model?: string;
  url?: string;
  out?: string;
  engine?: string;
  port: number;
  concurrency?: number;
  maxPayloadMb?: number;
  batchStrategy?: BatchStrategy;
  json?: boolean;
  aws?: boolean;
  prefix?: string;
  format?: 'images' | 'jsonlines';
  instanceType?: string;
  instanceCount?: string;
  collectConcurrency?: string;
  stack?: string;
  stateMachineArn?: string;
  name?: string;
  wait?: boolean;
  region?: string;
}

/** `--aws`: the same command starts the stack's Batch Transform state machine (docs/batch.md). */
async function runOnAws(dir: string | undefined, flags: BatchFlags): Promise<void> {
  const prefix = flags.prefix ?? dir;
  if (!prefix)
    throw new Error("--aws needs --prefix (the images' key prefix in the data bucket, or an s3:// URI)");
  for (const local of ['model', 'url', 'out', 'engine'] as const) {
    if (flags[local] !== undefined)
      throw new Error(
        `--${local} is for local runs; on AWS the deployed model scores and the results go to S3`,
      );
  }
  const result = await startAwsBatch(
    {
      prefix,
      format: flags.format,
      instanceType: flags.instanceType,
      instanceCount: flags.instanceCount,
      maxPayloadMb: flags.maxPayloadMb,
      concurrency: flags.concurrency,
      // Local flags use the container's spelling (MULTI_RECORD), the API its own (MultiRecord).
      batchStrategy:
        flags.batchStrategy && (flags.batchStrategy === 'MULTI_RECORD' ? 'MultiRecord' : 'SingleRecord'),
      collectConcurrency: flags.collectConcurrency,
      stack: flags.stack,
      stateMachineArn: flags.stateMachineArn,
      executionName: flags.name,
      wait: Boolean(flags.wait),
      region: flags.region,
    },
    { log: (line) => console.error(line) },
  );
  if (flags.json) console.log(JSON.stringify(result, null, 2));
  else if (result.summary) console.error(JSON.stringify(result.summary, null, 2));
  if (result.status !== 'RUNNING' && result.status !== 'SUCCEEDED') {
    throw new Error(
      `batch ${result.executionName} ${result.status}: ${result.error ?? ''} ${result.cause ?? ''}`.trim(),
    );
  }
}

function wholeNumber(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < min || n > max)
      throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    return n;
  };
}

const SETTINGS_FROM: Record<BatchSummary['settingsFrom'], string> = {
  options: 'from the options',
  'execution-parameters': "from the container's /execution-parameters",
  defaults: "SageMaker's defaults",
  mixed: "options where given, else the container's or SageMaker's",
};

/** The end-of-run summary for a terminal (stderr). */
export function formatBatchSummary(s: BatchSummary): string {
  const counts = (c: Record<string, number>) =>
    Object.entries(c)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none';
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const first =
    s.processed === 0 && !s.interrupted
      ? `nothing to score: all ${plural(s.images, 'image')} already in ${s.out}`
      : `${s.interrupted ? 'interrupted' : 'done'}: ${plural(s.processed, 'image')} in ${s.seconds.toFixed(1)} s ` +
        `(${s.imagesPerSecond.toFixed(2)} images/s, ${plural(s.requests, 'request')})` +
        `${s.skipped ? `, ${s.skipped} skipped as already in ${s.out}` : ''}${s.remaining ? `, ${s.remaining} left to do` : ''}`;
  const lines = [first, `labels: ${counts(s.labels)}`, `errors: ${counts(s.errors)}`];
  if (s.requests > 0) {
    lines.push(
      `settings: MaxConcurrentTransforms ${s.concurrency}, MaxPayloadInMB ${s.maxPayloadInMB}, ${s.batchStrategy} (${SETTINGS_FROM[s.settingsFrom]})${s.engine ? `, engine ${s.engine}` : ''}`,
    );
  }
  return lines.join('\n');
}

export function register(program: Command): void {
  program
    .command('batch')
    .description(
      "score a folder of images as a SageMaker Batch Transform job would (JSON Lines, MULTI_RECORD) through the container's serve entrypoint; resumable",
    )
    .argument(
      '[dir]',
      'folder of images (.jpg, .jpeg, .png, any case), searched recursively; with --aws, the S3 prefix (or use --prefix)',
    )
    .option(
      '--model <path>',
      'model folder (model.json, weights.bin, preprocessing.json), the folder `train --out` wrote, or a model.tar.gz',
    )
    .option(
      '--url <url>',
      'instead of --model: a serve container already running (best with SAGEMAKER_BATCH=true), e.g. http://127.0.0.1:8080',
    )
    .option(
      '--out <file>',
      'results, one JSON line per image; an existing file is resumed (images already in it are skipped). Required locally',
    )
    .option(
      '--engine <name>',
      `tfjs engine of the serve process: auto, ${ENGINE_NAMES.join(', ')} (default: env BRAIN_TUMOR_ENGINE or auto)`,
    )
    .option('--port <port>', 'port of the serve process (0: a free one)', parsePort, 0)
    .option(
      '--concurrency <n>',
      "MaxConcurrentTransforms: requests in flight (default: the container's /execution-parameters)",
      wholeNumber(1, 64),
    )
    .option(
      '--max-payload-mb <n>',
      "MaxPayloadInMB: largest request body (default: the container's /execution-parameters)",
      wholeNumber(1, 100),
    )
    .addOption(
      new Option(
        '--batch-strategy <strategy>',
        'MULTI_RECORD: as many images per request as fit; SINGLE_RECORD: one',
      )
        // No argParser after choices(): it would replace the check that refuses other values.
        .choices(['MULTI_RECORD', 'SINGLE_RECORD']),
    )
    .option('--json', 'print the summary as JSON on stdout')
    .option(
      '--aws',
      "run on AWS: start the deployed stack's Batch Transform state machine instead of a local container",
    )
    .option('--prefix <prefix>', '--aws: key prefix of the inputs in the data bucket, or an s3:// URI')
    .addOption(
      new Option('--format <format>', '--aws: images (one per object) or jsonlines records').choices([
        'images',
        'jsonlines',
      ]),
    )
    .option('--instance-type <type>', '--aws: transform instance type (default ml.c5.xlarge)')
    .option('--instance-count <n>', '--aws: transform instances (default 1)')
    .option('--collect-concurrency <n>', '--aws: collector Lambdas at once (default 4)')
    .option('--stack <name>', '--aws: the deployed stack (default BrainTumorDetection)')
    .option('--state-machine-arn <arn>', '--aws: the stack output BatchStateMachineArn, instead of --stack')
    .option('--name <name>', '--aws: execution name, which also names the job and the output folder')
    .option('--wait', '--aws: follow the run to its end and print its summary')
    .option('--region <region>', "--aws: AWS region (default: the SDK's)")
    .action(async (dir: string | undefined, flags: BatchFlags) => {
      if (flags.aws) return runOnAws(dir, flags);
      if (!dir) throw new Error('give the folder of images to score (or --aws --prefix <prefix>)');
      if (!flags.out) throw new Error('give --out <file> for the results');
      const out = flags.out;
      if (!flags.model === !flags.url) throw new Error('give either --model or --url');
      // Ctrl-C: stop sending; rows already written stay, and the next run resumes from them.
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, onSignal);

      const bar = process.stderr.isTTY
        ? new SingleBar({
            format: 'batch [{bar}] {value}/{total} | {rate} images/s | {errors} errors | eta {eta_formatted}',
            clearOnComplete: true,
            stream: process.stderr,
          })
        : undefined;
      const common = {
        concurrency: flags.concurrency,
        maxPayloadInMB: flags.maxPayloadMb,
        strategy: flags.batchStrategy,
        signal: stop.signal,
        onProgress: (p: { done: number; errors: number; imagesPerSecond: number }) =>
          bar?.update(p.done, { errors: p.errors, rate: p.imagesPerSecond.toFixed(2) }),
      } satisfies Partial<BatchLocallyOptions>;
      const onPlan = (plan: { files: string[]; pending: string[]; droppedPartialLine: boolean }) => {
        if (plan.droppedPartialLine)
          console.error(`${out}: removed an incomplete last line (a run stopped while writing it)`);
        const skipped = plan.files.length - plan.pending.length;
        console.error(
          `${plan.files.length} images in ${dir}${skipped ? `, ${skipped} already in ${out}` : ''}, ${plan.pending.length} to score`,
        );
      };
      const onStart = (pending: number) => bar?.start(pending, 0, { errors: 0, rate: '0.00' });

      let summary: BatchSummary;
      try {
        if (flags.url) {
          const plan = await planBatch(dir, out);
          onPlan(plan);
          summary = await runBatch({
            ...common,
            plan,
            url: flags.url.replace(/\/+$/, ''),
            onStart: () => onStart(plan.pending.length),
          });
        } else {
          const model = await resolveModel(flags.model as string);
          try {
            // A model that cannot load fails here, before the folder is read and the container starts.
            await loadArtifactConfig(model.dir);
            let pending = 0;
            summary = await batchLocally({
              ...common,
              inputDir: dir,
              outFile: out,
              modelDir: model.dir,
              engine: flags.engine,
              port: flags.port,
              onPlan: (plan) => {
                pending = plan.pending.length;
                onPlan(plan);
                if (pending) console.error('starting the serve container (model load and warm-up)...');
              },
              onStart: () => onStart(pending),
            });
          } finally {
            await model.cleanup();
          }
        }
      } finally {
        bar?.stop();
        for (const signal of ['SIGINT', 'SIGTERM'] as const) process.off(signal, onSignal);
      }
      console.error(formatBatchSummary(summary));
      if (flags.json) console.log(JSON.stringify(summary, null, 2));
      if (summary.interrupted) process.exitCode = 130;
    });
}
