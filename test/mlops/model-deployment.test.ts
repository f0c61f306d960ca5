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
    KMS_KEY_ARN: '',
    VPC_CONFIG: '',
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

  describe('strict configuration (KMS_KEY_ARN, VPC_CONFIG)', () => {
    const KEY = 'arn:aws:kms:eu-west-1:1:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const VPC = { Subnets: ['subnet-a', 'subnet-b'], SecurityGroupIds: ['sg-1'] };
    const CAPTURE = {
      EnableCapture: true,
      InitialSamplingPercentage: 20,
      DestinationS3Uri: 's3://b/data-capture/',
      CaptureOptions: [{ CaptureMode: 'Input' }, { CaptureMode: 'Output' }],
    };
    const created = () => ({
      model: sagemaker.commandCalls(CreateModelCommand)[0].args[0].input,
      config: sagemaker.commandCalls(CreateEndpointConfigCommand)[0].args[0].input,
    });
    beforeEach(() => {
      sagemaker.on(DescribeEndpointCommand).rejects(notFound());
    });

    it('without them: no key and no VPC in the requests', async () => {
      process.env.DATA_CAPTURE = JSON.stringify(CAPTURE);
      await prepare();
      const { model, config } = created();
      expect(model.VpcConfig).toBeUndefined();
      expect(config.KmsKeyId).toBeUndefined();
      expect(config.DataCaptureConfig).toEqual(CAPTURE);
    });

    it('the key encrypts the endpoint volume and the data capture; the model runs in the VPC', async () => {
      const plain = await prepare();
      sagemaker.resetHistory();
      Object.assign(process.env, {
        KMS_KEY_ARN: KEY,
        VPC_CONFIG: JSON.stringify(VPC),
        DATA_CAPTURE: JSON.stringify(CAPTURE),
      });
      const strict = await prepare();
      const { model, config } = created();
      expect(model).toMatchObject({ VpcConfig: VPC, EnableNetworkIsolation: true });
      expect(config.KmsKeyId).toBe(KEY);
      expect(config.DataCaptureConfig).toEqual({ ...CAPTURE, KmsKeyId: KEY });
      // Another model and config (not the plain ones reused): the settings digest covers them.
      expect(strict.endpointConfigName).not.toBe(plain.endpointConfigName);
    });

    it('leaves the volume key out for an instance type with local storage (SageMaker refuses it), not the capture key', async () => {
      Object.assign(process.env, {
        KMS_KEY_ARN: KEY,
        INSTANCE_TYPE: 'ml.g4dn.xlarge',
        DATA_CAPTURE: JSON.stringify(CAPTURE),
      });
      await prepare();
      const { config } = created();
      expect(config.KmsKeyId).toBeUndefined();
      expect(config.DataCaptureConfig?.KmsKeyId).toBe(KEY);
    });

    it('refuses a VPC_CONFIG without subnets or security groups', async () => {
      process.env.VPC_CONFIG = JSON.stringify({ Subnets: [], SecurityGroupIds: ['sg-1'] });
      await expect(prepare()).rejects.toThrow(/Subnets/);
      expect(sagemaker.commandCalls(CreateModelCommand)).toHaveLength(0);
    });
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
        { EndpointConfigName: 'stack-v7-0123456789' },
        { EndpointConfigName: 'stack-other-thing' },
        // Stack "stack-v2" deploys under this name: it starts with "stack-v" but is not ours.
        { EndpointConfigName: 'stack-v2-v3-0123456789' },
      ] as never,
    });
    sagemaker.on(ListModelsCommand).resolves({
      Models: [
        { ModelName: 'stack-v7-0123456789' },
        { ModelName: 'stackx-v1-0123456789' },
        { ModelName: 'stack-v2-v3-0123456789' },
      ] as never,
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
    ).toEqual(['stack-v7-0123456789']);
    expect(sagemaker.commandCalls(DeleteModelCommand).map((c) => c.args[0].input.ModelName)).toEqual([
      'stack-v7-0123456789',
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
