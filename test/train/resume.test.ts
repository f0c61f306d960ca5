import { mkdtemp, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DecodedImages, decodeImages } from '../../training-container/src/data/decode.ts';
import { listImageFolder } from '../../training-container/src/data/image-folder.ts';
import { groupedStratifiedSplit, type Split } from '../../training-container/src/data/split.ts';
import { lossAndAccuracy, predictProbabilities } from '../../training-container/src/evaluate/predict.ts';
import { buildClassifier } from '../../training-container/src/model/index.ts';
import { parseHyperparameters } from '../../training-container/src/train/hyperparameters.ts';
import { type TrainLoopOptions, trainLoop } from '../../training-container/src/train/loop.ts';
import { makeImageFolder, TINY } from './fixtures.ts';

let data: DecodedImages;
let split: Split;

beforeAll(async () => {
  await tf.setBackend('cpu');
  const folder = await listImageFolder(await makeImageFolder(6));
  data = await decodeImages(folder.files, { imageSize: 32 });
  split = groupedStratifiedSplit(data.labels, data.hashes, 0.25, 1);
});

function options(checkpointDir: string, overrides: Record<string, string>, log: string[]): TrainLoopOptions {
  const hp = parseHyperparameters({ ...TINY, ...overrides });
  const model = buildClassifier({
    imageSize: 32,
    numClasses: 4,
    width: hp.width,
    depth: hp.depth,
    dropout: hp.dropout,
    dropConnect: hp.drop_connect,
    seed: hp.seed,
  });
  return {
    model,
    data,
    split,
    classWeights: [1, 1, 1, 1],
    hp,
    augment: { rotationDeg: 10, flip: true, zoom: 0.1, shift: 0.05 },
    checkpointDir,
    fingerprint: 'same-job',
    log: (line) => log.push(line),
  };
}

const epochLines = (log: string[]) => log.filter((l) => l.startsWith('epoch='));

describe('checkpoint resume', () => {
  it('continues the epoch count and the learning rate of the checkpoint, not the new settings', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bt-ckpt-'));
    const first: string[] = [];
    const a = await trainLoop(options(dir, { epochs: '1', learning_rate: '0.01' }, first));
    expect(a.history.map((h) => h.epoch)).toEqual([1]);

    // A restarted job: new process, fresh model, and (to prove where the rate comes from) another
    // initial learning rate. The fingerprint says it is the same job.
    const second: string[] = [];
    const b = await trainLoop(options(dir, { epochs: '2', learning_rate: '0.5' }, second));
    expect(b.resumedFrom).toMatchObject({ epoch: 1, stepInEpoch: 0 });
    expect(epochLines(second)).toHaveLength(1);
    expect(epochLines(second)[0]).toMatch(/^epoch=2 .* lr=0\.010000$/);
    expect(b.history.map((h) => h.epoch)).toEqual([1, 2]);
    expect(b.history[0]).toEqual(a.history[0]);
    // Adam's step counter carried over: 2 epochs of 2 steps (16 training images, batch 8).
    expect(split.train).toHaveLength(16);
    expect((await readdir(dir)).filter((n) => n.startsWith('step-'))).toContain('step-000000004');
  });

  it('resumes mid-epoch after an interruption at the step where it stopped', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bt-ckpt-'));
    const first: string[] = [];
    let steps = 0;
    const a = await trainLoop({ ...options(dir, { epochs: '2' }, first), shouldStop: () => ++steps === 3 });
    expect(a.stoppedBy).toBe('interrupted');
    expect(a.history.map((h) => h.epoch)).toEqual([1]);
    expect(first.at(-1)).toMatch(/interrupted: saved checkpoint .* at epoch 2, step 1\/2/);

    const second: string[] = [];
    const b = await trainLoop(options(dir, { epochs: '2' }, second));
    expect(b.resumedFrom).toMatchObject({ epoch: 1, stepInEpoch: 1 });
    expect(b.stoppedBy).toBe('epochs');
    expect(epochLines(second).map((l) => l.split(' ')[0])).toEqual(['epoch=2']);
  });

  it('carries the weight average through an interruption: the resumed run ends where an unbroken one does', async () => {
    // No dropout, so two runs from the same seed are the same computation. Cosine: the last
    // average is kept (a plateau schedule keeps the best epoch's).
    const settings = {
      epochs: '2',
      ema_decay: '0.9',
      dropout: '0',
      drop_connect: '0',
      lr_schedule: 'cosine',
    };
    const unbroken: string[] = [];
    const a = options(await mkdtemp(path.join(os.tmpdir(), 'bt-ckpt-')), settings, unbroken);
    await trainLoop(a);
    expect(unbroken.at(-1)).toBe('kept the moving average of the weights (ema_decay=0.9, 4 steps)');

    const dir = await mkdtemp(path.join(os.tmpdir(), 'bt-ckpt-'));
    let steps = 0;
    await trainLoop({ ...options(dir, settings, []), shouldStop: () => ++steps === 3 });
    const resumedLog: string[] = [];
    const b = options(dir, settings, resumedLog);
    const resumed = await trainLoop(b);
    expect(resumed.resumedFrom).toMatchObject({ epoch: 1, stepInEpoch: 1 });
    expect(resumedLog.at(-1)).toBe('kept the moving average of the weights (ema_decay=0.9, 4 steps)');
    const flat = (m: tf.LayersModel) => m.getWeights().flatMap((w) => Array.from(w.dataSync()));
    const [wa, wb] = [flat(a.model), flat(b.model)];
    expect(wb).toHaveLength(wa.length);
    expect(Math.max(...wa.map((v, i) => Math.abs(v - wb[i])))).toBeLessThan(1e-5);
    // ...and the kept weights are the average, not the last step's.
    const plain = options(
      await mkdtemp(path.join(os.tmpdir(), 'bt-ckpt-')),
      { ...settings, ema_decay: '0' },
      [],
    );
    await trainLoop(plain);
    const wp = flat(plain.model);
    expect(Math.max(...wa.map((v, i) => Math.abs(v - wp[i])))).toBeGreaterThan(1e-3);
  });

  it("with a plateau schedule, validates the averaged weights and keeps the best epoch's average", async () => {
    const settings = { epochs: '1', ema_decay: '0.9', dropout: '0', drop_connect: '0' };
    const log: string[] = [];
    const averaged = options(await mkdtemp(path.join(os.tmpdir(), 'bt-ckpt-')), settings, log);
    const a = await trainLoop(averaged);
    expect(log.at(-1)).toMatch(/^restored the best weights \(of the moving average\): epoch 1 /);
    const plain = options(
      await mkdtemp(path.join(os.tmpdir(), 'bt-ckpt-')),
      { ...settings, ema_decay: '0' },
      [],
    );
    const b = await trainLoop(plain);
    // The average does not change the steps, only what is validated and kept: the logged
    // validation loss is the kept model's, and it differs from the last step's weights'.
    const labels = Int32Array.from(split.validation, (i) => data.labels[i]);
    const lossOf = async (model: tf.LayersModel) =>
      lossAndAccuracy(await predictProbabilities(model, data, split.validation, 8), labels, 4).loss;
    expect(await lossOf(averaged.model)).toBeCloseTo(a.history[0].val_loss, 5);
    expect(await lossOf(plain.model)).toBeCloseTo(b.history[0].val_loss, 5);
    expect(Math.abs(a.history[0].val_loss - b.history[0].val_loss)).toBeGreaterThan(1e-4);
  });

  it('ignores checkpoints of other settings', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bt-ckpt-'));
    await trainLoop(options(dir, { epochs: '1' }, []));
    const log: string[] = [];
    const b = await trainLoop({ ...options(dir, { epochs: '1' }, log), fingerprint: 'another-job' });
    expect(b.resumedFrom).toBeUndefined();
    expect(log[0]).toMatch(/ignoring checkpoints/);
    expect(epochLines(log)[0]).toMatch(/^epoch=1 /);
  });
});
