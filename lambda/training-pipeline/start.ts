import {
  DescribeExecutionCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { z } from 'zod';

/** One client per Lambda container; tests replace its `send` with aws-sdk-client-mock. */
export const sfn = new SFNClient({});

const PropsSchema = z.object({
  StateMachineArn: z.string().startsWith('arn:'),
  JobName: z.string().regex(/^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/, 'not a valid training job name'),
});

export interface OnEventResponse {
  PhysicalResourceId: string;
  Data?: Record<string, string>;
}

/**
 * Custom resource (Provider onEvent) that starts the training state machine for the current
 * inputs and returns at once: `cdk deploy` never waits for training. The execution is named after
 * the job, so an execution that already exists (a redeploy, a retried event) is the same training
 * and is left alone. Delete, or an update to new inputs, stops the old execution if it is still
 * running (Step Functions then stops its SageMaker job); S3 objects and registered models stay.
 */
export async function handler(event: CloudFormationCustomResourceEvent): Promise<OnEventResponse> {
  const props = PropsSchema.parse(event.ResourceProperties);
  const executionArn = executionArnOf(
    props.StateMachineArn,
    event.RequestType === 'Delete' ? event.PhysicalResourceId : props.JobName,
  );
  if (event.RequestType === 'Delete') {
    await stopIfRunning(executionArn);
    return { PhysicalResourceId: event.PhysicalResourceId };
  }
  try {
    await sfn.send(
      new StartExecutionCommand({
        stateMachineArn: props.StateMachineArn,
        name: props.JobName,
        input: JSON.stringify({ jobName: props.JobName }),
      }),
    );
    console.log(JSON.stringify({ message: 'training started', executionArn }));
  } catch (err) {
    if ((err as { name?: string }).name !== 'ExecutionAlreadyExists') throw err;
    console.log(JSON.stringify({ message: 'training execution exists: reusing it', executionArn }));
  }
  return { PhysicalResourceId: props.JobName, Data: { ExecutionArn: executionArn } };
}

/** arn:...:stateMachine:NAME -> arn:...:execution:NAME:EXECUTION */
export function executionArnOf(stateMachineArn: string, name: string): string {
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
}

async function stopIfRunning(executionArn: string): Promise<void> {
  try {
    const { status } = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    if (status !== 'RUNNING') return;
  } catch (err) {
    if ((err as { name?: string }).name === 'ExecutionDoesNotExist') return;
    throw err;
  }
  await sfn.send(new StopExecutionCommand({ executionArn, cause: 'replaced or deleted by CloudFormation' }));
  console.log(JSON.stringify({ message: 'training execution stopped', executionArn }));
}
