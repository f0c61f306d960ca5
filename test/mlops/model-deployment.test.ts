import {
  CreateEndpointConfigCommand,
  CreateModelCommand,
  DeleteEndpointCommand,
  DeleteEndpointConfigCommand,
  DeleteModelCommand,
  DeleteModelPackageCommand,
  DescribeEndpointCommand,
  DescribeEndpointConfigCommand,
  DescribeModelCommand,
  DescribeModelPackageCommand,
  ListEndpointConfigsCommand,
  ListModelPackagesCommand,
  ListModelsCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { handler as lifecycle } from '../../lambda/model-deployment/lifecycle.ts';
import { handler as prepare } from '../../lambda/model-deployment/prepare.ts';

const sagemaker = mockClient(SageMakerClient);
const sfn = mockClient(SFNClient);
const log = vi.spyOn(console, 'log').mockImplementation(() => {});
afterAll(() => log.mockRestore());

const notFound = () =>
  Object.assign(new Error('Could not find endpoint "x".'), { name: 'ValidationException' });
const PACKAGE = 'arn:aws:sagemaker:eu-west-1:1:model-package/stack-models/7';

beforeEach(() => {
  sagemaker.reset();
  sfn.reset();
  Object.assign(process.env, {
    MODEL_PACKAGE_GROUP: 'stack-models',
    ENDPOINT_NAME: 'stack-endpoint',
    NAME_PREFIX: 'stack',
    IMAGE_URI: '1.dkr.ecr.eu-west-1.amazonaws.com/repo:serve2',
    MODEL_ROLE_ARN: 'arn:aws:iam::1:role/model',
    VARIANT_NAME: 'AllTraffic',
    INSTANCE_TYPE: 'ml.c5.xlarge',
    INITIAL_INSTANCES: '1',
    DATA_CAPTURE: '',
  });
  sagemaker.on(ListModelPackagesCommand).resolves({
    ModelPackageSummaryList: [{ ModelPackageArn: PACKAGE } as never],
  });
  sagemaker.on(DescribeModelPackageCommand).resolves({
    ModelPackageVersion: 7,
    InferenceSpecification: {
      Containers: [{ Image: 'old-training-image', ModelDataUrl: 's3://b/models/job/output/model.tar.gz' }],
    },
  } as never);
  sagemaker.on(DescribeModelCommand).rejects(notFound());
  sagemaker.on(DescribeEndpointConfigCommand).rejects(notFound());
});

describe('deployment: prepare', () => {
  it('does nothing while no package is approved', async () => {
    sagemaker.on(ListModelPackagesCommand).resolves({ ModelPackageSummaryList: [] });
    const result = await prepare();
    expect(result).toMatchObject({ action: 'none', reason: 'no Approved model package in stack-models' });
    expect(sagemaker.commandCalls(CreateModelCommand)).toHaveLength(0);
    const list = sagemaker.commandCalls(ListModelPackagesCommand)[0].args[0].input;
    expect(list).toMatchObject({
      ModelApprovalStatus: 'Approved',
      SortBy: 'CreationTime',
      SortOrder: 'Descending',
    });
  });

  it('creates the endpoint from the latest approved package, served by the current image', async () => {
    sagemaker.on(DescribeEndpointCommand).rejects(notFound());
    const result = await prepare();
    expect(result.action).toBe('create');
    expect(result.endpointConfigName).toMatch(/^stack-v7-[0-9a-f]{10}$/);
    const model = sagemaker.commandCalls(CreateModelCommand)[0].args[0].input;
    expect(model).toMatchObject({
      ModelName: result.endpointConfigName,
      ExecutionRoleArn: 'arn:aws:iam::1:role/model',
      PrimaryContainer: {
        Image: '1.dkr.ecr.eu-west-1.amazonaws.com/repo:serve2',
        ModelDataUrl: 's3://b/models/job/output/model.tar.gz',
      },
      EnableNetworkIsolation: true,
    });
    const config = sagemaker.commandCalls(CreateEndpointConfigCommand)[0].args[0].input;
    expect(config.ProductionVariants).toEqual([
      expect.objectContaining({
        VariantName: 'AllTraffic',
        InstanceType: 'ml.c5.xlarge',
        InitialInstanceCount: 1,
      }),
    ]);
  });

  it('updates an endpoint on another config, and flags an instance-type change for autoscaling', async () => {
    sagemaker
      .on(DescribeEndpointCommand)
      .resolves({ EndpointStatus: 'InService', EndpointConfigName: 'stack-v6-aaaa' });
    sagemaker.on(DescribeEndpointConfigCommand, { EndpointConfigName: 'stack-v6-aaaa' }).resolves({
      ProductionVariants: [{ VariantName: 'AllTraffic', InstanceType: 'ml.c5.xlarge' } as never],
    });
    expect(await prepare()).toMatchObject({
      action: 'update',
      instanceTypeChanged: false,
      modelPackageArn: PACKAGE,
    });
    process.env.INSTANCE_TYPE = 'ml.g4dn.xlarge';
    expect(await prepare()).toMatchObject({ action: 'update', instanceTypeChanged: true });
  });

  it('reuses what exists: an endpoint already on this config needs nothing, and nothing is created twice', async () => {
    sagemaker.on(DescribeEndpointCommand).rejects(notFound());
    const first = await prepare();
    sagemaker.reset();
    sagemaker
      .on(ListModelPackagesCommand)
      .resolves({ ModelPackageSummaryList: [{ ModelPackageArn: PACKAGE } as never] });
    sagemaker.on(DescribeModelPackageCommand).resolves({
      ModelPackageVersion: 7,
      InferenceSpecification: {
        Containers: [{ Image: 'x', ModelDataUrl: 's3://b/models/job/output/model.tar.gz' }],
      },
    } as never);
    sagemaker.on(DescribeModelCommand).resolves({});
    sagemaker.on(DescribeEndpointConfigCommand).resolves({});
    sagemaker
      .on(DescribeEndpointCommand)
      .resolves({ EndpointStatus: 'InService', EndpointConfigName: first.endpointConfigName });
    expect(await prepare()).toMatchObject({ action: 'none', endpointConfigName: first.endpointConfigName });
    expect(sagemaker.commandCalls(CreateModelCommand)).toHaveLength(0);
    expect(sagemaker.commandCalls(CreateEndpointConfigCommand)).toHaveLength(0);
  });

  it('asks to be retried while the endpoint is busy, and stops on a failed endpoint', async () => {
    sagemaker
      .on(DescribeEndpointCommand)
      .resolves({ EndpointStatus: 'Updating', EndpointConfigName: 'stack-v6-aaaa' });
    await expect(prepare()).rejects.toMatchObject({ name: 'EndpointBusy' });
    sagemaker.on(DescribeEndpointCommand).resolves({ EndpointStatus: 'Failed', FailureReason: 'image pull' });
    await expect(prepare()).rejects.toThrow(/Failed \(image pull\)/);
  });
});

const base = {
  ServiceToken: 'arn:aws:lambda:eu-west-1:1:function:provider',
  ResponseURL: 'https://example.com',
  StackId: 'arn:aws:cloudformation:eu-west-1:1:stack/s/1',
  RequestId: 'r1',
  LogicalResourceId: 'Endpoint',
  ResourceType: 'Custom::ModelEndpoint',
};
const props = (deletePackages: boolean) => ({
  ServiceToken: base.ServiceToken,
  StateMachineArn: 'arn:aws:states:eu-west-1:1:stateMachine:deploy',
  EndpointName: 'stack-endpoint',
  NamePrefix: 'stack',
  ModelPackageGroup: 'stack-models',
  DeletePackages: String(deletePackages),
  Settings: 'abc',
});

describe('deployment: lifecycle custom resource', () => {
  it('starts a deployment on create and update', async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn: 'arn:exec' });
    const event = {
      ...base,
      RequestType: 'Create',
      ResourceProperties: props(false),
    } as CloudFormationCustomResourceEvent;
    expect(await lifecycle(event)).toEqual({ PhysicalResourceId: 'stack-endpoint' });
    expect(sfn.commandCalls(StartExecutionCommand)[0].args[0].input.stateMachineArn).toBe(
      'arn:aws:states:eu-west-1:1:stateMachine:deploy',
    );
    expect(sagemaker.calls()).toHaveLength(0);
  });

  it("on delete removes the endpoint and only this stack's models and configs; packages only in the dev setting", async () => {
    sagemaker.on(ListEndpointConfigsCommand).resolves({
      EndpointConfigs: [
        { EndpointConfigName: 'stack-v7-abc' },
        { EndpointConfigName: 'stack-other-thing' },
      ] as never,
    });
    sagemaker.on(ListModelsCommand).resolves({
      Models: [{ ModelName: 'stack-v7-abc' }, { ModelName: 'stackx-v1-abc' }] as never,
    });
    sagemaker
      .on(ListModelPackagesCommand)
      .resolves({ ModelPackageSummaryList: [{ ModelPackageArn: PACKAGE }] as never });
    const event = {
      ...base,
      RequestType: 'Delete',
      PhysicalResourceId: 'stack-endpoint',
      ResourceProperties: props(false),
    } as CloudFormationCustomResourceEvent;
    await lifecycle(event);
    expect(sagemaker.commandCalls(DeleteEndpointCommand)[0].args[0].input).toEqual({
      EndpointName: 'stack-endpoint',
    });
    expect(
      sagemaker.commandCalls(DeleteEndpointConfigCommand).map((c) => c.args[0].input.EndpointConfigName),
    ).toEqual(['stack-v7-abc']);
    expect(sagemaker.commandCalls(DeleteModelCommand).map((c) => c.args[0].input.ModelName)).toEqual([
      'stack-v7-abc',
    ]);
    expect(sagemaker.commandCalls(DeleteModelPackageCommand)).toHaveLength(0);

    await lifecycle({ ...event, ResourceProperties: props(true) } as CloudFormationCustomResourceEvent);
    expect(
      sagemaker.commandCalls(DeleteModelPackageCommand).map((c) => c.args[0].input.ModelPackageName),
    ).toEqual([PACKAGE]);
  });

  it('deletes cleanly when no endpoint was ever created', async () => {
    sagemaker.on(DeleteEndpointCommand).rejects(notFound());
    sagemaker.on(ListEndpointConfigsCommand).resolves({ EndpointConfigs: [] });
    sagemaker.on(ListModelsCommand).resolves({ Models: [] });
    const event = {
      ...base,
      RequestType: 'Delete',
      PhysicalResourceId: 'stack-endpoint',
      ResourceProperties: props(false),
    } as CloudFormationCustomResourceEvent;
    await expect(lifecycle(event)).resolves.toEqual({ PhysicalResourceId: 'stack-endpoint' });
  });
});
