import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { handler } from '../../lambda/training-pipeline/start.ts';

const sfn = mockClient(SFNClient);
const log = vi.spyOn(console, 'log').mockImplementation(() => {});
afterAll(() => log.mockRestore());
beforeEach(() => sfn.reset());

const MACHINE = 'arn:aws:states:eu-west-1:1:stateMachine:train';
const base = {
  ServiceToken: 'arn:aws:lambda:eu-west-1:1:function:provider',
  ResponseURL: 'https://example.com',
  StackId: 'arn:aws:cloudformation:eu-west-1:1:stack/s/1',
  RequestId: 'r1',
  LogicalResourceId: 'Training',
  ResourceType: 'Custom::TrainingExecution',
};
const event = (type: 'Create' | 'Update' | 'Delete', jobName: string, physical?: string) =>
  ({
    ...base,
    RequestType: type,
    ...(physical ? { PhysicalResourceId: physical } : {}),
    ResourceProperties: { ServiceToken: base.ServiceToken, StateMachineArn: MACHINE, JobName: jobName },
  }) as CloudFormationCustomResourceEvent;

describe('training start custom resource', () => {
  it('starts an execution named after the job and returns without waiting', async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn: `${MACHINE}:stack-abc` });
    const result = await handler(event('Create', 'stack-abc'));
    expect(result).toEqual({
      PhysicalResourceId: 'stack-abc',
      Data: { ExecutionArn: 'arn:aws:states:eu-west-1:1:execution:train:stack-abc' },
    });
    expect(sfn.commandCalls(StartExecutionCommand)[0].args[0].input).toEqual({
      stateMachineArn: MACHINE,
      name: 'stack-abc',
      input: JSON.stringify({ jobName: 'stack-abc' }),
    });
  });

  it('reuses an execution that already exists (unchanged inputs, retried event)', async () => {
    sfn.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
    await expect(handler(event('Update', 'stack-abc', 'stack-abc'))).resolves.toMatchObject({
      PhysicalResourceId: 'stack-abc',
    });
  });

  it('stops a superseded execution only while it runs', async () => {
    sfn.on(DescribeExecutionCommand).resolves({ status: 'RUNNING' } as never);
    await handler(event('Delete', 'stack-new', 'stack-old'));
    expect(sfn.commandCalls(StopExecutionCommand)[0].args[0].input.executionArn).toBe(
      'arn:aws:states:eu-west-1:1:execution:train:stack-old',
    );
    sfn.reset();
    sfn.on(DescribeExecutionCommand).resolves({ status: 'SUCCEEDED' } as never);
    await handler(event('Delete', 'stack-new', 'stack-old'));
    expect(sfn.commandCalls(StopExecutionCommand)).toHaveLength(0);
  });

  it('refuses a malformed job name', async () => {
    await expect(handler(event('Create', 'bad name!'))).rejects.toThrow(/not a valid training job name/);
  });
});
