// Reproduces the flip-TTA ablation in ablation.md: the same trained weights without the flip.
// Usage: npx tsx docs/results/tta-none.mts TRAIN_OUT_DIR OUT_DIR [width] [depth]
//   then: node bin/brain-tumor.js evaluate --model OUT_DIR --data $D/Testing --train $D/Training --json F
// TRAIN_OUT_DIR is a `train --out` folder of a model trained with tta=flip; width/depth default
// to the quick and cpu-full profiles' 0.5 / 0.5 (preprocessing.json does not record them).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initEngine } from '../../training-container/src/engine/index.ts';
import { buildClassifier } from '../../training-container/src/model/index.ts';
import { loadModel, saveModel } from '../../training-container/src/model-io.ts';

const [src, dst, width = '0.5', depth = '0.5'] = process.argv.slice(2);
if (!src || !dst) throw new Error('usage: tta-none.mts TRAIN_OUT_DIR OUT_DIR [width] [depth]');
await initEngine('cpu', () => {});
const { model, config } = await loadModel(path.join(src, 'model'));
const plain = buildClassifier({
  imageSize: config.imageSize,
  numClasses: config.labels.length,
  width: Number(width),
  depth: Number(depth),
  dropout: 0,
  dropConnect: 0,
  tta: 'none',
});
const trained = model.getWeights();
const fresh = plain.getWeights();
if (trained.length !== fresh.length || trained.some((w, i) => w.shape.join() !== fresh[i].shape.join()))
  throw new Error('the weights do not fit: wrong width/depth, or a model trained without dropout 0?');
plain.setWeights(trained);
// The flip model must be exactly the mean of the plain model on an image and its mirror.
const x = tf.randomUniform([2, config.imageSize, config.imageSize, 3], 0, 255, 'float32', 3);
const mean = tf.div(tf.add(plain.predict(x) as tf.Tensor, plain.predict(tf.reverse(x, 2)) as tf.Tensor), 2);
const gap = tf.max(tf.abs(tf.sub(model.predict(x) as tf.Tensor, mean))).dataSync()[0];
if (gap > 1e-5) throw new Error(`the plain model differs from the flip model by ${gap}`);
await mkdir(path.join(dst, 'model'), { recursive: true });
await saveModel(plain, path.join(dst, 'model'), {
  imageSize: config.imageSize,
  labels: config.labels,
  preprocessing: config.preprocessing,
  architecture: config.architecture,
});
console.log(`wrote ${path.join(dst, 'model')} (flip model = mean of plain on x and mirror x, max gap ${gap})`);
