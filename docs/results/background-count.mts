// Counts, per split and class, the images `background=border` changes (ablation.md, "Background to
// black"), and lists the changed files.
// Usage: npx tsx docs/results/background-count.mts DATASET_DIR   (its Training/ and Testing/ folders)
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { blackenBackground, decodeImage } from '../../training-container/src/preprocess.ts';

const root = process.argv[2];
if (!root) throw new Error('usage: background-count.mts DATASET_DIR');
for (const split of ['Training', 'Testing']) {
  for (const label of (await readdir(path.join(root, split))).sort()) {
    const files = (await readdir(path.join(root, split, label))).sort();
    const changed: string[] = [];
    for (const file of files) {
      const image = await decodeImage(await readFile(path.join(root, split, label, file)));
      if (blackenBackground(image) !== image) changed.push(file);
    }
    console.log(`${split}/${label}: ${changed.length} of ${files.length} changed${changed.length ? `: ${changed.join(', ')}` : ''}`);
  }
}
