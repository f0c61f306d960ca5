import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { describeJob } from './sagemaker.ts';

export interface IsCompleteResponse {
  IsComplete: boolean;
  Data?: Record<string, string>;
}

type Event = CloudFormationCustomResourceEvent & { PhysicalResourceId?: string };

/**
 * Polled by the Provider framework until the job ends. A failed or stopped job throws, which
 * fails the deploy with the job's own FailureReason.
 */
export async function handler(event: Event): Promise<IsCompleteResponse> {
  if (event.RequestType === 'Delete') return { IsComplete: true };
  const name = event.PhysicalResourceId;
  if (!name) throw new Error('isComplete called without a PhysicalResourceId');
  const job = await describeJob(name);
  if (!job) throw new Error(`training job ${name} does not exist`);
  const status = job.TrainingJobStatus;
  console.log(`training job ${name}: ${status} / ${job.SecondaryStatus}`);
  switch (status) {
    case 'Completed': {
      const modelDataUrl = job.ModelArtifacts?.S3ModelArtifacts;
      if (!modelDataUrl) throw new Error(`training job ${name} completed without model artifacts`);
      return {
        IsComplete: true,
        Data: { TrainingJobName: name, TrainingJobArn: job.TrainingJobArn ?? '', ModelDataUrl: modelDataUrl },
      };
    }
    case 'Failed':
    case 'Stopped':
      throw new Error(
        `training job ${name} ${status.toLowerCase()}: ${job.FailureReason ?? 'no FailureReason given'}` +
          ' (fix the cause, then redeploy with a new trainingRevision to retry with unchanged inputs)',
      );
    default:
      return { IsComplete: false };
  }
}
