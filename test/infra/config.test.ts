import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_DATASET_PATH, parseConfig, REPO_ROOT } from '../../lib/config.ts';

describe('parseConfig', () => {
  it('gives the documented defaults for an empty context', () => {
    const config = parseConfig({});
    expect(config).toMatchObject({
      stackName: 'BrainTumorDetection',
      trainingInstanceType: 'ml.g4dn.xlarge',
      trainingMaxRuntimeMinutes: 180,
      trainingUseSpot: true,
      trainingMaxWaitMinutes: 360,
      approvalMinAccuracy: 0.8,
      approvalMinLeakFreeAccuracy: 0.4,
      approvalMinClassRecall: 0.5,
      trainingHyperparameters: { profile: 'full' },
      endpointInstanceType: 'ml.c5.xlarge',
      endpointMinInstances: 1,
      endpointMaxInstances: 2,
      apiAuth: 'apiKey',
      apiRateLimit: 10,
      apiBurstLimit: 20,
      apiIntegrationTimeoutSeconds: 29,
      bucketRemovalPolicy: 'retain',
      dataCapture: false,
      datasetIsDefault: true,
    });
    expect(config.datasetDir).toBe(path.resolve(REPO_ROOT, DEFAULT_DATASET_PATH));
    expect(config.alarmEmail).toBeUndefined();
  });

  it('accepts the strings `-c key=value` gives and ignores CDK feature flags', () => {
    const config = parseConfig({
      '@aws-cdk/core:checkSecretUsage': true,
      'aws:cdk:enable-path-metadata': true,
      trainingUseSpot: 'false',
      trainingMaxRuntimeMinutes: '30',
      trainingHyperparameters: '{"profile":"quick","epochs":3,"mixed":true}',
      corsAllowOrigins: 'https://a.example,https://b.example',
      datasetPath: '/data/mri',
      alarmEmail: 'ops@example.com',
    });
    expect(config.trainingUseSpot).toBe(false);
    expect(config.trainingMaxRuntimeMinutes).toBe(30);
    // SageMaker hyperparameters are strings.
    expect(config.trainingHyperparameters).toEqual({ profile: 'quick', epochs: '3', mixed: 'true' });
    expect(config.corsAllowOrigins).toEqual(['https://a.example', 'https://b.example']);
    expect(config.datasetDir).toBe('/data/mri');
    expect(config.datasetIsDefault).toBe(false);
  });

  it('lists every bad key in one error, unknown keys included', () => {
    let message = '';
    try {
      parseConfig({
        trainingInstancetype: 'ml.p3.2xlarge',
        trainingMaxRuntimeMinutes: 5,
        approvalMinAccuracy: 80,
        apiAuth: 'none',
        apiIntegrationTimeoutSeconds: 30,
        alarmEmail: 'not-an-email',
      });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^invalid CDK context/);
    for (const key of [
      'trainingInstancetype: unknown context key',
      'trainingMaxRuntimeMinutes:',
      'approvalMinAccuracy:',
      'apiAuth:',
      'apiIntegrationTimeoutSeconds:',
      'alarmEmail:',
    ]) {
      expect(message).toContain(key);
    }
  });

  it('refuses a spot wait shorter than the run time and min > max instances', () => {
    expect(() => parseConfig({ trainingMaxRuntimeMinutes: 240, trainingMaxWaitMinutes: 200 })).toThrow(
      /trainingMaxWaitMinutes: must be >= trainingMaxRuntimeMinutes/,
    );
    expect(() => parseConfig({ endpointMinInstances: 3, endpointMaxInstances: 2 })).toThrow(
      /endpointMaxInstances: must be >= endpointMinInstances/,
    );
    // Without spot the wait is irrelevant.
    expect(parseConfig({ trainingUseSpot: false, trainingMaxWaitMinutes: 10 }).trainingUseSpot).toBe(false);
  });
});
