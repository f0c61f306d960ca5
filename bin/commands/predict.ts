import type { Command } from 'commander';
import {
  DEFAULT_HEATMAP_DIR,
  formatPredictionTable,
  predictFiles,
  saveHeatmaps,
} from '../../lib/local/predict-client.ts';
import { LABELS } from '../../training-container/src/labels.ts';

export function register(program: Command): void {
  program
    .command('predict')
    .description(
      'send JPEG/PNG images to the API (or a serve /invocations URL) and print label and probabilities',
    )
    .argument('<images...>', 'image files')
    .requiredOption(
      '--url <url>',
      'predict URL, e.g. http://127.0.0.1:3000/predict or http://127.0.0.1:8080/invocations',
    )
    .option('--api-key <key>', 'API key (sent as x-api-key)')
    .option('--json', 'print one JSON array of results')
    .option(
      '--explain',
      'also ask for Grad-CAM heatmaps and save each blended over its image as <name>.heatmap.png in --out',
    )
    .option('--out <dir>', 'folder for --explain heatmaps', DEFAULT_HEATMAP_DIR)
    .action(
      async (
        images: string[],
        opts: { url: string; apiKey?: string; json?: boolean; explain?: boolean; out: string },
      ) => {
        const results = await predictFiles(images, {
          url: opts.url,
          apiKey: opts.apiKey,
          explain: opts.explain,
        });
        if (opts.explain) await saveHeatmaps(results, opts.out);
        console.log(opts.json ? JSON.stringify(results, null, 2) : formatPredictionTable(results, LABELS));
        const failed = results.filter((r) => !r.prediction).length;
        if (failed) throw new Error(`${failed} of ${results.length} images failed`);
      },
    );
}
