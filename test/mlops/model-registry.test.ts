import {
  CreateModelPackageCommand,
  DescribeTrainingJobCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  decideApproval,
  evaluationFromMetrics,
  evaluationFromReport,
} from '../../lambda/model-registry/gate.ts';
import { handler } from '../../lambda/model-registry/register.ts';
import { approvalLine } from '../../lib/pipeline/local.ts';
import { RECALL_LABELS } from '../../lib/training-metrics.ts';

const THRESHOLDS = { accuracy: 0.8, leakFreeAccuracy: 0.4, classRecall: 0.5 };
const sagemaker = mockClient(SageMakerClient);
const log = vi.spyOn(console, 'log').mockImplementation(() => {});
afterAll(() => log.mockRestore());

/** FinalMetricDataList as SageMaker returns it for the trainer's test lines. */
function metrics(accuracy: number, leakFree: number, recalls: number[]) {
  return [
    { MetricName: 'train:loss', Value: 0.1 },
    { MetricName: 'test:accuracy', Value: accuracy },
    { MetricName: 'test:balanced_accuracy', Value: accuracy - 0.01 },
    { MetricName: 'test:leak_free_accuracy', Value: leakFree },
    ...RECALL_LABELS.map((l, i) => ({ MetricName: `test:recall:${l}`, Value: recalls[i] })),
  ];
}

describe('approval gate', () => {
  it('approves only when accuracy, leak-free accuracy and every class recall reach the thresholds', () => {
    const good = evaluationFromMetrics(metrics(0.85, 0.5, [0.6, 0.9, 1, 0.8]), RECALL_LABELS);
    expect(decideApproval(good, THRESHOLDS)).toEqual({ status: 'Approved', reasons: [] });
    // Exactly at a threshold passes.
    const edge = evaluationFromMetrics(metrics(0.8, 0.4, [0.5, 0.5, 0.5, 0.5]), RECALL_LABELS);
    expect(decideApproval(edge, THRESHOLDS).status).toBe('Approved');
    const weakGlioma = evaluationFromMetrics(metrics(0.85, 0.5, [0.3, 0.9, 1, 0.8]), RECALL_LABELS);
    expect(decideApproval(weakGlioma, THRESHOLDS)).toEqual({
      status: 'PendingManualApproval',
      reasons: ['glioma recall 30.0% < 50.0%'],
    });
    const lowLeakFree = evaluationFromMetrics(metrics(0.9, 0.2, [0.6, 0.9, 1, 0.8]), RECALL_LABELS);
    expect(decideApproval(lowLeakFree, THRESHOLDS).reasons).toEqual(['leak-free accuracy 20.0% < 40.0%']);
  });

  it('never approves a model whose evaluation was not reported', () => {
    const none = evaluationFromMetrics([{ MetricName: 'train:loss', Value: 0.1 }], RECALL_LABELS);
    const decision = decideApproval(none, { accuracy: 0, leakFreeAccuracy: 0, classRecall: 0 });
    expect(decision.status).toBe('PendingManualApproval');
    expect(decision.reasons).toContain('Testing accuracy was not reported');
    expect(decision.reasons).toContain('pituitary recall was not reported');
  });
});

describe('local mode', () => {
  it("reads evaluation.json the way the registry reads SageMaker's metrics, and says what the gate would decide", () => {
    const report = {
      overall: {
        accuracy: 0.708,
        balancedAccuracy: 0.7,
        perClass: Object.fromEntries(
          RECALL_LABELS.map((l, i) => [l, { recall: [0.33, 0.79, 0.98, 0.7][i] }]),
        ),
      },
      leakFree: { accuracy: 0.259 },
    };
    expect(evaluationFromReport(report, RECALL_LABELS)).toEqual(
      evaluationFromMetrics(
        metrics(0.708, 0.259, [0.33, 0.79, 0.98, 0.7]).map((m) =>
          m.MetricName === 'test:balanced_accuracy' ? { ...m, Value: 0.7 } : m,
        ),
        RECALL_LABELS,
      ),
    );
    expect(approvalLine(report)).toBe(
      'approval gate (as the AWS model registry would decide): PendingManualApproval (Testing accuracy 70.8% < 80.0%; leak-free accuracy 25.9% < 40.0%; glioma recall 33.0% < 50.0%)',
    );
  });
});

describe('register handler', () => {
  beforeEach(() => {
    sagemaker.reset();
    process.env.MODEL_PACKAGE_GROUP = 'stack-models';
    process.env.APPROVAL_THRESHOLDS = JSON.stringify(THRESHOLDS);
    sagemaker.on(CreateModelPackageCommand).resolves({ ModelPackageArn: 'arn:pkg/stack-models/3' });
  });

  const job = (list: ReturnType<typeof metrics>, status = 'Completed') => ({
    TrainingJobStatus: status,
    ModelArtifacts: { S3ModelArtifacts: 's3://bucket/models/job-1/output/model.tar.gz' },
    AlgorithmSpecification: {
      TrainingImage: '1.dkr.ecr.eu-west-1.amazonaws.com/repo:tag',
      TrainingInputMode: 'File',
    },
    FinalMetricDataList: list,
  });

  it('registers a model that passes the gate as Approved, with its evaluation and the job as idempotency token', async () => {
    sagemaker.on(DescribeTrainingJobCommand).resolves(job(metrics(0.86, 0.45, [0.55, 0.9, 1, 0.8])) as never);
    const result = await handler({ jobName: 'job-1' });
    expect(result).toEqual({
      modelPackageArn: 'arn:pkg/stack-models/3',
      approvalStatus: 'Approved',
      reasons: [],
    });
    const input = sagemaker.commandCalls(CreateModelPackageCommand)[0].args[0].input;
    expect(input).toMatchObject({
      ModelPackageGroupName: 'stack-models',
      ModelApprovalStatus: 'Approved',
      ClientToken: 'job-1',
      InferenceSpecification: {
        Containers: [
          {
            Image: '1.dkr.ecr.eu-west-1.amazonaws.com/repo:tag',
            ModelDataUrl: 's3://bucket/models/job-1/output/model.tar.gz',
          },
        ],
      },
    });
    expect(input.CustomerMetadataProperties).toMatchObject({
      trainingJobName: 'job-1',
      testAccuracy: '0.8600',
      testLeakFreeAccuracy: '0.4500',
      recall_glioma: '0.5500',
    });
  });

  it('leaves a model below a threshold PendingManualApproval and says why', async () => {
    sagemaker
      .on(DescribeTrainingJobCommand)
      .resolves(job(metrics(0.6, 0.18, [0.24, 0.74, 0.96, 0.38])) as never);
    const result = await handler({ jobName: 'job-2' });
    expect(result.approvalStatus).toBe('PendingManualApproval');
    expect(result.reasons).toEqual([
      'Testing accuracy 60.0% < 80.0%',
      'leak-free accuracy 18.0% < 40.0%',
      'glioma recall 24.0% < 50.0%',
      'pituitary recall 38.0% < 50.0%',
    ]);
    const input = sagemaker.commandCalls(CreateModelPackageCommand)[0].args[0].input;
    expect(input.ModelApprovalStatus).toBe('PendingManualApproval');
    expect(input.ModelPackageDescription).toContain('glioma recall 24.0% < 50.0%');
  });

  it('refuses a job that did not complete, and a malformed event or environment', async () => {
    sagemaker
      .on(DescribeTrainingJobCommand)
      .resolves(job(metrics(0.9, 0.9, [1, 1, 1, 1]), 'Stopped') as never);
    await expect(handler({ jobName: 'job-3' })).rejects.toThrow(/Stopped without a model/);
    await expect(handler({})).rejects.toThrow();
    process.env.APPROVAL_THRESHOLDS = JSON.stringify({ accuracy: 2 });
    await expect(handler({ jobName: 'job-1' })).rejects.toThrow();
    expect(sagemaker.commandCalls(CreateModelPackageCommand)).toHaveLength(0);
  });
});
