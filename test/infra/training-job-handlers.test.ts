import {
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  type DescribeTrainingJobCommandOutput,
  SageMakerClient,
  StopTrainingJobCommand,
} from '@aws-sdk/client-sagemaker';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { handler as isComplete } from '../../lambda/training-job/is-complete.ts';
import { handler as onEvent } from '../../lambda/training-job/on-event.ts';

const sagemaker = mockClient(SageMakerClient);
const log = vi.spyOn(console, 'log').mockImplementation(() => {});
afterAll(() => log.mockRestore());

function request(name: string, dataPrefix = 'datasets/aaaa/') {
  return {
    TrainingJobName: name,
    RoleArn: 'arn:aws:iam::123456789012:role/job',
    AlgorithmSpecification: { TrainingImage: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/repo:tag' },
    InputDataConfig: [
      {
        ChannelName: 'train',
        DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `s3://bucket/${dataPrefix}Training/` } },
      },
    ],
    OutputDataConfig: { S3OutputPath: 's3://bucket/models/' },
    ResourceConfig: { InstanceType: 'ml.g4dn.xlarge', InstanceCount: 1, VolumeSizeInGB: 30 },
    StoppingCondition: { MaxRuntimeInSeconds: 3600, MaxWaitTimeInSeconds: 3600 },
    EnableManagedSpotTraining: true,
  };
}

const base = {
  ServiceToken: 'arn:aws:lambda:eu-west-1:123456789012:function:provider',
  ResponseURL: 'https://example.com',
  StackId: 'arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1',
  RequestId: 'r1',
  LogicalResourceId: 'Training',
  ResourceType: 'Custom::SageMakerTrainingJob',
};

function createEvent(req: object): CloudFormationCustomResourceEvent {
  return {
    ...base,
    RequestType: 'Create',
    ResourceProperties: { ServiceToken: base.ServiceToken, Request: JSON.stringify(req) },
  };
}

function updateEvent(req: object, oldReq: object, physicalId: string): CloudFormationCustomResourceEvent {
  return {
    ...base,
    RequestType: 'Update',
    PhysicalResourceId: physicalId,
    ResourceProperties: { ServiceToken: base.ServiceToken, Request: JSON.stringify(req) },
    OldResourceProperties: { ServiceToken: base.ServiceToken, Request: JSON.stringify(oldReq) },
  };
}

function deleteEvent(physicalId: string): CloudFormationCustomResourceEvent {
  return {
    ...base,
    RequestType: 'Delete',
    PhysicalResourceId: physicalId,
    ResourceProperties: { ServiceToken: base.ServiceToken, Request: JSON.stringify(request(physicalId)) },
  };
}

const notFound = Object.assign(new Error('Requested resource not found.'), { name: 'ValidationException' });

function job(status: string, extra: Partial<DescribeTrainingJobCommandOutput> = {}) {
  return {
    TrainingJobName: 'job',
    TrainingJobArn: 'arn:aws:sagemaker:eu-west-1:123456789012:training-job/job',
    TrainingJobStatus: status,
    SecondaryStatus: status === 'Completed' ? 'Completed' : 'Training',
    ...extra,
  } as DescribeTrainingJobCommandOutput;
}

beforeEach(() => sagemaker.reset());

describe('onEvent', () => {
  it('creates the job on Create, with the request exactly as synthesized', async () => {
    sagemaker.on(DescribeTrainingJobCommand).rejects(notFound);
    sagemaker.on(CreateTrainingJobCommand).resolves({ TrainingJobArn: 'arn' });
    const res = await onEvent(createEvent(request('btd-1111')));
    expect(res).toEqual({ PhysicalResourceId: 'btd-1111', Data: { TrainingJobName: 'btd-1111' } });
    const calls = sagemaker.commandCalls(CreateTrainingJobCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.args[0].input).toEqual(request('btd-1111'));
  });

  it('reuses an existing job of the same name instead of starting a second one', async () => {
    sagemaker.on(DescribeTrainingJobCommand).resolves(job('Completed'));
    const res = await onEvent(createEvent(request('btd-1111')));
    expect(res.PhysicalResourceId).toBe('btd-1111');
    expect(sagemaker.commandCalls(CreateTrainingJobCommand)).toHaveLength(0);
  });

  it('treats a concurrent create of the same name as success', async () => {
    sagemaker.on(DescribeTrainingJobCommand).rejects(notFound);
    sagemaker
      .on(CreateTrainingJobCommand)
      .rejects(Object.assign(new Error('Training job names must be unique'), { name: 'ResourceInUse' }));
    await expect(onEvent(createEvent(request('btd-1111')))).resolves.toMatchObject({
      PhysicalResourceId: 'btd-1111',
    });
  });

  it('starts a new job under a new physical id when an update brings new data', async () => {
    sagemaker.on(DescribeTrainingJobCommand, { TrainingJobName: 'btd-2222' }).rejects(notFound);
    sagemaker.on(CreateTrainingJobCommand).resolves({ TrainingJobArn: 'arn' });
    const res = await onEvent(
      updateEvent(request('btd-2222', 'datasets/bbbb/'), request('btd-1111', 'datasets/aaaa/'), 'btd-1111'),
    );
    // A new physical id makes CloudFormation send Delete for the old job afterwards.
    expect(res.PhysicalResourceId).toBe('btd-2222');
    const input = sagemaker.commandCalls(CreateTrainingJobCommand)[0]?.args[0].input;
    expect(input?.TrainingJobName).toBe('btd-2222');
    expect(input?.InputDataConfig?.[0]?.DataSource?.S3DataSource?.S3Uri).toBe(
      's3://bucket/datasets/bbbb/Training/',
    );
  });

  it('rejects a malformed request before calling SageMaker', async () => {
    await expect(onEvent(createEvent({ ...request('bad name!') }))).rejects.toThrow(/TrainingJobName/);
    expect(sagemaker.calls()).toHaveLength(0);
  });

  it('passes SageMaker errors on (they fail the deploy)', async () => {
    sagemaker.on(DescribeTrainingJobCommand).rejects(notFound);
    sagemaker.on(CreateTrainingJobCommand).rejects(
      Object.assign(new Error('The account-level service limit is 0 Instances'), {
        name: 'ResourceLimitExceeded',
      }),
    );
    await expect(onEvent(createEvent(request('btd-1111')))).rejects.toThrow(/service limit/);
  });

  it('stops a running job on Delete and touches nothing else', async () => {
    sagemaker.on(DescribeTrainingJobCommand).resolves(job('InProgress'));
    sagemaker.on(StopTrainingJobCommand).resolves({});
    const res = await onEvent(deleteEvent('btd-1111'));
    expect(res.PhysicalResourceId).toBe('btd-1111');
    expect(sagemaker.commandCalls(StopTrainingJobCommand)[0]?.args[0].input).toEqual({
      TrainingJobName: 'btd-1111',
    });
    expect(sagemaker.calls().map((c) => c.args[0].constructor.name)).toEqual([
      'DescribeTrainingJobCommand',
      'StopTrainingJobCommand',
    ]);
  });

  it('leaves finished or unknown jobs alone on Delete (model artifacts stay in S3)', async () => {
    sagemaker.on(DescribeTrainingJobCommand).resolves(job('Completed'));
    await onEvent(deleteEvent('btd-1111'));
    sagemaker.reset();
    sagemaker.on(DescribeTrainingJobCommand).rejects(notFound);
    await onEvent(deleteEvent('btd-1111'));
    expect(sagemaker.commandCalls(StopTrainingJobCommand)).toHaveLength(0);
  });
});

describe('isComplete', () => {
  const poll = (physicalId: string, type: 'Create' | 'Delete' = 'Create') =>
    isComplete({
      ...createEvent(request(physicalId)),
      RequestType: type,
      PhysicalResourceId: physicalId,
    } as never);

  it('keeps waiting while the job runs', async () => {
    sagemaker.on(DescribeTrainingJobCommand).resolves(job('InProgress'));
    await expect(poll('btd-1111')).resolves.toEqual({ IsComplete: false });
  });

  it('reports the model artifact once the job completed', async () => {
    sagemaker.on(DescribeTrainingJobCommand).resolves(
      job('Completed', {
        ModelArtifacts: { S3ModelArtifacts: 's3://bucket/models/btd-1111/output/model.tar.gz' },
      }),
    );
    await expect(poll('btd-1111')).resolves.toEqual({
      IsComplete: true,
      Data: {
        TrainingJobName: 'btd-1111',
        TrainingJobArn: 'arn:aws:sagemaker:eu-west-1:123456789012:training-job/job',
        ModelDataUrl: 's3://bucket/models/btd-1111/output/model.tar.gz',
      },
    });
  });

  it("fails with the job's FailureReason", async () => {
    sagemaker
      .on(DescribeTrainingJobCommand)
      .resolves(
        job('Failed', { FailureReason: 'AlgorithmError: no images found under /opt/ml/input/data/train' }),
      );
    await expect(poll('btd-1111')).rejects.toThrow(
      'training job btd-1111 failed: AlgorithmError: no images found under /opt/ml/input/data/train',
    );
  });

  it('fails when the job was stopped, and when it does not exist', async () => {
    sagemaker
      .on(DescribeTrainingJobCommand)
      .resolves(job('Stopped', { FailureReason: 'MaxWaitTimeInSeconds exceeded' }));
    await expect(poll('btd-1111')).rejects.toThrow(/stopped: MaxWaitTimeInSeconds exceeded/);
    sagemaker.reset();
    sagemaker.on(DescribeTrainingJobCommand).rejects(notFound);
    await expect(poll('btd-1111')).rejects.toThrow(/does not exist/);
  });

  it('completes Delete at once', async () => {
    await expect(poll('btd-1111', 'Delete')).resolves.toEqual({ IsComplete: true });
    expect(sagemaker.calls()).toHaveLength(0);
  });
});
