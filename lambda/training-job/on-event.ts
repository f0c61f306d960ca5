import { CreateTrainingJobCommand, StopTrainingJobCommand } from '@aws-sdk/client-sagemaker';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { parseRequest } from './request.ts';
import { describeJob, isNotFound, sagemaker } from './sagemaker.ts';

export interface OnEventResponse {
  PhysicalResourceId: string;
  Data?: Record<string, string>;
}

/**
 * Starts the training job (Provider framework onEvent; isComplete then waits for it).
 * The job name is derived from its inputs, so an existing job with that name is the same job:
 * it is reused, never started twice. Delete stops a job still running and leaves every S3
 * object (model artifacts, checkpoints) in place.
 */
export async function handler(event: CloudFormationCustomResourceEvent): Promise<OnEventResponse> {
  if (event.RequestType === 'Delete') {
    await stopIfRunning(event.PhysicalResourceId);
    return { PhysicalResourceId: event.PhysicalResourceId };
  }
  const request = parseRequest(event.ResourceProperties);
  const name = request.TrainingJobName as string;
  const existing = await describeJob(name);
  if (existing) {
    console.log(`training job ${name} already exists (${existing.TrainingJobStatus}): reusing it`);
  } else {
    try {
      await sagemaker.send(new CreateTrainingJobCommand(request));
      console.log(`started training job ${name}`);
    } catch (err) {
      // A concurrent retry of this same event may have created it a moment ago.
      if ((err as { name?: string }).name !== 'ResourceInUse') throw err;
    }
  }
  return { PhysicalResourceId: name, Data: { TrainingJobName: name } };
}

async function stopIfRunning(name: string): Promise<void> {
  let job: Awaited<ReturnType<typeof describeJob>>;
  try {
    job = await describeJob(name);
  } catch (err) {
    // A failed create can leave a physical id that is not a job name; there is nothing to stop.
    if ((err as { name?: string }).name === 'ValidationException') return;
    throw err;
  }
  if (job?.TrainingJobStatus !== 'InProgress') return;
  try {
    await sagemaker.send(new StopTrainingJobCommand({ TrainingJobName: name }));
    console.log(`stopped training job ${name}; its S3 output is kept`);
  } catch (err) {
    if (!isNotFound(err) && (err as { name?: string }).name !== 'ValidationException') throw err;
  }
}
