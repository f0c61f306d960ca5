import { writeFile } from 'node:fs/promises';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { formatAuditSummary } from '../../training-container/src/audit/format.ts';
import { auditDataset } from '../../training-container/src/audit/index.ts';
import { renderHtml, renderPng, samplePairs } from '../../training-container/src/audit/sheet.ts';

interface AuditFlags {
  json?: string;
  html?: string;
  png?: string;
  cacheDir?: string;
  cache: boolean;
  trainSplit?: string;
  testSplit?: string;
}

export function register(program: Command): void {
  program
    .command('audit')
    .description(
      'find duplicate, re-encoded and mirrored scans, Testing images leaking from Training, and label conflicts',
    )
    .argument('<dataset-dir>', 'folder with split folders (Training/, Testing/) of class folders')
    .option('--json <file>', 'write the full report as JSON ("-" prints it to stdout instead of the summary)')
    .option('--html <file>', 'write a side-by-side HTML sheet of sample pairs to check the calls by eye')
    .option('--png <file>', 'write the same sheet as one PNG image')
    .option('--cache-dir <dir>', 'fingerprint cache folder (default: ~/.cache/brain-tumor/audit)')
    .option('--no-cache', 'neither read nor write the fingerprint cache')
    .option('--train-split <name>', 'split folder treated as train for leakage (default: Training)')
    .option('--test-split <name>', 'split folder treated as test for leakage (default: Testing)')
    .action(async (datasetDir: string, flags: AuditFlags) => {
      const bar = process.stderr.isTTY
        ? new SingleBar({
            format: 'audit {phase} [{bar}] {value}/{total} {eta_formatted}',
            clearOnComplete: true,
          })
        : undefined;
      let phase = '';
      const report = await auditDataset(datasetDir, {
        cacheDir: flags.cache ? flags.cacheDir : false,
        trainSplit: flags.trainSplit,
        testSplit: flags.testSplit,
        onWarning: (m) => console.error(`brain-tumor: warning: ${m}`),
        onProgress: bar
          ? (done, total, p) => {
              if (p !== phase) {
                if (phase) bar.stop();
                phase = p;
                bar.start(total, done, { phase: p === 'images' ? 'images  ' : 'compare ' });
              } else bar.update(done);
            }
          : undefined,
      });
      bar?.stop();
      if (flags.json) {
        const json = `${JSON.stringify(report, null, 2)}\n`;
        if (flags.json === '-') process.stdout.write(json);
        else await writeFile(flags.json, json);
      }
      if (flags.html || flags.png) {
        const pairs = samplePairs(report);
        if (flags.html) await writeFile(flags.html, await renderHtml(report, pairs));
        if (flags.png) await writeFile(flags.png, await renderPng(report, pairs));
      }
      if (flags.json !== '-') console.log(formatAuditSummary(report));
    });
}
