import path from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';

interface LocalFlags {
  data?: string;
  retrain?: boolean;
  work: string;
  set: Record<string, string>;
  apiPort: string;
  servePort: string;
  apiKey?: string;
  exit?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('local')
    .description(
      'The main job: dataset -> S3 (loopback) -> audit -> train (quick) -> evaluate -> serve -> API -> sample predictions; keeps serving until Ctrl-C',
    )
    .option(
      '--data <dir>',
      'dataset root with Training/ and Testing/ (default: $BRAIN_TUMOR_DATA, else ../shared/datasets/sartaj-brain-tumor-mri)',
    )
    .option('--retrain', 'train again even if a model for the same data and hyperparameters exists')
    .option('--work <dir>', 'where local S3 objects, jobs and reports live', '.brain-tumor')
    .option('--set <key=value>', 'training hyperparameter (repeatable), e.g. --set epochs=2', collect, {})
    .option('--api-port <port>', 'API port', '3000')
    .option('--serve-port <port>', 'serve (container) port', '8080')
    .option('--api-key <key>', 'API key clients must send (default: generated once, kept in the work folder)')
    .option('--exit', 'stop everything after the sample predictions instead of serving until Ctrl-C')
    .option(
      '--json',
      'print one machine-readable JSON summary on stdout; everything else (progress, logs) goes to stderr',
    )
    .action(async (flags: LocalFlags) => {
      const { resolveDataDir } = await import('../../lib/pipeline/data-location.ts');
      const { runLocalPipeline } = await import('../../lib/pipeline/local.ts');
      const { formatPredictionTable } = await import('../../lib/local/predict-client.ts');
      const { LABELS } = await import('../../training-container/src/labels.ts');
      const dataDir = resolveDataDir(flags.data);
      // With --json, stdout holds exactly one JSON document (`| jq` works): every other line,
      // the training process's output and the API's log lines included, goes to stderr.
      const say = flags.json ? console.error : console.log;
      const progress = progressBar();
      const run = await runLocalPipeline({
        dataDir,
        workDir: path.resolve(flags.work),
        retrain: flags.retrain,
        hyperparameters: { profile: 'quick', ...flags.set },
        apiPort: Number(flags.apiPort),
        servePort: Number(flags.servePort),
        apiKey: flags.apiKey,
        onProgress: progress.update,
        log: (line) => {
          progress.stop();
          say(line);
        },
        processOutput: flags.json ? 'stderr' : 'stdout',
      });
      progress.stop();
      say('\n== sample predictions through the API');
      // Show where each sample came from (its class folder), not just its file name.
      const samples = run.samples.map((r) => ({ ...r, file: path.relative(dataDir, r.file) }));
      say(formatPredictionTable(samples, LABELS, { fullPath: true }));
      say(`   without the API key: HTTP ${run.unauthenticatedStatus}`);
      say('\n== timings');
      for (const t of run.timings) say(`   ${t.phase.padEnd(10)} ${t.seconds.toFixed(1).padStart(7)} s`);
      say('\n== ready');
      say(`   API        ${run.predictUrl}`);
      say(`   web page   ${new URL('/', run.predictUrl)}  (paste the API key: ${run.apiKey})`);
      say(`   serve      ${run.serveUrl}`);
      say(`   S3         ${run.s3Endpoint} (bucket brain-tumor-local)`);
      say(
        `   try: curl -s -H 'x-api-key: ${run.apiKey}' -H 'content-type: image/jpeg' --data-binary @IMAGE.jpg ${run.predictUrl}`,
      );
      if (flags.json) {
        console.log(
          JSON.stringify({
            predictUrl: run.predictUrl,
            webUrl: new URL('/', run.predictUrl).href,
            serveUrl: run.serveUrl,
            jobName: run.jobName,
            evaluation: run.evaluation,
            timings: run.timings,
            samples: run.samples,
            unauthenticatedStatus: run.unauthenticatedStatus,
          }),
        );
      }
      if (flags.exit) {
        await run.close();
        return;
      }
      say('   Ctrl-C stops everything.');
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      say('\nstopping...');
      await run.close();
    });
}

function collect(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new Error(`--set ${value}: expected key=value, e.g. --set epochs=2`);
  return { ...previous, [value.slice(0, eq).trim()]: value.slice(eq + 1).trim() };
}

/** One bar for the long transfers and the audit, shown only on a terminal. */
function progressBar(): { update: (phase: string, done: number, total: number) => void; stop: () => void } {
  if (!process.stdout.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new SingleBar({
    format: '   {phase} [{bar}] {value}/{total} {eta_formatted}',
    clearOnComplete: true,
  });
  let current = '';
  return {
    update: (phase, done, total) => {
      if (phase !== current) {
        bar.stop();
        bar.start(total, done, { phase });
        current = phase;
      } else {
        bar.update(done);
      }
    },
    stop: () => {
      if (current) bar.stop();
      current = '';
    },
  };
}
