import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import cliProgress from 'cli-progress';
import { type Command, Option } from 'commander';
import { resolveModel } from '../../lib/pipeline/model-location.ts';
import { evaluateFolder } from '../../training-container/src/evaluate/evaluate-folder.ts';
import type { LookupScore } from '../../training-container/src/evaluate/lookup-baseline.ts';
import type { Metrics } from '../../training-container/src/evaluate/metrics.ts';
import { ENGINES } from '../../training-container/src/train/hyperparameters.ts';

/**
 * Accuracy, balanced accuracy, a per-class table and the confusion matrix, for a terminal; with
 * `lookup`, the lookup baseline's scores right under the model's, to read them side by side.
 */
export function formatMetrics(m: Metrics, lookup?: LookupScore): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`.padStart(7);
  const labels = m.confusionMatrix.labels;
  const w = Math.max(10, ...labels.map((l) => l.length)) + 2;
  const lines = [
    `images:            ${m.n}`,
    `accuracy:          ${pct(m.accuracy).trim()}`,
    `balanced accuracy: ${pct(m.balancedAccuracy).trim()}`,
    ...(lookup
      ? [
          `lookup baseline:   ${pct(lookup.accuracy).trim()} accuracy, ${pct(lookup.balancedAccuracy).trim()} balanced ` +
            '(1-nearest-neighbour of the --train images, no learning)',
        ]
      : []),
    '',
    `${'class'.padEnd(w)}precision   recall       f1  support`,
    ...labels.map((l) => {
      const c = m.perClass[l];
      return `${l.padEnd(w)}  ${pct(c.precision)}  ${pct(c.recall)}  ${pct(c.f1)}  ${String(c.support).padStart(7)}`;
    }),
    '',
    `confusion matrix (rows: true, columns: predicted)`,
    `${''.padEnd(w)}${labels.map((l) => l.padStart(w)).join('')}`,
    ...m.confusionMatrix.matrix.map(
      (row, i) => `${labels[i].padEnd(w)}${row.map((v) => String(v).padStart(w)).join('')}`,
    ),
  ];
  return lines.join('\n');
}

/** Exactly the documented JSON shape, whatever else Metrics grows. */
function metricsJson(m: Metrics) {
  return {
    n: m.n,
    accuracy: m.accuracy,
    balancedAccuracy: m.balancedAccuracy,
    perClass: Object.fromEntries(
      Object.entries(m.perClass).map(([l, c]) => [
        l,
        { precision: c.precision, recall: c.recall, f1: c.f1, support: c.support },
      ]),
    ),
    confusionMatrix: { labels: m.confusionMatrix.labels, matrix: m.confusionMatrix.matrix },
  };
}

export function register(program: Command): void {
  program
    .command('evaluate')
    .description(
      'score a trained model on an image folder: accuracy, balanced accuracy, per-class table, confusion matrix',
    )
    .requiredOption(
      '--model <path>',
      'model folder (model.json, weights.bin, preprocessing.json), the folder `train --out` wrote, or a model.tar.gz',
    )
    .requiredOption(
      '--data <dir>',
      'image folder with one sub-folder per class (glioma or glioma_tumor style)',
    )
    .option(
      '--train <dir>',
      "the model's training images: also report what a 1-nearest-neighbour lookup of them scores (lookup baseline), and both scores on the leak-free part (the images with no copy among them)",
    )
    .option('--json <file>', 'also write the metrics as JSON to this file')
    .addOption(new Option('--engine <engine>', 'tfjs engine').choices(ENGINES).default('auto'))
    .action(
      async (opts: {
        model: string;
        data: string;
        train?: string;
        json?: string;
        engine: (typeof ENGINES)[number];
      }) => {
        const { dir: modelDir, cleanup } = await resolveModel(opts.model);
        // Ctrl-C: exit, which removes a model.tar.gz's temporary folder (resolveModel's exit hook).
        for (const signal of ['SIGINT', 'SIGTERM'] as const)
          process.once(signal, () => process.exit(128 + os.constants.signals[signal]));
        const bar = process.stdout.isTTY
          ? new cliProgress.SingleBar(
              { format: '{phase} [{bar}] {value}/{total}' },
              cliProgress.Presets.shades_classic,
            )
          : undefined;
        let phase = '';
        try {
          const result = await evaluateFolder({
            modelDir,
            dataDir: opts.data,
            trainDir: opts.train,
            engine: opts.engine,
            log: (line) => console.error(line),
            onProgress: (p, done, total) => {
              if (!bar) return;
              if (p !== phase) {
                if (phase) bar.stop();
                phase = p;
                bar.start(total, 0, { phase: p.padEnd(12) });
              }
              bar.update(done);
            },
          });
          bar?.stop();
          if (result.skipped.length)
            console.error(`${result.skipped.length} files could not be decoded and were skipped`);
          console.log(formatMetrics(result.metrics, result.lookupBaseline));
          const { leakFree } = result;
          if (leakFree && leakFree.n === 0) {
            // Nothing to score: a 0 % accuracy here would read as a result.
            console.log(`\nleak-free part: none, every image has a copy in --train (${leakFree.grouping})`);
          } else if (leakFree) {
            console.log(
              `\nleak-free part: the ${leakFree.n} of ${result.metrics.n} images with no copy in --train (${leakFree.grouping})`,
            );
            console.log(formatMetrics(leakFree, leakFree.lookupBaseline));
          }
          if (opts.json) {
            const json = {
              ...metricsJson(result.metrics),
              ...(result.lookupBaseline && { lookupBaseline: result.lookupBaseline }),
              // With no leak-free image, only its count and grouping: there are no scores to give.
              ...(leakFree && {
                leakFree:
                  leakFree.n === 0
                    ? { n: 0, grouping: leakFree.grouping }
                    : {
                        ...metricsJson(leakFree),
                        grouping: leakFree.grouping,
                        lookupBaseline: leakFree.lookupBaseline,
                      },
              }),
            };
            await writeFile(opts.json, `${JSON.stringify(json, null, 2)}\n`);
          }
        } finally {
          bar?.stop();
          await cleanup();
        }
      },
    );
}
