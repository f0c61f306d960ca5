import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import h5wasm from 'h5wasm/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildClassifier, loadImagenetWeights } from '../../training-container/src/model/index.ts';

const tiny = { imageSize: 32, numClasses: 4, width: 0.25, depth: 0.25 };

/**
 * Writes the weights of `model` (except the head) in the layout Keras' legacy `save_weights`
 * uses for efficientnetb0_notop.h5: root attribute `layer_names`, one group per layer with a
 * `weight_names` attribute, datasets at /<layer>/<layer>/<weight>:0. Values are a per-weight
 * ramp so a misrouted weight is detected; `count` is an int64 scalar as in Keras.
 */
async function writeKerasH5(model: tf.LayersModel, file: string, renameNormalization = false): Promise<void> {
  await h5wasm.ready;
  const h5 = new h5wasm.File(file, 'w');
  const layers = model.layers.filter((l) => l.name !== 'predictions' && !l.name.startsWith('input'));
  const groupName = (name: string) =>
    renameNormalization && name === 'normalization' ? 'normalization_1' : name;
  h5.create_attribute(
    'layer_names',
    layers.map((l) => groupName(l.name)),
  );
  h5.create_attribute('backend', 'tensorflow');
  h5.create_attribute('keras_version', '2.4.0');
  layers.forEach((layer, li) => {
    const name = groupName(layer.name);
    const group = h5.create_group(name);
    const weightNames = layer.weights.map((w) => `${name}/${w.originalName.split('/').pop()}:0`);
    group.create_attribute('weight_names', weightNames.length ? weightNames : ['']);
    if (layer.weights.length === 0) return;
    const inner = group.create_group(name);
    layer.weights.forEach((w, wi) => {
      const short = `${w.originalName.split('/').pop()}:0`;
      const size = (w.shape as number[]).reduce((a, b) => a * b, 1);
      if (short === 'count:0') {
        inner.create_dataset({ name: short, data: BigInt64Array.from([1281167n]), shape: [] });
        return;
      }
      const data = Float32Array.from({ length: size }, (_, i) => li + wi / 10 + i / 1e4);
      inner.create_dataset({ name: short, data, shape: w.shape as number[] });
    });
  });
  h5.close();
}

describe('loadImagenetWeights', () => {
  let dir: string;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    dir = await mkdtemp(path.join(os.tmpdir(), 'b0-h5-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('copies every weight by Keras layer and weight name and skips the new head', async () => {
    const source = buildClassifier(tiny);
    const file = path.join(dir, 'notop.h5');
    await writeKerasH5(source, file, true);
    const target = buildClassifier(tiny);
    const result = await loadImagenetWeights(target, file);

    const headWeights = target.getLayer('predictions').weights.length;
    expect(result.loaded).toBe(target.weights.length - headWeights);
    expect(result.skipped).toEqual(['predictions']);
    const layers = target.layers.filter((l) => l.name !== 'predictions' && !l.name.startsWith('input'));
    layers.forEach((layer, li) => {
      layer.weights.forEach((w, wi) => {
        const values = w.read().dataSync();
        if (w.originalName.endsWith('/count')) expect(values[0]).toBe(1281167);
        else expect(values[values.length - 1]).toBeCloseTo(li + wi / 10 + (values.length - 1) / 1e4, 3);
        expect(values[0]).toBeCloseTo(w.originalName.endsWith('/count') ? 1281167 : li + wi / 10, 5);
      });
    });
  });

  it('fails on a shape mismatch, naming the layer', async () => {
    const file = path.join(dir, 'wide.h5');
    await writeKerasH5(buildClassifier({ ...tiny, width: 0.5 }), file);
    await expect(loadImagenetWeights(buildClassifier(tiny), file)).rejects.toThrow(
      /stem_conv\/kernel has shape/,
    );
  });

  it('explains where the file must come from when it is missing', async () => {
    await expect(loadImagenetWeights(buildClassifier(tiny), path.join(dir, 'absent.h5'))).rejects.toThrow(
      /not found.*efficientnetb0_notop\.h5.*Docker image/s,
    );
  });
});
