import { spawn } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../training-container/src/model-io.ts';
import '../../training-container/src/model/index.ts';
import { optMlPaths } from '../../training-container/src/paths.ts';
import { parseHyperparameters } from '../../training-container/src/train/hyperparameters.ts';
import { runTrainingJob, trainingSettings } from '../../training-container/src/train/job.ts';
import { cosineRate } from '../../training-container/src/train/loop.ts';
import { makeImageFolder, makeOptMl, TINY } from './fixtures.ts';

const EPOCH_LINE =
  /^epoch=(\d+) train_loss=\d+\.\d{4} train_acc=\d\.\d{4} val_loss=\d+\.\d{4} val_acc=\d\.\d{4} lr=\d\.\d{6}$/;
const EPOCH_LINE_NO_VALIDATION = /^epoch=(\d+) train_loss=\d+\.\d{4} train_acc=\d\.\d{4} lr=\d\.\d{6}$/;
/** Two epochs of a warm-up + cosine schedule: the runs on all images (refit, validation_fraction=0). */
const COSINE = { ...TINY, epochs: '2', lr_schedule: 'cosine', warmup_epochs: '1' };

async function run(hyperparameters: Record<string, string>, channels: Record<string, string>) {
  const root = await makeOptMl(hyperparameters, channels);
  const log: string[] = [];
  const code = await runTrainingJob({ paths: optMlPaths(root), log: (l) => log.push(l) });
  return { root, paths: optMlPaths(root), code, log };
}

const readJson = async (file: string) => JSON.parse(await readFile(file, 'utf8'));

describe('train entrypoint (tiny model, cpu backend)', () => {
  it('trains, writes the model, report, split and the evaluation with charts', async () => {
    const train = await makeImageFolder(8);
    const test = await makeImageFolder(4, { seed: 99 });
    // One test image also sits in train (a leak) and one train file is corrupt.
    await copyFile(path.join(test, 'no_tumor/img0.jpg'), path.join(train, 'no_tumor/leaked.jpg'));
    await writeFile(path.join(train, 'glioma_tumor/broken.jpg'), 'not a jpeg');
    // A re-encoded copy (other bytes, same scan): only the audit's grouping knows it is one scan.
    const original = path.join(train, 'meningioma_tumor/img1.jpg');
    await sharp(original).jpeg({ quality: 60 }).toFile(path.join(train, 'meningioma_tumor/img1-copy.jpg'));

    const { code, paths, log } = await run({ ...TINY, epochs: '2', grouping: 'audit' }, { train, test });
    expect(code, log.join('\n')).toBe(0);
    expect(log.filter((l) => l.startsWith('epoch='))).toHaveLength(2);
    for (const line of log.filter((l) => l.startsWith('epoch='))) expect(line).toMatch(EPOCH_LINE);
    expect(log.some((l) => l.includes('skipping glioma_tumor/broken.jpg'))).toBe(true);
    expect(log.find((l) => l.startsWith('test: '))).toMatch(
      /^test: accuracy=\d\.\d{4} balanced_accuracy=\d\.\d{4} leak_free_accuracy=\d\.\d{4} \(n=15 of 16\) lookup_accuracy=\d\.\d{4} leak_free_lookup_accuracy=\d\.\d{4}$/,
    );

    const { model, config } = await loadModel(paths.model);
    expect(config).toMatchObject({ imageSize: 32, labels: ['glioma', 'meningioma', 'notumor', 'pituitary'] });
    expect(model.predict(tf.zeros([1, 32, 32, 3])) as tf.Tensor).toHaveProperty('shape', [1, 4]);

    const report = await readJson(path.join(paths.model, 'training-report.json'));
    expect(report.history.map((h: { epoch: number }) => h.epoch)).toEqual([1, 2]);
    expect(report.engine.name).toBe('cpu');
    expect(report.split.train + report.split.validation).toBe(34);
    expect(report.data.train.skipped).toEqual([
      { relPath: 'glioma_tumor/broken.jpg', reason: expect.any(String) },
    ]);
    expect(Object.keys(report.classWeights)).toEqual(['glioma', 'meningioma', 'notumor', 'pituitary']);
    expect(report.durations.totalSeconds).toBeGreaterThan(0);

    const split = await readJson(path.join(paths.model, 'split.json'));
    expect(split.train.length).toBe(report.split.train);
    expect(split.validation.filter((f: string) => split.train.includes(f))).toEqual([]);
    const side = (f: string) => (split.train.includes(f) ? 'train' : 'validation');
    expect(side('meningioma_tumor/img1-copy.jpg')).toBe(side('meningioma_tumor/img1.jpg'));

    const evaluation = await readJson(path.join(paths.outputData, 'evaluation.json'));
    expect(evaluation.overall.n).toBe(16);
    expect(evaluation.leakFree.n).toBe(15);
    expect(evaluation.leakFree.grouping).toMatch(/dataset audit/);
    // The lookup baseline beside the model's scores, whole and leak-free.
    for (const part of [evaluation.overall, evaluation.leakFree]) {
      expect(Object.keys(part.lookupBaseline)).toEqual(['accuracy', 'balancedAccuracy']);
      for (const v of Object.values(part.lookupBaseline) as number[]) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
      }
    }
    expect(evaluation.overall.confusionMatrix.matrix.flat().reduce((a: number, b: number) => a + b)).toBe(16);
    for (const png of ['confusion-matrix.png', 'training-curves.png']) {
      expect((await sharp(path.join(paths.outputData, png)).metadata()).format).toBe('png');
    }
  });

  it('refits on every train image after the validation run, with the new recipe options', async () => {
    const train = await makeImageFolder(6);
    const test = await makeImageFolder(2, { seed: 7 });
    const { code, paths, log } = await run(
      {
        ...COSINE,
        refit: 'true',
        tta: 'flip',
        label_smoothing: '0.1',
        ema_decay: '0.99',
        gamma: '0.3',
        contrast: '0.3',
        degrade: '0.5',
        noise: '5',
        stretch: '0.1',
      },
      { train, test },
    );
    expect(code, log.join('\n')).toBe(0);
    expect(log.some((l) => l.startsWith('refit: training a new model on all 24 images'))).toBe(true);
    // Both runs keep their weight average: 2 epochs of 2 steps (16 images), then of 3 (all 24).
    expect(log.filter((l) => l.startsWith('kept the moving average'))).toEqual([
      'kept the moving average of the weights (ema_decay=0.99, 4 steps)',
      'kept the moving average of the weights (ema_decay=0.99, 6 steps)',
    ]);
    const report = await readJson(path.join(paths.model, 'training-report.json'));
    expect(report.history).toHaveLength(2);
    expect(report.refit.images).toBe(24);
    expect(report.refit.history.map((h: { epoch: number }) => h.epoch)).toEqual([1, 2]);
    expect(report.refit.validationRunTestAccuracy).toBeGreaterThanOrEqual(0);
    // The rate of each epoch's last step: 3 steps an epoch, warm-up over the first 3.
    expect(report.refit.history[0].lr).toBeCloseTo(0.01, 9);
    expect(report.refit.history[1].lr).toBeCloseTo(cosineRate(0.01, 1e-6, 5, 3, 6), 9);
    expect(report.refit.history[1].lr).toBeLessThan(0.01);
    // The refit's epoch lines have no validation figures to print (and feed no validation metric).
    const epochLines = log.filter((l) => l.startsWith('epoch='));
    expect(epochLines.slice(0, 2).every((l) => EPOCH_LINE.test(l))).toBe(true);
    expect(epochLines.slice(2)).toHaveLength(2);
    for (const line of epochLines.slice(2)) expect(line).toMatch(EPOCH_LINE_NO_VALIDATION);
    // The served model is the refit one and averages each image with its mirror.
    const { model } = await loadModel(paths.model);
    expect(model.layers.map((l) => l.name)).toContain('tta_flip');
  });

  it('trains one model on every train image with validation_fraction=0', async () => {
    const train = await makeImageFolder(6);
    const test = await makeImageFolder(2, { seed: 7 });
    const { code, paths, log } = await run(
      { ...COSINE, validation_fraction: '0', ema_decay: '0.99' },
      { train, test },
    );
    expect(code, log.join('\n')).toBe(0);
    expect(log.some((l) => l.startsWith('warning: validation_fraction=0'))).toBe(false);
    expect(log.find((l) => l.startsWith('split: '))).toMatch(
      /^split: none \(validation_fraction=0\): train on all 24 \(glioma=6 meningioma=6 notumor=6 pituitary=6\); 24 distinct scans/,
    );
    const epochLines = log.filter((l) => l.startsWith('epoch='));
    expect(epochLines).toHaveLength(2);
    for (const line of epochLines) expect(line).toMatch(EPOCH_LINE_NO_VALIDATION);
    // 2 epochs of 3 steps over all 24 images; the weight average is still kept and shipped.
    expect(log).toContain('kept the moving average of the weights (ema_decay=0.99, 6 steps)');
    const report = await readJson(path.join(paths.model, 'training-report.json'));
    expect(report.split).toMatchObject({ train: 24, validation: 0 });
    // 3 steps of 8 an epoch: the cosine schedule spans all 24 images, warm-up over the first 3 steps.
    expect(report.history[1].lr).toBeCloseTo(cosineRate(0.01, 1e-6, 5, 3, 6), 9);
    expect(report.history.every((h: { val_loss: unknown }) => h.val_loss === null)).toBe(true);
    const split = await readJson(path.join(paths.model, 'split.json'));
    expect(split.train).toHaveLength(24);
    expect(split.validation).toEqual([]);
    const evaluation = await readJson(path.join(paths.outputData, 'evaluation.json'));
    expect(evaluation.overall.n).toBe(8);
  });

  it('warns when validation_fraction=0 leaves nothing to measure the model', async () => {
    const train = await makeImageFolder(3);
    const { code, log } = await run({ ...COSINE, epochs: '1', validation_fraction: '0' }, { train });
    expect(code, log.join('\n')).toBe(0);
    expect(log).toContain(
      'warning: validation_fraction=0 and no "test" channel: nothing measures this model; add a test channel or set validation_fraction=0.2',
    );
  });

  it('fits a cosine schedule into the time limit after the first epoch', async () => {
    const train = await makeImageFolder(4);
    const { code, log } = await run(
      { ...TINY, epochs: '50', lr_schedule: 'cosine', time_limit_minutes: '0.001' },
      { train },
    );
    expect(code, log.join('\n')).toBe(0);
    expect(log.filter((l) => l.startsWith('epoch='))).toHaveLength(1);
    expect(log.some((l) => /the cosine schedule spans 1 of epochs=50/.test(l))).toBe(true);
  });

  it('fails with a reason in the failure file when the train channel is missing', async () => {
    const { code, paths } = await run(TINY, {});
    expect(code).not.toBe(0);
    expect(await readFile(paths.failure, 'utf8')).toMatch(/no "train" input channel/);
  });

  it('fails when a class has no images, naming the class', async () => {
    const train = await makeImageFolder(3, { folders: ['glioma_tumor', 'meningioma_tumor', 'no_tumor'] });
    await mkdir(path.join(train, 'pituitary_tumor'));
    const { code, paths } = await run(TINY, { train });
    expect(code).not.toBe(0);
    expect(await readFile(paths.failure, 'utf8')).toMatch(/no images for class pituitary/);
  });

  it('fails when every file of a class is unreadable, naming the class and the skipped files', async () => {
    const train = await makeImageFolder(3);
    const pituitary = path.join(train, 'pituitary_tumor');
    for (const f of await readdir(pituitary)) await writeFile(path.join(pituitary, f), 'not an image');
    const { code, paths, log } = await run({ ...TINY, max_bad_files: '10' }, { train });
    expect(code).not.toBe(0);
    expect(await readFile(paths.failure, 'utf8')).toMatch(
      /no images for class pituitary.*3 unreadable files skipped/,
    );
    expect(log.filter((l) => l.includes('skipping pituitary_tumor/'))).toHaveLength(3);
  });

  it('fails on a bad hyperparameter before doing any work', async () => {
    const { code, paths } = await run({ ...TINY, epochs: 'ten' }, {});
    expect(code).not.toBe(0);
    expect(await readFile(paths.failure, 'utf8')).toMatch(/hyperparameter "epochs": expected an integer/);
  });

  it('checkpoints and exits on SIGTERM when run as the container entrypoint', async () => {
    const train = await makeImageFolder(8);
    const root = await makeOptMl({ ...TINY, epochs: '100', early_stopping_patience: '100' }, { train });
    const main = path.resolve('training-container/src/main.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', main, 'train'], {
      env: { ...process.env, OPT_ML_ROOT: root },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk) => {
        output += chunk;
        if (/^epoch=1 /m.test(output)) resolve();
      });
      child.on('exit', () => reject(new Error(`exited before epoch 1:\n${output}`)));
    });
    const signalled = Date.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(Date.now() - signalled).toBeLessThan(30_000);
    expect(output).toMatch(/interrupted: saved checkpoint/);
    expect((await readdir(path.join(root, 'checkpoints'))).some((n) => n.startsWith('step-'))).toBe(true);
    await rm(root, { recursive: true, force: true });
  });
});

describe("a checkpoint's settings", () => {
  it('are the keys a job checkpointed before ema_decay, background and remap existed had; those count only when set', () => {
    // A key added here unconditionally would change every default job's fingerprint, and a job
    // checkpointed before it would restart from scratch instead of resuming.
    const keys = Object.keys(trainingSettings(parseHyperparameters({ profile: 'full' })));
    expect(keys).toEqual([
      ...['profile', 'image_size', 'crop', 'resize', 'intensity', 'grey', 'batch_size', 'grad_accum'],
      ...['learning_rate', 'dropout', 'drop_connect', 'bn_momentum', 'width', 'depth', 'rotation', 'flip'],
      ...[
        'zoom',
        'shift',
        'stretch',
        'gamma',
        'contrast',
        'degrade',
        'noise',
        'lr_schedule',
        'warmup_epochs',
      ],
      ...[
        'label_smoothing',
        'tta',
        'refit',
        'class_weights',
        'lr_factor',
        'lr_patience',
        'min_lr',
        'weights',
      ],
      ...['seed', 'grouping', 'validation_fraction'],
    ]);
    const set = trainingSettings(
      parseHyperparameters({ profile: 'full', remap: '0.5', ema_decay: '0.99', background: 'border' }),
    );
    expect(set).toMatchObject({ remap: 0.5, ema_decay: 0.99, background: 'border' });
  });
});
