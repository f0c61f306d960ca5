import { createHash } from 'node:crypto';
import { ArnFormat, CustomResource, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Provider } from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { grantDataKeyToExecutionRole, grantKeyForAwsResources } from './encryption.ts';
import type { ModelRegistry } from './model-registry.ts';
import { arnRef, suppress } from './nag.ts';
import { grantSageMakerVpcAccess, type SageMakerNetwork } from './network.ts';
import { nodeFunction } from './node-function.ts';
import { suppressProviderFindings } from './provider-findings.ts';
import {
  grantSageMakerBasics,
  STAR_ONLY_ACTIONS_REASON,
  STAR_ONLY_ACTIONS_VPC_REASON,
} from './sagemaker-role.ts';

export interface ModelDeploymentProps {
  readonly bucket: s3.IBucket;
  /** The serving image: SageMaker starts it with `serve`. A new image rolls out the approved model again. */
  readonly image: ecrAssets.DockerImageAsset;
  readonly registry: ModelRegistry;
  /** Lower-case name prefix (at most 40 characters) for the endpoint, its models and configs. */
  readonly namePrefix: string;
  /** @default 'ml.c5.xlarge' */
  readonly instanceType?: string;
  /** @default 1 */
  readonly minInstances?: number;
  /** @default 2 */
  readonly maxInstances?: number;
  /** Target invocations per instance per minute for autoscaling. @default 100 */
  readonly targetInvocationsPerInstance?: number;
  /** Capture this percentage of requests/responses to `data-capture/`; off when undefined. @default undefined */
  readonly dataCaptureSamplePercent?: number;
  /** Share of the fleet that takes traffic first in a blue/green update. @default 10 */
  readonly canaryPercent?: number;
  /** How long the canary serves before the rest shifts, with the rollback alarms watching. @default 10 minutes */
  readonly canaryWait?: Duration;
  /** A rollback alarm fires when p90 model latency exceeds this. @default 2000 */
  readonly rollbackLatencyMs?: number;
  readonly logRetentionDays: number;
  /** DESTROY also deletes registered model packages on `cdk destroy`. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Customer-managed key (strict): the endpoint's storage volume (endpoint config `KmsKeyId`;
   * not on instance types with local storage) and data capture (`DataCaptureConfig.KmsKeyId`).
   * The Prepare Lambda gets it as KMS_KEY_ARN. @default AWS-managed
   */
  readonly encryptionKey?: kms.IKey;
  /** Run the model in these subnets with this security group (CreateModel `VpcConfig`, strict). @default no VPC */
  readonly network?: SageMakerNetwork;
}

/** Blue/green guardrails need the same variant name in the old and the new endpoint config. */
export const VARIANT_NAME = 'AllTraffic';
const DATA_CAPTURE_PREFIX = 'data-capture/';

/** How cdk-nag spells a SageMaker ARN of this account and region in a finding id. */
const nagArn = (resource: string, name: string) =>
  `Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:${resource}/${name}`;

/**
 * The real-time endpoint, deployed by a Step Functions state machine rather than by CloudFormation
 * (a stack cannot wait for a model that is trained and approved later):
 *
 * - it runs when a package in the registry changes approval (approve = deploy, reject = roll back
 *   to the latest package still approved) and when `cdk deploy` changes the image or settings;
 * - `Prepare` creates the model and endpoint config of the latest Approved package;
 * - a new endpoint is created; an existing one is updated blue/green (canary, then all) with
 *   automatic rollback on the 5xx and latency alarms, keeping the autoscaled instance count
 *   (`RetainAllVariantProperties`); an instance-type change first deregisters autoscaling, which
 *   SageMaker requires, and the variant keeps its name so the guardrails still apply;
 * - once InService on the new config, autoscaling is (re)registered.
 */
export class ModelDeployment extends Construct {
  readonly endpointName: string;
  readonly endpointArn: string;
  readonly variantName = VARIANT_NAME;
  /** The models' and endpoint configs' names (`<prefix>-v<version>-<digest>`), as an IAM pattern. */
  readonly deployedNames: string;
  /** Every model's execution role; batch transform jobs (lib/batch-transform.ts) run with it too. */
  readonly modelRole: iam.Role;
  readonly stateMachine: sfn.StateMachine;
  /** The alarms a blue/green update watches; firing rolls it back. */
  readonly rollbackAlarms: cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: ModelDeploymentProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.endpointName = `${props.namePrefix}-endpoint`;
    this.endpointArn = stack.formatArn({
      service: 'sagemaker',
      resource: 'endpoint',
      resourceName: this.endpointName,
    });
    const arn = (resource: string, name: string) =>
      stack.formatArn({ service: 'sagemaker', resource, resourceName: name });
    const ourNames = `${props.namePrefix}-v*`;
    this.deployedNames = ourNames;
    const minInstances = props.minInstances ?? 1;
    const instanceType = props.instanceType ?? 'ml.c5.xlarge';
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const modelRole = this.createModelRole(props);
    this.modelRole = modelRole;

    const dimensions = { EndpointName: this.endpointName, VariantName: VARIANT_NAME };
    this.rollbackAlarms = [
      new cloudwatch.Alarm(this, 'Rollback5xx', {
        alarmDescription: 'Rolls back a blue/green endpoint update: the model container answered 5xx',
        metric: new cloudwatch.Metric({
          namespace: 'AWS/SageMaker',
          metricName: 'Invocation5XXErrors',
          dimensionsMap: dimensions,
          statistic: 'Sum',
          period: Duration.minutes(1),
        }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'RollbackLatency', {
        alarmDescription: 'Rolls back a blue/green endpoint update: p90 model latency too high',
        metric: new cloudwatch.Metric({
          namespace: 'AWS/SageMaker',
          metricName: 'ModelLatency',
          dimensionsMap: dimensions,
          statistic: 'p90',
          period: Duration.minutes(1),
        }),
        // ModelLatency is in microseconds.
        threshold: (props.rollbackLatencyMs ?? 2000) * 1000,
        evaluationPeriods: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    ];

    const prepareFn = nodeFunction(this, 'Prepare', {
      entry: 'lambda/model-deployment/prepare.ts',
      description:
        'Creates the model and endpoint config of the latest approved package; says what the endpoint needs',
      logRetentionDays: props.logRetentionDays,
      timeout: Duration.minutes(1),
      environment: {
        MODEL_PACKAGE_GROUP: props.registry.groupName,
        ENDPOINT_NAME: this.endpointName,
        NAME_PREFIX: props.namePrefix,
        IMAGE_URI: props.image.imageUri,
        MODEL_ROLE_ARN: modelRole.roleArn,
        VARIANT_NAME,
        INSTANCE_TYPE: instanceType,
        INITIAL_INSTANCES: String(minInstances),
        DATA_CAPTURE:
          props.dataCaptureSamplePercent === undefined
            ? ''
            : stack.toJsonString({
                EnableCapture: true,
                InitialSamplingPercentage: props.dataCaptureSamplePercent,
                DestinationS3Uri: `s3://${props.bucket.bucketName}/${DATA_CAPTURE_PREFIX}`,
                CaptureOptions: [{ CaptureMode: 'Input' }, { CaptureMode: 'Output' }],
              }),
        // Strict only, so the default function's environment is unchanged.
        ...(props.encryptionKey ? { KMS_KEY_ARN: props.encryptionKey.keyArn } : {}),
        ...(props.network
          ? {
              VPC_CONFIG: stack.toJsonString({
                Subnets: props.network.subnets.map((subnet) => subnet.subnetId),
                SecurityGroupIds: [props.network.securityGroup.securityGroupId],
              }),
            }
          : {}),
      },
    });
    prepareFn.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['sagemaker:ListModelPackages'], resources: ['*'] }),
    );
    prepareFn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:DescribeModelPackage'],
        resources: [arn('model-package', `${props.registry.groupName}/*`)],
      }),
    );
    prepareFn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:CreateModel', 'sagemaker:DescribeModel'],
        resources: [arn('model', ourNames)],
      }),
    );
    prepareFn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:CreateEndpointConfig', 'sagemaker:DescribeEndpointConfig'],
        resources: [arn('endpoint-config', ourNames)],
      }),
    );
    prepareFn.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['sagemaker:DescribeEndpoint'], resources: [this.endpointArn] }),
    );
    modelRole.grantPassRole(prepareFn.grantPrincipal);
    // CreateEndpointConfig names the key; SageMaker may look it up as the caller.
    if (props.encryptionKey) props.encryptionKey.grant(prepareFn, 'kms:DescribeKey');

    // The states.
    const prepare = new tasks.LambdaInvoke(this, 'PrepareStep', {
      stateName: 'Prepare',
      lambdaFunction: prepareFn,
      payloadResponseOnly: true,
      resultPath: '$.prepared',
      retryOnServiceExceptions: true,
    });
    prepare.addRetry({
      errors: ['EndpointBusy'],
      interval: Duration.minutes(1),
      maxAttempts: 90,
      backoffRate: 1,
    });
    const configName = sfn.JsonPath.stringAt('$.prepared.endpointConfigName');
    const scalingTarget = {
      ServiceNamespace: 'sagemaker',
      ResourceId: `endpoint/${this.endpointName}/variant/${VARIANT_NAME}`,
      ScalableDimension: 'sagemaker:variant:DesiredInstanceCount',
    };
    const create = new tasks.CallAwsService(this, 'CreateEndpoint', {
      service: 'sagemaker',
      action: 'createEndpoint',
      parameters: { EndpointName: this.endpointName, EndpointConfigName: configName },
      iamResources: [this.endpointArn, arn('endpoint-config', ourNames)],
      resultPath: sfn.JsonPath.DISCARD,
    });
    const update = new tasks.CallAwsService(this, 'UpdateEndpoint', {
      service: 'sagemaker',
      action: 'updateEndpoint',
      parameters: {
        EndpointName: this.endpointName,
        EndpointConfigName: configName,
        // Keep the instance count autoscaling chose; without it each rollout resets it under traffic.
        RetainAllVariantProperties: true,
        // ...but not the old data capture settings: a changed dataCapture must take effect.
        ExcludeRetainedVariantProperties: [{ VariantPropertyType: 'DataCaptureConfig' }],
        DeploymentConfig: {
          BlueGreenUpdatePolicy: {
            TrafficRoutingConfiguration: {
              Type: 'CANARY',
              CanarySize: { Type: 'CAPACITY_PERCENT', Value: props.canaryPercent ?? 10 },
              WaitIntervalInSeconds: (props.canaryWait ?? Duration.minutes(10)).toSeconds(),
            },
            TerminationWaitInSeconds: 300,
          },
          AutoRollbackConfiguration: { Alarms: this.rollbackAlarms.map((a) => ({ AlarmName: a.alarmName })) },
        },
      },
      iamResources: [this.endpointArn, arn('endpoint-config', ourNames)],
      resultPath: sfn.JsonPath.DISCARD,
    });
    const deregister = new tasks.CallAwsService(this, 'DeregisterScaling', {
      service: 'applicationautoscaling',
      action: 'deregisterScalableTarget',
      iamAction: 'application-autoscaling:DeregisterScalableTarget',
      parameters: scalingTarget,
      iamResources: ['*'],
      resultPath: sfn.JsonPath.DISCARD,
    });
    deregister.addCatch(update, {
      errors: ['ApplicationAutoScaling.ObjectNotFoundException'],
      resultPath: sfn.JsonPath.DISCARD,
    });
    const wait = new sfn.Wait(this, 'WaitForEndpoint', { time: sfn.WaitTime.duration(Duration.minutes(1)) });
    const describe = new tasks.CallAwsService(this, 'DescribeEndpoint', {
      service: 'sagemaker',
      action: 'describeEndpoint',
      parameters: { EndpointName: this.endpointName },
      iamResources: [this.endpointArn],
      resultSelector: {
        status: sfn.JsonPath.stringAt('$.EndpointStatus'),
        config: sfn.JsonPath.stringAt('$.EndpointConfigName'),
      },
      resultPath: '$.endpoint',
    });
    const register = new tasks.CallAwsService(this, 'RegisterScaling', {
      service: 'applicationautoscaling',
      action: 'registerScalableTarget',
      iamAction: 'application-autoscaling:RegisterScalableTarget',
      parameters: { ...scalingTarget, MinCapacity: minInstances, MaxCapacity: props.maxInstances ?? 2 },
      iamResources: ['*'],
      resultPath: sfn.JsonPath.DISCARD,
    });
    const policy = new tasks.CallAwsService(this, 'PutScalingPolicy', {
      service: 'applicationautoscaling',
      action: 'putScalingPolicy',
      iamAction: 'application-autoscaling:PutScalingPolicy',
      parameters: {
        ...scalingTarget,
        PolicyName: 'InvocationsPerInstance',
        PolicyType: 'TargetTrackingScaling',
        TargetTrackingScalingPolicyConfiguration: {
          TargetValue: props.targetInvocationsPerInstance ?? 100,
          PredefinedMetricSpecification: { PredefinedMetricType: 'SageMakerVariantInvocationsPerInstance' },
        },
      },
      iamResources: ['*'],
      resultPath: sfn.JsonPath.DISCARD,
    });
    const done = new sfn.Succeed(this, 'Serving');
    const rolledBack = new sfn.Fail(this, 'RolledBack', {
      error: 'RolledBack',
      cause:
        'The endpoint is InService on its previous config: a rollback alarm fired during the blue/green update',
    });
    const endpointFailed = new sfn.Fail(this, 'EndpointFailed', {
      error: 'EndpointFailed',
      cause: 'SageMaker could not create or update the endpoint (see DescribeEndpoint FailureReason)',
    });

    create.next(wait);
    update.next(wait);
    deregister.next(update);
    wait.next(describe).next(
      new sfn.Choice(this, 'EndpointStatus?')
        .when(
          sfn.Condition.and(
            sfn.Condition.stringEquals('$.endpoint.status', 'InService'),
            sfn.Condition.stringEqualsJsonPath('$.endpoint.config', '$.prepared.endpointConfigName'),
          ),
          register.next(policy).next(done),
        )
        .when(sfn.Condition.stringEquals('$.endpoint.status', 'InService'), rolledBack)
        .when(sfn.Condition.stringEquals('$.endpoint.status', 'Failed'), endpointFailed)
        .otherwise(wait),
    );
    const definition = prepare.next(
      new sfn.Choice(this, 'WhatToDo?')
        .when(
          sfn.Condition.stringEquals('$.prepared.action', 'none'),
          new sfn.Succeed(this, 'NothingToDeploy'),
        )
        .when(sfn.Condition.stringEquals('$.prepared.action', 'create'), create)
        .when(sfn.Condition.booleanEquals('$.prepared.instanceTypeChanged', true), deregister)
        .otherwise(update),
    );
    const logGroup = new logs.LogGroup(this, 'StateMachineLogs', {
      retention: props.logRetentionDays as logs.RetentionDays,
      removalPolicy,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      comment: 'Deploy the latest approved model to the endpoint (blue/green, auto-rollback)',
      logs: { destination: logGroup, level: sfn.LogLevel.ALL },
      tracingEnabled: true,
      timeout: Duration.hours(3),
    });
    this.grantScaling(this.stateMachine, stack);
    // CreateEndpoint/UpdateEndpoint with a config that names a key: SageMaker creates a grant as the caller.
    if (props.encryptionKey) grantKeyForAwsResources(props.encryptionKey, this.stateMachine);

    // Approve = deploy, reject = roll back: any approval change in the group redeploys the latest approved.
    new events.Rule(this, 'OnApprovalChange', {
      description: 'Deploys the latest approved model when a package in the group changes approval',
      eventPattern: {
        source: ['aws.sagemaker'],
        detailType: ['SageMaker Model Package State Change'],
        detail: { ModelPackageGroupName: [props.registry.groupName] },
      },
      targets: [
        new targets.SfnStateMachine(this.stateMachine, {
          input: events.RuleTargetInput.fromObject({
            trigger: 'registry',
            modelPackageArn: events.EventField.fromPath('$.detail.ModelPackageArn'),
            approval: events.EventField.fromPath('$.detail.ModelApprovalStatus'),
          }),
        }),
      ],
    });

    this.lifecycle(props, prepareFn, stack, removalPolicy);
    this.suppressFindings(props, prepareFn);
  }

  /** What registering autoscaling needs besides the API call itself (AWS documents these for the caller). */
  private grantScaling(stateMachine: sfn.StateMachine, stack: Stack): void {
    stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:DescribeEndpoint', 'sagemaker:UpdateEndpointWeightsAndCapacities'],
        resources: [this.endpointArn],
      }),
    );
    stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['cloudwatch:PutMetricAlarm', 'cloudwatch:DescribeAlarms', 'cloudwatch:DeleteAlarms'],
        resources: [
          stack.formatArn({
            service: 'cloudwatch',
            resource: 'alarm',
            resourceName: 'TargetTracking-*',
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );
    stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['iam:CreateServiceLinkedRole'],
        resources: [
          stack.formatArn({
            service: 'iam',
            region: '',
            resource: 'role',
            resourceName:
              'aws-service-role/sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint',
          }),
        ],
        conditions: {
          StringLike: { 'iam:AWSServiceName': 'sagemaker.application-autoscaling.amazonaws.com' },
        },
      }),
    );
  }

  /** Starts a deployment when the image or settings change; deletes what deployments created on stack delete. */
  private lifecycle(
    props: ModelDeploymentProps,
    prepareFn: lambda.IFunction,
    stack: Stack,
    removalPolicy: RemovalPolicy,
  ): void {
    const fn = nodeFunction(this, 'Lifecycle', {
      entry: 'lambda/model-deployment/lifecycle.ts',
      description:
        'Starts an endpoint deployment on stack create/update; deletes the endpoint and its models on delete',
      logRetentionDays: props.logRetentionDays,
      timeout: Duration.minutes(5),
    });
    this.stateMachine.grantStartExecution(fn);
    const arn = (resource: string, name: string) =>
      stack.formatArn({ service: 'sagemaker', resource, resourceName: name });
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:DeleteEndpoint'],
        resources: [this.endpointArn],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:DeleteEndpointConfig'],
        resources: [arn('endpoint-config', `${props.namePrefix}-v*`)],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:DeleteModel'],
        resources: [arn('model', `${props.namePrefix}-v*`)],
      }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:ListEndpointConfigs', 'sagemaker:ListModels', 'sagemaker:ListModelPackages'],
        resources: ['*'],
      }),
    );
    // Deleting an autoscaled endpoint deregisters its scalable target when the caller may.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['application-autoscaling:DeregisterScalableTarget'],
        resources: ['*'],
      }),
    );
    if (removalPolicy === RemovalPolicy.DESTROY) {
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['sagemaker:DeleteModelPackage'],
          resources: [arn('model-package', `${props.registry.groupName}/*`)],
        }),
      );
    }
    const provider = new Provider(this, 'Provider', {
      onEventHandler: fn,
      logGroup: new logs.LogGroup(this, 'ProviderLogs', {
        retention: props.logRetentionDays as logs.RetentionDays,
        removalPolicy,
      }),
    });
    suppressProviderFindings(provider, [fn]);
    const settings = createHash('sha256')
      .update(
        JSON.stringify({
          image: props.image.assetHash,
          instanceType: props.instanceType,
          min: props.minInstances,
          max: props.maxInstances,
          target: props.targetInvocationsPerInstance,
          capture: props.dataCaptureSamplePercent,
          // Undefined (left out of the JSON) in the default configuration.
          strict: props.encryptionKey || props.network ? true : undefined,
        }),
      )
      .digest('hex')
      .slice(0, 20);
    const resource = new CustomResource(this, 'Endpoint', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::ModelEndpoint',
      properties: {
        StateMachineArn: this.stateMachine.stateMachineArn,
        EndpointName: this.endpointName,
        NamePrefix: props.namePrefix,
        ModelPackageGroup: props.registry.groupName,
        DeletePackages: String(removalPolicy === RemovalPolicy.DESTROY),
        Settings: settings,
      },
    });
    // Delete runs before the roles and functions it needs are gone.
    resource.node.addDependency(this.stateMachine, prepareFn, props.registry);
    // In the VPC, the model reaches S3, ECR and CloudWatch only through its endpoints (children of the VPC).
    if (props.network) resource.node.addDependency(props.network.vpc);
    suppress(fn.role as iam.Role, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "List calls and DeregisterScalableTarget accept only resource *; deletes are limited to this stack's endpoint, its `<prefix>-v*` models and configs, and its package group.",
        findings: [
          'Resource::*',
          nagArn('endpoint-config', `${props.namePrefix}-v*`),
          nagArn('model', `${props.namePrefix}-v*`),
          ...(removalPolicy === RemovalPolicy.DESTROY
            ? [nagArn('model-package', `${props.registry.groupName}/*`)]
            : []),
        ],
      },
    ]);
  }

  private suppressFindings(props: ModelDeploymentProps, prepareFn: lambda.IFunction): void {
    const names = `${props.namePrefix}-v*`;
    suppress(prepareFn.role as iam.Role, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "ListModelPackages accepts only resource *; package versions and model/config names are assigned per deployment and stay inside this stack's group and `<prefix>-v*` names.",
        findings: [
          'Resource::*',
          nagArn('endpoint-config', names),
          nagArn('model', names),
          nagArn('model-package', `${props.registry.groupName}/*`),
        ],
      },
    ]);
    suppress(this.stateMachine, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "Application Auto Scaling and X-Ray/log delivery accept only resource *; the wildcards cover this stack's `<prefix>-v*` endpoint configs, the TargetTracking-* alarms autoscaling creates, and the Prepare function's versions.",
        findings: [
          'Resource::*',
          nagArn('endpoint-config', names),
          'Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:TargetTracking-*',
          `Resource::${arnRef(prepareFn)}:*`,
        ],
      },
    ]);
  }

  private createModelRole(props: ModelDeploymentProps): iam.Role {
    const role = new iam.Role(this, 'ModelRole', {
      assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com'),
      description: 'SageMaker model: reads its model artifact, pulls its image, writes its logs',
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [props.bucket.arnForObjects('models/*')],
      }),
    );
    if (props.dataCaptureSamplePercent !== undefined) {
      role.addToPolicy(
        new iam.PolicyStatement({
          actions: ['s3:PutObject'],
          resources: [props.bucket.arnForObjects(`${DATA_CAPTURE_PREFIX}*`)],
        }),
      );
    }
    grantSageMakerBasics(role, props.image, '/aws/sagemaker/Endpoints/*');
    if (props.encryptionKey) {
      grantDataKeyToExecutionRole(props.encryptionKey, role, props.dataCaptureSamplePercent !== undefined);
    }
    if (props.network) grantSageMakerVpcAccess(role, props.network);
    const prefixes =
      props.dataCaptureSamplePercent === undefined ? ['models/'] : ['models/', DATA_CAPTURE_PREFIX];
    suppress(role, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'The model reads any artifact under models/ (the artifact key holds the job name, known only after training) and writes data-capture/ objects whose names SageMaker chooses.',
        findings: prefixes.map((p) => `Resource::${arnRef(props.bucket)}/${p}*`),
      },
      {
        id: 'AwsSolutions-IAM5',
        reason: props.network ? STAR_ONLY_ACTIONS_VPC_REASON : STAR_ONLY_ACTIONS_REASON,
        findings: ['Resource::*'],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "SageMaker names the endpoint's log groups and streams; access is limited to /aws/sagemaker/Endpoints/*.",
        findings: [
          'Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/Endpoints/*',
        ],
      },
    ]);
    return role;
  }
}
