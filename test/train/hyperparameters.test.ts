import { describe, expect, it } from 'vitest';
import {
  BASE_DEFAULTS,
  HyperparameterError,
  PROFILE_VALUES,
  parseHyperparameters,
} from '../../training-container/src/train/hyperparameters.ts';

describe('parseHyperparameters', () => {
  it('parses SageMaker string values and applies the full profile by default', () => {
    const hp = parseHyperparameters({ epochs: '7', learning_rate: '3e-4', flip: 'false', engine: 'wasm' });
    expect(hp).toMatchObject({
      profile: 'full',
      epochs: 7,
      learning_rate: 3e-4,
      flip: false,
      engine: 'wasm',
    });
    expect(hp.image_size).toBe(Number(BASE_DEFAULTS.image_size));
    expect(hp.validation_fraction).toBe(0.2);
  });

  it('lets any hyperparameter override the profile', () => {
    const quick = parseHyperparameters({ profile: 'quick' });
    expect(quick.image_size).toBe(Number(PROFILE_VALUES.quick.image_size));
    expect(quick.image_size).not.toBe(224);
    expect(parseHyperparameters({ profile: 'quick', image_size: '96' }).image_size).toBe(96);
  });

  it('cpu-full is the quick recipe for the hour: 50 epochs on all images within a 58-minute limit, with photometric augmentation and remap', () => {
    const quick = parseHyperparameters({ profile: 'quick' });
    const full = parseHyperparameters({ profile: 'cpu-full' });
    const photometric = { gamma: 0.25, contrast: 0.2, degrade: 0.2, noise: 3, stretch: 0.1, remap: 0.25 };
    expect({
      ...full,
      profile: 'quick',
      epochs: quick.epochs,
      time_limit_minutes: quick.time_limit_minutes,
      ...Object.fromEntries(Object.keys(photometric).map((k) => [k, quick[k as keyof typeof quick]])),
    }).toEqual(quick);
    expect(full).toMatchObject({
      epochs: 50,
      time_limit_minutes: 58,
      validation_fraction: 0,
      ...photometric,
    });
    expect(quick).toMatchObject({
      gamma: 0,
      contrast: 0,
      degrade: 0,
      noise: 0,
      stretch: 0,
      remap: 0,
      validation_fraction: 0,
    });
  });

  it('refuses refit without the cosine schedule, whose length does not depend on validation', () => {
    expect(() => parseHyperparameters({ refit: 'true', lr_schedule: 'plateau' })).toThrow(
      /"refit": needs lr_schedule=cosine/,
    );
    expect(parseHyperparameters({ refit: 'true', lr_schedule: 'cosine' }).refit).toBe(true);
  });

  it('takes validation_fraction=0 (train on everything) only with a cosine schedule and no refit', () => {
    expect(
      parseHyperparameters({ validation_fraction: '0', lr_schedule: 'cosine' }).validation_fraction,
    ).toBe(0);
    expect(() => parseHyperparameters({ validation_fraction: '0', lr_schedule: 'plateau' })).toThrow(
      /"validation_fraction": 0 needs lr_schedule=cosine/,
    );
    expect(() =>
      parseHyperparameters({ validation_fraction: '0', lr_schedule: 'cosine', refit: 'true' }),
    ).toThrow(/"refit": true needs a validation run/);
    expect(() => parseHyperparameters({ validation_fraction: '0.005' })).toThrow(
      /"validation_fraction": expected 0 \(train on everything\) or 0.01-0.9/,
    );
  });

  it('accepts plain JSON numbers and booleans and ignores SageMaker-added keys', () => {
    const hp = parseHyperparameters({
      epochs: 3,
      class_weights: false,
      sagemaker_program: 'x',
      _tuning: 'y',
    });
    expect(hp.epochs).toBe(3);
    expect(hp.class_weights).toBe(false);
  });

  it.each([
    [{ epochs: 'abc' }, /"epochs": expected an integer, got "abc"/],
    [{ epochs: '0' }, /"epochs".*>=1/],
    [{ image_size: '1.5' }, /"image_size": expected an integer/],
    [{ learning_rate: '-1' }, /"learning_rate"/],
    [{ flip: 'maybe' }, /"flip": expected true or false/],
    [{ engine: 'gpu' }, /"engine": expected one of auto, wasm/],
    [{ profile: 'fast' }, /"profile": expected one of quick, cpu-full, full/],
    [{ epoch: '3' }, /unknown hyperparameter "epoch"/],
    [{ validation_fraction: '' }, /"validation_fraction": expected a number/],
  ])('rejects %j with a clear message', (raw, message) => {
    expect(() => parseHyperparameters(raw)).toThrow(HyperparameterError);
    expect(() => parseHyperparameters(raw)).toThrow(message);
  });

  it('reports every problem at once', () => {
    const call = () => parseHyperparameters({ epochs: 'x', batch_size: '0' });
    expect(call).toThrow(/"epochs": expected an integer/);
    expect(call).toThrow(/"batch_size": .*>=1/);
  });
});
