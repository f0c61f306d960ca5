import { createHash } from 'node:crypto';
import { ArnFormat, CustomResource, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Provider } from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import type { DatasetDelivery } from './dataset-delivery.ts';
import { grantDataKeyToExecutionRole, grantKeyForAwsResources } from './encryption.ts';
import { hasInstanceStorage } from './instance-storage.ts';
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
import { TRAINING_METRIC_DEFINITIONS } from './training-metrics.ts';

export interface TrainingPipelineProps {
  /** Lower-case prefix of every job name (the stack's; IAM and the registry match on it). */
  readonly namePrefix: string;
  readonly bucket: s3.IBucket;
  /** The training/serving image the job runs. */
  readonly image: ecrAssets.DockerImageAsset;
  /** Digest of the training code in the image (trainerFingerprint); it names the job, the image's hash does not. */
  readonly trainerFingerprint: string;
  readonly dataset: DatasetDelivery;
  /** Where each completed job's model is registered. */
  readonly registry: ModelRegistry;
  /** @default 'ml.g4dn.xlarge' */
  readonly instanceType?: string;
  /** @default 30 */
  readonly volumeSizeGb?: number;
  /** SageMaker stops the job here. @default Duration.hours(3) */
  readonly maxRuntime?: Duration;
  /** Managed spot training. @default true */
  readonly useSpot?: boolean;
  /** Spot capacity wait plus run time, >= maxRuntime. @default 2 x maxRuntime */
  readonly maxWait?: Duration;
  /** Values the trainer reads (`profile`, `epochs`, ...). @default { profile: 'full' } */
  readonly hyperparameters?: Record<string, string>;
  /** Bump to train again with unchanged inputs. @default 0 */
  readonly revision?: number;
  readonly logRetentionDays: number;
  /** @default RemovalPolicy.RETAIN (log groups) */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Customer-managed key (strict): the job's output (`OutputDataConfig.KmsKeyId`) and its EBS
   * volume (`ResourceConfig.VolumeKmsKeyId`; not on instance types with local storage, which
   * SageMaker encrypts with the instance's hardware and refuses a key for). @default AWS-managed
   */
  readonly encryptionKey?: kms.IKey;
  /** Run the job in these subnets with this security group (`VpcConfig`, strict). @default no VPC */
  readonly network?: SageMakerNetwork;
}

/** Where SageMaker writes model.tar.gz (`models/<job>/output/`) and spot checkpoints. */
const OUTPUT_PREFIX = 'models/';
const CHECKPOINT_PREFIX = 'checkpoints/';
/** Channel names the trainer reads (/opt/ml/input/data/<name>; training-container/src/paths.ts). */
export const TRAIN_CHANNEL = 'train';
export const TEST_CHANNEL = 'test';

/**
 * The trainer's own time limit for a job SageMaker stops at `maxRuntimeMinutes`: it stops training
 * early enough to evaluate and save its model (and SageMaker to upload it) before that. 10% of the
 * run, at least 10 minutes, is left for that.
 */
export function trainerTimeLimitMinutes(maxRuntimeMinutes: number): number {
  return Math.max(1, maxRuntimeMinutes - Math.max(10, Math.ceil(maxRuntimeMinutes / 10)));
}

/**
 * Training as a Step Functions state machine: `Train` runs the SageMaker job and waits for it
 * (`createTrainingJob.sync`, no CloudFormation hour), `Register` puts its model in the model
 * registry, where the approval gate decides whether it is deployed. `cdk deploy` only starts an
 * execution, named after everything that shapes the model (training code, data, hyperparameters,
 * instance, limits, revision): an unchanged input finds its execution and starts nothing, and a
 * serving-only change to the image never retrains.
 */
export class TrainingPipeline extends Construct {
  /** Training job (and execution) name of the current inputs. */
  readonly jobName: string;
  /** Every job of this stack starts with it (EventBridge filters and IAM use it). */
  readonly jobNamePrefix: string;
  readonly stateMachine: sfn.StateMachine;
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: TrainingPipelineProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const maxRuntime = props.maxRuntime ?? Duration.hours(3);
    const useSpot = props.useSpot ?? true;
    const maxWait = props.maxWait ?? Duration.minutes(2 * maxRuntime.toMinutes());
    if (useSpot && maxWait.toSeconds() < maxRuntime.toSeconds()) {
      throw new Error('maxWait must be >= maxRuntime for spot training');
    }
    const given = props.hyperparameters ?? { profile: 'full' };
    // A job SageMaker stops at MaxRuntime ends `Stopped`, without a model: the trainer must stop first.
    const hyperparameters = sortKeys({
      ...given,
      time_limit_minutes: given.time_limit_minutes ?? String(trainerTimeLimitMinutes(maxRuntime.toMinutes())),
    });
    const limit = Number(hyperparameters.time_limit_minutes);
    if (!(limit > 0 && limit < maxRuntime.toMinutes())) {
      throw new Error(
        `hyperparameter time_limit_minutes=${hyperparameters.time_limit_minutes} must be > 0 and below the job's MaxRuntime (${maxRuntime.toMinutes()} min), or the job is stopped before it saves its model`,
      );
    }
    const instanceType = props.instanceType ?? 'ml.g4dn.xlarge';
    const volumeSizeGb = props.volumeSizeGb ?? 30;

    this.jobNamePrefix = props.namePrefix;
    const identity = {
      stack: stack.stackName,
      trainer: props.trainerFingerprint,
      data: props.dataset.prefix,
      hyperparameters,
      instanceType,
      volumeSizeGb,
      maxRuntime: maxRuntime.toSeconds(),
      spot: useSpot,
      maxWait: useSpot ? maxWait.toSeconds() : 0,
      revision: props.revision ?? 0,
      // A model trained under the strict settings (own key, VPC) is a new job; absent otherwise,
      // so the default configuration's job names are unchanged.
      ...(props.encryptionKey || props.network ? { strict: true } : {}),
    };
    const digest = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 20);
    this.jobName = `${this.jobNamePrefix}-${digest}`;
    this.role = this.createJobRole(props);

    const bucketUri = `s3://${props.bucket.bucketName}/`;
    const key = props.encryptionKey;
    const volumeKey = key && !hasInstanceStorage(instanceType) ? { VolumeKmsKeyId: key.keyArn } : {};
    const train = new sfn.CustomState(this, 'Train', {
      stateJson: {
        Type: 'Task',
        Resource: `arn:${stack.partition}:states:::sagemaker:createTrainingJob.sync`,
        Parameters: {
          'TrainingJobName.$': '$.jobName',
          RoleArn: this.role.roleArn,
          AlgorithmSpecification: {
            TrainingImage: props.image.imageUri,
            TrainingInputMode: 'File',
            MetricDefinitions: TRAINING_METRIC_DEFINITIONS,
            EnableSageMakerMetricsTimeSeries: true,
          },
          HyperParameters: hyperparameters,
          InputDataConfig: [
            channel(TRAIN_CHANNEL, props.dataset.trainUri),
            channel(TEST_CHANNEL, props.dataset.testUri),
          ],
          OutputDataConfig: {
            S3OutputPath: `${bucketUri}${OUTPUT_PREFIX}`,
            ...(key ? { KmsKeyId: key.keyArn } : {}),
          },
          ResourceConfig: {
            InstanceType: instanceType,
            InstanceCount: 1,
            VolumeSizeInGB: volumeSizeGb,
            ...volumeKey,
          },
          ...(props.network
            ? {
                VpcConfig: {
                  Subnets: props.network.subnets.map((subnet) => subnet.subnetId),
                  SecurityGroupIds: [props.network.securityGroup.securityGroupId],
                },
              }
            : {}),
          StoppingCondition: {
            MaxRuntimeInSeconds: maxRuntime.toSeconds(),
            ...(useSpot ? { MaxWaitTimeInSeconds: maxWait.toSeconds() } : {}),
          },
          EnableManagedSpotTraining: useSpot,
          CheckpointConfig: {
            'S3Uri.$': `States.Format('${bucketUri}${CHECKPOINT_PREFIX}{}/', $.jobName)`,
            LocalPath: '/opt/ml/checkpoints',
          },
          // The image carries its weights and code; the job needs no network beyond its channels.
          EnableNetworkIsolation: true,
        },
        ResultSelector: { 'status.$': '$.TrainingJobStatus' },
        ResultPath: '$.training',
      },
    });
    const register = new tasks.LambdaInvoke(this, 'Register', {
      lambdaFunction: props.registry.registerFunction,
      payload: sfn.TaskInput.fromObject({ jobName: sfn.JsonPath.stringAt('$.jobName') }),
      payloadResponseOnly: true,
      resultPath: '$.registered',
      retryOnServiceExceptions: true,
    });
    const failed = new sfn.Fail(this, 'TrainingFailed', {
      error: 'TrainingFailed',
      causePath: '$.error.Cause',
    });
    train.addCatch(failed, { resultPath: '$.error' });
    const logGroup = new logs.LogGroup(this, 'StateMachineLogs', {
      retention: props.logRetentionDays as logs.RetentionDays,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(train.next(register)),
      comment: 'Train the classifier on SageMaker, then register the model with its evaluation',
      logs: { destination: logGroup, level: sfn.LogLevel.ALL },
      tracingEnabled: true,
      // SageMaker's own MaxWait bounds the job; the execution may outlive it only by the register step.
      timeout: Duration.seconds((useSpot ? maxWait : maxRuntime).toSeconds() + 3600),
    });
    this.grantTrainingTask(this.stateMachine, stack, props);

    this.startOnDeploy(props, stack);
  }

  /** What `createTrainingJob.sync` needs: the job's API calls, its role, and the managed event rule it waits with. */
  private grantTrainingTask(
    stateMachine: sfn.StateMachine,
    stack: Stack,
    props: TrainingPipelineProps,
  ): void {
    const jobs = stack.formatArn({
      service: 'sagemaker',
      resource: 'training-job',
      resourceName: `${this.jobNamePrefix}-*`,
    });
    stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        // The .sync integration tags the job it creates (MANAGED_BY_AWS) and reads its tags:
        // without AddTags CreateTrainingJob is refused (aws-cdk#32294).
        actions: [
          'sagemaker:CreateTrainingJob',
          'sagemaker:DescribeTrainingJob',
          'sagemaker:StopTrainingJob',
          'sagemaker:AddTags',
          'sagemaker:ListTags',
        ],
        resources: [jobs],
      }),
    );
    stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
        resources: [
          stack.formatArn({
            service: 'events',
            resource: 'rule',
            resourceName: 'StepFunctionsGetEventsForSageMakerTrainingJobsRule',
          }),
        ],
      }),
    );
    this.role.grantPassRole(stateMachine.role);
    // CreateTrainingJob with a customer-managed key: SageMaker creates a grant for the volume as the caller.
    if (props.encryptionKey) grantKeyForAwsResources(props.encryptionKey, stateMachine.role);
    suppress(stateMachine, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "Job names derive from their inputs at synth time; the wildcard covers only this stack's job-name prefix. The Lambda ARN wildcard is the register function's versions, which LambdaInvoke grants.",
        findings: [
          `Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:training-job/${this.jobNamePrefix}-*`,
          `Resource::${arnRef(props.registry.registerFunction)}:*`,
        ],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'X-Ray (tracing) and CloudWatch Logs delivery (execution logs) accept only resource * (AWS design); CDK generates these statements.',
        findings: ['Resource::*'],
      },
    ]);
  }

  /** A custom resource that starts the execution for the current inputs on create and update. */
  private startOnDeploy(props: TrainingPipelineProps, stack: Stack): void {
    const start = nodeFunction(this, 'Start', {
      entry: 'lambda/training-pipeline/start.ts',
      description: 'Starts the training state machine for the current inputs (or finds it started)',
      logRetentionDays: props.logRetentionDays,
      timeout: Duration.minutes(1),
    });
    this.stateMachine.grantStartExecution(start);
    const executions = stack.formatArn({
      service: 'states',
      resource: 'execution',
      resourceName: `${this.stateMachine.stateMachineName}:*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    start.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['states:DescribeExecution', 'states:StopExecution'],
        resources: [executions],
      }),
    );
    suppress(start.role as iam.Role, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "Execution names are the job names, chosen per deploy; the wildcard covers only this state machine's executions (to stop a superseded one).",
        findings: [
          `Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<${stack.getLogicalId(this.stateMachine.node.defaultChild as sfn.CfnStateMachine)}.Name>:*`,
        ],
      },
    ]);
    const provider = new Provider(this, 'Provider', {
      onEventHandler: start,
      logGroup: new logs.LogGroup(this, 'ProviderLogs', {
        retention: props.logRetentionDays as logs.RetentionDays,
        removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
      }),
    });
    suppressProviderFindings(provider, [start]);
    const resource = new CustomResource(this, 'Execution', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::TrainingExecution',
      // No image URI here: a serving-only image change must not start a training.
      properties: { StateMachineArn: this.stateMachine.stateMachineArn, JobName: this.jobName },
    });
    // The data must be in place and the role able to read it before the job starts.
    resource.node.addDependency(props.dataset.deployment, this.role);
    // In the VPC, the job reaches S3, ECR and CloudWatch only through its endpoints (children of the VPC).
    if (props.network) resource.node.addDependency(props.network.vpc);
  }

  private createJobRole(props: TrainingPipelineProps): iam.Role {
    const role = new iam.Role(this, 'JobRole', {
      assumedBy: new iam.ServicePrincipal('sagemaker.amazonaws.com'),
      description:
        'SageMaker training job: reads its dataset version, writes model artifacts and checkpoints',
    });
    const objects = (prefix: string) => props.bucket.arnForObjects(`${prefix}*`);
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [objects(props.dataset.prefix), objects(CHECKPOINT_PREFIX)],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [objects(OUTPUT_PREFIX), objects(CHECKPOINT_PREFIX)],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [props.bucket.bucketArn],
        conditions: {
          StringLike: { 's3:prefix': [`${props.dataset.prefix}*`, `${CHECKPOINT_PREFIX}*`] },
        },
      }),
    );
    grantSageMakerBasics(role, props.image, '/aws/sagemaker/TrainingJobs*');
    if (props.encryptionKey) grantDataKeyToExecutionRole(props.encryptionKey, role, true);
    if (props.network) grantSageMakerVpcAccess(role, props.network);
    const bucketArn = arnRef(props.bucket);
    suppress(role, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'SageMaker reads and writes objects only under its own prefixes: this dataset version, models/ and checkpoints/ (object names are chosen by SageMaker).',
        findings: [props.dataset.prefix, OUTPUT_PREFIX, CHECKPOINT_PREFIX].map(
          (p) => `Resource::${bucketArn}/${p}*`,
        ),
      },
      {
        id: 'AwsSolutions-IAM5',
        reason: props.network ? STAR_ONLY_ACTIONS_VPC_REASON : STAR_ONLY_ACTIONS_REASON,
        findings: ['Resource::*'],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "SageMaker names the job's log streams; access is limited to the /aws/sagemaker/TrainingJobs log group.",
        findings: [
          'Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/TrainingJobs*',
        ],
      },
    ]);
    return role;
  }
}

function channel(name: string, s3Uri: string) {
  return {
    ChannelName: name,
    DataSource: {
      S3DataSource: { S3DataType: 'S3Prefix', S3Uri: s3Uri, S3DataDistributionType: 'FullyReplicated' },
    },
  };
}

function sortKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}
