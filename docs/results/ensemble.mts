// Reproduces the ensemble note in ablation.md: each saved model alone, every pair and all of them,
// scored as the mean of their class probabilities on Testing, whole and leak-free.
// Usage: npx tsx docs/results/ensemble.mts $D/Training $D/Testing MODEL_DIR MODEL_DIR [MODEL_DIR...]
// MODEL_DIR is a `train --out` folder's model/; all must share one preprocessing.json.
import { decodeImages } from '../../training-container/src/data/decode.ts';
import { groupScans } from '../../training-container/src/data/groups.ts';
import { listImageFolder } from '../../training-container/src/data/image-folder.ts';
import { initEngine } from '../../training-container/src/engine/index.ts';
import { metricsFromProbabilities, metricsOfSubset } from '../../training-container/src/evaluate/metrics.ts';
import { predictProbabilities } from '../../training-container/src/evaluate/predict.ts';
import { LABELS } from '../../training-container/src/labels.ts';
import '../../training-container/src/model/index.ts';
import { loadModel } from '../../training-container/src/model-io.ts';

const [trainDir, testDir, ...dirs] = process.argv.slice(2);
if (!trainDir || !testDir || dirs.length < 2) {
  throw new Error('usage: ensemble.mts TRAIN_DIR TEST_DIR MODEL_DIR MODEL_DIR [MODEL_DIR...]');
}
await initEngine('auto', () => {});
const first = await loadModel(dirs[0]);
const pre = { imageSize: first.config.imageSize, preprocessing: first.config.preprocessing };
first.model.dispose();
const test = await decodeImages((await listImageFolder(testDir)).files, pre);
const all = test.files.map((_, i) => i);
const probs: Float32Array[] = [];
for (const dir of dirs) {
  const { model, config } = await loadModel(dir);
  if (JSON.stringify(config.preprocessing) !== JSON.stringify(pre.preprocessing)) {
    throw new Error(`${dir}: preprocessing differs from ${dirs[0]}`);
  }
  probs.push(await predictProbabilities(model, test, all, 32));
  model.dispose();
}
const train = await decodeImages((await listImageFolder(trainDir)).files, pre);
const grouping = await groupScans('audit', { dir: trainDir, set: train }, { dir: testDir, set: test }, () => {});
const leakFree = grouping.leakFreeTest ?? all;

const pct = (x: number) => (100 * x).toFixed(1);
function show(name: string, p: Float32Array): void {
  const whole = metricsFromProbabilities(p, test.labels, LABELS);
  const clean = metricsOfSubset(p, test.labels, leakFree, LABELS);
  const recall = LABELS.map((k) => Math.round(100 * whole.perClass[k].recall)).join(' / ');
  console.log(
    `${name.padEnd(28)} Testing ${pct(whole.accuracy)} %  leak-free ${pct(clean.accuracy)} %  recall ${recall}`,
  );
}
const mean = (ps: Float32Array[]) => ps[0].map((_, j) => ps.reduce((s, p) => s + p[j], 0) / ps.length);
dirs.forEach((d, i) => show(`model ${i + 1}`, probs[i]));
for (let i = 0; i < dirs.length; i++) {
  for (let j = i + 1; j < dirs.length; j++) show(`models ${i + 1} + ${j + 1}`, mean([probs[i], probs[j]]));
}
if (dirs.length > 2) show(`all ${dirs.length}`, mean(probs));
