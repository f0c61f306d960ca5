import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../training-container/src/engine/index.ts';
import { buildClassifier, DropConnect } from '../../training-container/src/model/index.ts';
import { loadModel, saveModel } from '../../training-container/src/model-io.ts';

describe('EfficientNetB0 classifier', () => {
  beforeAll(async () => {
    await initEngine('wasm', () => {});
  });

  it('has exactly Keras B0 parameter count without top (4,049,571) and Keras layer names', () => {
    const model = buildClassifier({ imageSize: 96, numClasses: 4 });
    const head = model.getLayer('predictions');
    expect(head.countParams()).toBe(1280 * 4 + 4);
    expect(model.countParams() - head.countParams()).toBe(4_049_571);
    const names = model.layers.map((l) => l.name);
    for (const name of [
      'stem_conv',
      'block1a_dwconv',
      'block2a_expand_conv',
      'block6d_add',
      'top_conv',
      'avg_pool',
    ]) {
      expect(names).toContain(name);
    }
    // Keras B0 has 16 MBConv blocks; the last one is 7a.
    expect(names.filter((n) => /^block\d[a-z]_project_bn$/.test(n))).toHaveLength(16);
    expect(model.outputs[0].shape).toEqual([null, 4]);
    model.dispose();
  });

  it('takes raw [0, 255] RGB and normalises with ImageNet statistics inside the model', async () => {
    const model = buildClassifier({ imageSize: 32, numClasses: 3, width: 0.25, depth: 0.25 });
    const probe = tf.model({
      inputs: model.inputs,
      outputs: model.getLayer('normalization').output as tf.SymbolicTensor,
    });
    const pixel = tf.tensor4d([255, 0, 128], [1, 1, 1, 3]).tile([1, 32, 32, 1]);
    const out = (await (probe.predict(pixel) as tf.Tensor).data()).slice(0, 3);
    const expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225];
    for (let i = 0; i < 3; i++) expect(out[i]).toBeCloseTo(expected[i], 4);
    tf.dispose(pixel);
    model.dispose();
  });

  it('drop connect is active only in training', () => {
    const layer = new DropConnect({ rate: 0.5 });
    const x = tf.ones([64, 2, 2, 3]);
    const inference = layer.apply(x) as tf.Tensor;
    expect(inference.sum().arraySync()).toBe(64 * 12);
    const training = layer.apply(x, { training: true }) as tf.Tensor;
    const perSample = training.reshape([64, 12]).max(1).arraySync() as number[];
    // Whole samples are dropped (0) or kept and rescaled by 1 / (1 - rate) = 2.
    expect(new Set(perSample)).toEqual(new Set([0, 2]));
    tf.dispose([x, inference, training]);
  });

  it('trains on wasm (loss decreases on a fixed batch) and round-trips through saveModel/loadModel', async () => {
    const model = buildClassifier({
      imageSize: 32,
      numClasses: 4,
      width: 0.25,
      depth: 0.25,
      dropout: 0,
      dropConnect: 0,
    });
    model.compile({ optimizer: tf.train.adam(1e-2), loss: 'categoricalCrossentropy' });
    const x = tf.randomUniform([8, 32, 32, 3], 0, 255, 'float32', 1);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3], 'int32'), 4);
    const first = (await model.trainOnBatch(x, y)) as number;
    let last = first;
    for (let i = 0; i < 5; i++) last = (await model.trainOnBatch(x, y)) as number;
    expect(Number.isFinite(last)).toBe(true);
    expect(last).toBeLessThan(first);

    const dir = await mkdtemp(path.join(os.tmpdir(), 'b0-model-'));
    try {
      await saveModel(model, dir, {
        imageSize: 32,
        labels: ['glioma', 'meningioma', 'notumor', 'pituitary'],
      });
      const { model: loaded } = await loadModel(dir);
      const a = model.predict(x) as tf.Tensor;
      const b = loaded.predict(x) as tf.Tensor;
      expect(tf.max(tf.abs(tf.sub(a, b))).arraySync()).toBeLessThan(1e-5);
      tf.dispose([a, b]);
      loaded.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    tf.dispose([x, y]);
    model.dispose();
  });

  it('whole-model training gradients on wasm equal the cpu backend', async () => {
    const model = buildClassifier({
      imageSize: 33,
      numClasses: 4,
      width: 0.25,
      depth: 0.25,
      dropout: 0,
      dropConnect: 0,
    });
    const xv = tf.randomUniform([4, 33, 33, 3], 0, 255, 'float32', 2);
    const yv = tf.oneHot(tf.tensor1d([0, 1, 2, 3], 'int32'), 4);
    const gradsOn = async (backend: string) => {
      await tf.setBackend(backend);
      const { grads, value } = tf.variableGrads(() =>
        tf.losses.softmaxCrossEntropy(yv, model.apply(xv, { training: true }) as tf.Tensor).asScalar(),
      );
      const out = new Map<string, Float32Array>();
      for (const [name, g] of Object.entries(grads)) out.set(name, (await g.data()) as Float32Array);
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    };
    const cpu = await gradsOn('cpu');
    const wasm = await gradsOn('wasm');
    expect(wasm.size).toBe(model.trainableWeights.length);
    // Some gradients are zero in exact arithmetic (a batch-norm shift that the next batch norm
    // removes) and hold only rounding noise, so each error is measured against the larger of the
    // tensor's own scale and 1e-3 of the largest gradient in the model.
    const globalMax = Math.max(...[...cpu.values()].map((g) => Math.max(...g.map(Math.abs))));
    for (const [name, ref] of cpu) {
      const got = wasm.get(name) as Float32Array;
      const scale = Math.max(Math.max(...ref.map(Math.abs)), 1e-3 * globalMax);
      const maxDiff = Math.max(...ref.map((v, i) => Math.abs(v - got[i])));
      expect(maxDiff / scale, name).toBeLessThan(1e-3);
    }
    tf.dispose([xv, yv]);
    model.dispose();
  });

  afterAll(() => {
    tf.disposeVariables();
  });
});
