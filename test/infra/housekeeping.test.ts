import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import cdkNag from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { vcpusOf } from '../../lib/alarms.ts';
import { BrainTumorStack } from '../../lib/brain-tumor-stack.ts';
import { parseConfig } from '../../lib/config.ts';
import { cdkJsonContext, type Synth, synth, tinyDataset } from './synth.ts';

/** What `cdk destroy` would leave behind: every log group, key and bucket not deleted with the stack. */
function survivors(template: Template): string[] {
  const left: string[] = [];
  for (const type of ['AWS::Logs::LogGroup', 'AWS::KMS::Key', 'AWS::S3::Bucket']) {
    for (const [id, r] of Object.entries(template.findResources(type))) {
      if (r.DeletionPolicy !== 'Delete' || r.UpdateReplacePolicy !== 'Delete') left.push(`${type} ${id}`);
    }
  }
  for (const [id, r] of Object.entries(template.findResources('Custom::LogRetention'))) {
    if (r.Properties.RemovalPolicy !== 'destroy') left.push(`Custom::LogRetention ${id}`);
  }
  return left;
}

describe('removalPolicy=destroy (the dev setting): cdk destroy leaves nothing behind', () => {
  let s: Synth;
  beforeAll(async () => {
    s = await synth({ datasetPath: await tinyDataset(), removalPolicy: 'destroy' });
  });

  it('every log group, KMS key and bucket has DeletionPolicy Delete; SageMaker log groups are deleted too', () => {
    expect(s.template.findResources('AWS::Logs::LogGroup')).not.toEqual({});
    expect(s.template.findResources('AWS::KMS::Key')).not.toEqual({});
    expect(survivors(s.template)).toEqual([]);
    const names = Object.values(s.template.findResources('Custom::LogRetention')).map(
      (r) => r.Properties.LogGroupName,
    );
    expect(names).toContain('/aws/sagemaker/TrainingJobs');
    expect(names.some((n) => JSON.stringify(n).includes('/aws/sagemaker/Endpoints/'))).toBe(true);
  });

  it('keys wait the shortest pending window; buckets are emptied before deletion', () => {
    for (const key of Object.values(s.template.findResources('AWS::KMS::Key'))) {
      expect(key.Properties.PendingWindowInDays).toBe(7);
    }
    const buckets = Object.keys(s.template.findResources('AWS::S3::Bucket'));
    const emptied = Object.values(s.template.findResources('Custom::S3AutoDeleteObjects')).map(
      (r) => r.Properties.BucketName.Ref,
    );
    expect(emptied.sort()).toEqual(buckets.sort());
  });

  it("every function logs to a group of its own (none to an auto-created /aws/lambda/...), the LogRetention handler's default group included", () => {
    for (const [id, fn] of Object.entries(s.template.findResources('AWS::Lambda::Function'))) {
      expect(fn.Properties.LoggingConfig?.LogGroup, id).toEqual({ Ref: expect.any(String) });
    }
    // aws-cdk-lib's LogRetention handler creates /aws/lambda/<its name> itself; it is named and deleted.
    const names = Object.values(s.template.findResources('Custom::LogRetention')).map(
      (r) => r.Properties.LogGroupName,
    );
    expect(names).toContain('/aws/lambda/BrainTumorDetection-log-retention');
  });

  it('stays cdk-nag clean', () => {
    expect(new cdkNag.AwsSolutionsChecks().validateScope(s.app).violations).toEqual([]);
  });
});

describe('removal settings without a dataset', () => {
  const build = async (context: Record<string, unknown>) => {
    const app = new App({ context: await cdkJsonContext() });
    const config = { ...parseConfig(context), datasetDir: '/nonexistent/dataset' };
    return { app, template: Template.fromStack(new BrainTumorStack(app, 'NoData', { config })) };
  };

  it('destroy: nothing survives; retain (the default): the bucket, its logs and the alarm key are kept', async () => {
    const dev = await build({ removalPolicy: 'destroy' });
    expect(survivors(dev.template)).toEqual([]);
    expect(new cdkNag.AwsSolutionsChecks().validateScope(dev.app).violations).toEqual([]);
    const kept = await build({});
    expect(survivors(kept.template).sort()).toEqual([
      expect.stringMatching(/^AWS::KMS::Key AlarmsTopicKey/),
      expect.stringMatching(/^AWS::S3::Bucket DataBucketAccessLogs/),
      expect.stringMatching(/^AWS::S3::Bucket DataBucket[0-9A-F]/),
    ]);
  });

  it('bucketRemovalPolicy follows removalPolicy unless set', () => {
    expect(parseConfig({}).bucketRemovalPolicy).toBe('retain');
    expect(parseConfig({ removalPolicy: 'destroy' }).bucketRemovalPolicy).toBe('destroy');
    expect(parseConfig({ removalPolicy: 'destroy', bucketRemovalPolicy: 'retain' }).bucketRemovalPolicy).toBe(
      'retain',
    );
    expect(parseConfig({ bucketRemovalPolicy: 'destroy' })).toMatchObject({
      bucketRemovalPolicy: 'destroy',
      removalPolicy: 'retain',
    });
  });
});

describe('vcpusOf (CPUUtilization is summed over vCPUs)', () => {
  it('derives vCPUs from the instance size', () => {
    expect(
      [
        'ml.t2.medium',
        'ml.c5.large',
        'ml.c5.xlarge',
        'ml.g4dn.2xlarge',
        'ml.p4d.24xlarge',
        'ml.c5.metal',
      ].map(vcpusOf),
    ).toEqual([2, 2, 4, 8, 96, undefined]);
  });
});
