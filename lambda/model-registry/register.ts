import {
  CreateModelPackageCommand,
  DescribeTrainingJobCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { z } from 'zod';
import { RECALL_LABELS } from '../../lib/training-metrics.ts';
import { type ApprovalStatus, decideApproval, evaluationFromMetrics, ThresholdsSchema } from './gate.ts';

/** One client per Lambda container; tests replace its `send` with aws-sdk-client-mock. */
export const sagemaker = new SageMakerClient({});

const EventSchema = z.object({ jobName: z.string().min(1) });
const EnvSchema = z.object({
  MODEL_PACKAGE_GROUP: z.string().min(1),
  APPROVAL_THRESHOLDS: z.string().transform((s, ctx) => {
    let json: unknown;
    try {
      json = JSON.parse(s);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'APPROVAL_THRESHOLDS is not JSON' });
      return z.NEVER;
    }
    const parsed = ThresholdsSchema.safeParse(json);
    if (!parsed.success) {
      ctx.addIssue({ code: 'custom', message: parsed.error.message });
      return z.NEVER;
    }
    return parsed.data;
  }),
});

export interface RegisterResult {
  modelPackageArn: string;
  approvalStatus: ApprovalStatus;
  reasons: string[];
}

/**
 * Step Functions task after a training job completed: registers its model in the model package
 * group with its Testing evaluation, Approved when the gate's thresholds hold, otherwise
 * PendingManualApproval. The job name is the idempotency token, so a retried task registers once.
 */
export async function handler(event: unknown): Promise<RegisterResult> {
  const { jobName } = EventSchema.parse(event);
  const env = EnvSchema.parse(process.env);
  const job = await sagemaker.send(new DescribeTrainingJobCommand({ TrainingJobName: jobName }));
  const modelDataUrl = job.ModelArtifacts?.S3ModelArtifacts;
  const image = job.AlgorithmSpecification?.TrainingImage;
  if (job.TrainingJobStatus !== 'Completed' || !modelDataUrl || !image) {
    throw new Error(
      `training job ${jobName} is ${job.TrainingJobStatus} without a model: nothing to register`,
    );
  }
  const evaluation = evaluationFromMetrics(job.FinalMetricDataList ?? [], RECALL_LABELS);
  const { status, reasons } = decideApproval(evaluation, env.APPROVAL_THRESHOLDS);
  const metadata: Record<string, string> = { trainingJobName: jobName };
  for (const [key, value] of Object.entries({
    testAccuracy: evaluation.accuracy,
    testBalancedAccuracy: evaluation.balancedAccuracy,
    testLeakFreeAccuracy: evaluation.leakFreeAccuracy,
    ...Object.fromEntries(Object.entries(evaluation.recall).map(([l, v]) => [`recall_${l}`, v])),
  })) {
    if (value !== undefined) metadata[key] = value.toFixed(4);
  }
  const created = await sagemaker.send(
    new CreateModelPackageCommand({
      ModelPackageGroupName: env.MODEL_PACKAGE_GROUP,
      ModelPackageDescription: (status === 'Approved'
        ? `Approved by the gate (training job ${jobName})`
        : `Needs a person: ${reasons.join('; ')}`
      ).slice(0, 1024),
      ModelApprovalStatus: status,
      ClientToken: jobName,
      InferenceSpecification: {
        Containers: [{ Image: image, ModelDataUrl: modelDataUrl }],
        SupportedContentTypes: ['application/json', 'image/jpeg', 'image/png'],
        SupportedResponseMIMETypes: ['application/json'],
      },
      CustomerMetadataProperties: metadata,
    }),
  );
  if (!created.ModelPackageArn) throw new Error('CreateModelPackage returned no ARN');
  console.log(
    JSON.stringify({
      message: 'model registered',
      jobName,
      modelPackageArn: created.ModelPackageArn,
      status,
      reasons,
    }),
  );
  return { modelPackageArn: created.ModelPackageArn, approvalStatus: status, reasons };
}
