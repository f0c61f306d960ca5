import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as tar from 'tar';
import { describe, expect, it } from 'vitest';
import { makeImageFolder, TINY } from './fixtures.ts';

const run = promisify(execFile);
const CLI = path.resolve('bin/brain-tumor.js');

describe('brain-tumor train / evaluate', () => {
  it('trains through the container entrypoint, packs model.tar.gz, and evaluates it', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bt-cli-'));
    const train = await makeImageFolder(6, { root: path.join(dir, 'train') });
    // Short folder names work as well as SARTAJ's.
    const test = await makeImageFolder(3, {
      root: path.join(dir, 'test'),
      seed: 3,
      folders: ['glioma_tumor', 'meningioma_tumor', 'no_tumor', 'pituitary_tumor'],
    });
    const sets = Object.entries({ ...TINY, epochs: '1' }).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
    const out = path.join(dir, 'out');
    const trained = await run(process.execPath, [
      CLI,
      'train',
      '--data',
      train,
      '--test',
      test,
      '--out',
      out,
      ...sets,
    ]);
    expect(trained.stdout).toMatch(/^epoch=1 /m);

    const entries: string[] = [];
    await tar.t({ file: path.join(out, 'model.tar.gz'), onReadEntry: (e) => entries.push(e.path) });
    expect(entries.sort()).toEqual(
      expect.arrayContaining([
        'model.json',
        'weights.bin',
        'preprocessing.json',
        'training-report.json',
        'split.json',
      ]),
    );
    expect(JSON.parse(await readFile(path.join(out, 'output/evaluation.json'), 'utf8')).overall.n).toBe(12);

    const json = path.join(dir, 'metrics.json');
    const evaluate = (...extra: string[]) =>
      run(process.execPath, [
        CLI,
        'evaluate',
        '--model',
        path.join(out, 'model.tar.gz'),
        '--data',
        test,
        ...extra,
        '--json',
        json,
        '--engine',
        'cpu',
      ]);
    const evaluated = await evaluate();
    expect(evaluated.stdout).toMatch(/balanced accuracy: +\d/);
    const metrics = JSON.parse(await readFile(json, 'utf8'));
    expect(Object.keys(metrics)).toEqual([
      'n',
      'accuracy',
      'balancedAccuracy',
      'perClass',
      'confusionMatrix',
    ]);
    expect(metrics.n).toBe(12);
    expect(Object.keys(metrics.perClass)).toEqual(['glioma', 'meningioma', 'notumor', 'pituitary']);
    expect(Object.keys(metrics.perClass.glioma)).toEqual(['precision', 'recall', 'f1', 'support']);
    expect(metrics.confusionMatrix.labels).toEqual(['glioma', 'meningioma', 'notumor', 'pituitary']);

    // With --train, the lookup baseline is printed and added beside the metrics, and both are
    // given again on the leak-free part: a planted copy of a training image is left out of it.
    const [firstTrain] = (await readdir(path.join(train, 'glioma_tumor'))).sort();
    await copyFile(
      path.join(train, 'glioma_tumor', firstTrain),
      path.join(test, 'glioma_tumor', `copy-${firstTrain}`),
    );
    const withTrain = await evaluate('--train', train);
    expect(withTrain.stdout).toMatch(/lookup baseline: +\d+\.\d% accuracy, \d+\.\d% balanced/);
    expect(withTrain.stdout).toMatch(/leak-free part: the 12 of 13 images with no copy in --train/);
    const withLookup = JSON.parse(await readFile(json, 'utf8'));
    expect(Object.keys(withLookup)).toEqual([...Object.keys(metrics), 'lookupBaseline', 'leakFree']);
    expect(withLookup.n).toBe(13);
    expect(Object.keys(withLookup.lookupBaseline)).toEqual(['accuracy', 'balancedAccuracy']);
    for (const v of Object.values(withLookup.lookupBaseline) as number[]) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
    // The leak-free part is the original 12 images: the same scores as without the copy.
    expect(withLookup.leakFree).toMatchObject({
      n: 12,
      accuracy: metrics.accuracy,
      confusionMatrix: metrics.confusionMatrix,
      lookupBaseline: { accuracy: expect.any(Number), balancedAccuracy: expect.any(Number) },
    });
    expect(withLookup.leakFree.grouping).toMatch(/audit/);

    // Scored against itself, every image has a copy: no leak-free score, rather than a 0 % one.
    const againstItself = await evaluate('--train', test);
    expect(againstItself.stdout).toMatch(/leak-free part: none, every image has a copy in --train/);
    expect(againstItself.stdout).not.toMatch(/the 0 of/);
    expect(JSON.parse(await readFile(json, 'utf8')).leakFree).toEqual({
      n: 0,
      grouping: expect.stringMatching(/audit/),
    });
  });

  it('rejects bad input with one clear line and exit 1', async () => {
    const bad = run(process.execPath, [CLI, 'train', '--data', '/nonexistent', '--out', os.tmpdir()]);
    await expect(bad).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/^brain-tumor: error: --data/),
    });
    const typo = run(process.execPath, [
      CLI,
      'train',
      '--data',
      os.tmpdir(),
      '--out',
      os.tmpdir(),
      '--set',
      'epoch=3',
    ]);
    await expect(typo).rejects.toMatchObject({
      stderr: expect.stringMatching(/unknown hyperparameter "epoch"/),
    });
  });
});
