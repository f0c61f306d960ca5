import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { BatchNormalization } from '../../training-container/src/model/batch-norm.ts';
import { nativeAvailable, random, relativeError } from './helpers.ts';

/**
 * The model's BatchNormalization layer in training: on onednn one native kernel forward and one
 * backward, on cpu tfjs-layers' own moments + batchNorm. Outputs, all three gradients and the
 * moving averages must agree, on odd channel counts and a batch whose statistics are far from
 * zero mean / unit variance.
 */

const native = await nativeAvailable();

interface Run {
  y: Float32Array;
  dx: Float32Array;
  dGamma: Float32Array;
  dBeta: Float32Array;
  movingMean: Float32Array;
  movingVariance: Float32Array;
  kernels: string[];
}

async function trainingCall(backend: string, shape: number[], seed: number): Promise<Run> {
  await tf.setBackend(backend);
  const c = shape[shape.length - 1];
  const layer = new BatchNormalization({ axis: -1, momentum: 0.9 });
  layer.build(shape);
  const [gamma, beta] = layer.trainableWeights;
  gamma.write(tf.tensor1d(random([c], seed + 1).map((v) => v + 1.5)));
  beta.write(tf.tensor1d(random([c], seed + 2)));
  const x = tf.variable(
    tf.tensor(
      random(shape, seed).map((v, i) => 3 * v + (i % c) - 2),
      shape,
    ),
  );
  const weights = tf.tensor(random(shape, seed + 3), shape);
  let y: tf.Tensor = tf.scalar(0);
  let grads: tf.NamedTensorMap = {};
  const variables = [x, gamma.read(), beta.read()] as tf.Variable[];
  const profile = await tf.profile(() => {
    ({ grads } = tf.variableGrads(() => {
      y = tf.keep(layer.apply(x, { training: true }) as tf.Tensor);
      return tf.sum(tf.mul(y, weights)) as tf.Scalar;
    }, variables));
  });
  const read = async (t: tf.Tensor) => Float32Array.from(await t.data());
  const [, , movingMean, movingVariance] = layer.getWeights();
  const run: Run = {
    kernels: profile.kernels.map((k) => k.name),
    y: await read(y),
    dx: await read(grads[x.name]),
    dGamma: await read(grads[variables[1].name]),
    dBeta: await read(grads[variables[2].name]),
    movingMean: await read(movingMean),
    movingVariance: await read(movingVariance),
  };
  tf.dispose([x, weights, y, ...Object.values(grads)]);
  return run;
}

describe('BatchNormalization training path', () => {
  if (!native) {
    it('runs tfjs-layers’ own code where no backend has the fused kernels', async () => {
      const run = await trainingCall('cpu', [2, 3, 3, 5], 1);
      expect(run.kernels).not.toContain('BatchNormTraining');
    });
    return;
  }

  for (const shape of [
    [2, 5, 3, 7],
    [16, 4, 4, 33],
    [3, 1, 1, 129],
  ]) {
    it(`is one native kernel on onednn and matches tfjs-layers on cpu, shape ${shape}`, async () => {
      const cpu = await trainingCall('cpu', shape, 7);
      const onednn = await trainingCall('onednn', shape, 7);
      expect(cpu.kernels).not.toContain('BatchNormTraining');
      expect(onednn.kernels).toContain('BatchNormTraining');
      expect(onednn.kernels).toContain('BatchNormTrainingGrad');
      expect(onednn.kernels).not.toContain('Mean');
      for (const key of ['y', 'dx', 'dGamma', 'dBeta', 'movingMean', 'movingVariance'] as const) {
        expect(cpu[key].some((v) => v !== 0)).toBe(true);
        expect(relativeError(onednn[key], cpu[key]), key).toBeLessThan(1e-4);
      }
    });
  }

  it('inference is tfjs-layers’ path on both backends (moving statistics)', async () => {
    const shape = [2, 3, 3, 5];
    const out: Float32Array[] = [];
    for (const backend of ['cpu', 'onednn']) {
      await tf.setBackend(backend);
      const layer = new BatchNormalization({ axis: -1 });
      layer.build(shape);
      const x = tf.tensor(random(shape, 3), shape);
      const profile = await tf.profile(() => layer.apply(x, { training: false }) as tf.Tensor);
      expect(profile.kernels.map((k) => k.name)).not.toContain('BatchNormTraining');
      out.push(Float32Array.from(await (layer.apply(x) as tf.Tensor).data()));
      x.dispose();
    }
    expect(relativeError(out[1], out[0])).toBeLessThan(1e-6);
  });

  it('saves as an ordinary tfjs-layers BatchNormalization', () => {
    const layer = new BatchNormalization({ axis: -1, name: 'stem_bn' });
    expect(layer.getClassName()).toBe('BatchNormalization');
    expect(layer.getConfig()).toMatchObject({ axis: -1, momentum: 0.99, epsilon: 0.001 });
  });
});
