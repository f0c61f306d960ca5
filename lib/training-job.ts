import { createHash } from 'node:crypto';
import { CustomResource, Duration, Stack } from 'aws-cdk-lib';
import type * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Provider } from 'aws-cdk-lib/custom-resources';
import { Construct, type IConstruct } from 'constructs';
import type { DatasetDelivery } from './dataset-delivery.ts';
import { arnRef, suppress } from './nag.ts';
import { nodeFunction } from './node-function.ts';
import { grantSageMakerBasics, STAR_ONLY_ACTIONS_REASON } from './sagemaker-role.ts';
import { TRAINING_METRIC_DEFINITIONS } from './training-metrics.ts';

export interface TrainingJobProps {
  readonly bucket: s3.IBucket;
  /** The training/serving image; its asset hash is part of the job name. */
  readonly image: ecrAssets.DockerImageAsset;
  readonly dataset: DatasetDelivery;
  /** @default 'ml.g4dn.xlarge' */
  readonly instanceType?: string;
  /** @default 30 */
  readonly volumeSizeGb?: number;
  /** @default Duration.hours(1) (also the most CloudFormation can wait) */
  readonly maxRuntime?: Duration;
  /** Managed spot training. @default true */
  readonly useSpot?: boolean;
  /** Spot capacity wait plus run time, >= maxRuntime. @default maxRuntime */
  readonly maxWait?: Duration;
  /** Values the trainer reads (`profile`, `epochs`, ...). @default { profile: 'full' } */
  readonly hyperparameters?: Record<string, string>;
  /** Bump to train again with unchanged inputs. @default 0 */
  readonly revision?: number;
  readonly logRetentionDays: number;
}

/** Where SageMaker writes model.tar.gz (`models/<job>/output/`) and spot checkpoints. */
const OUTPUT_PREFIX = 'models/';
const CHECKPOINT_PREFIX = 'checkpoints/';

/**
 * A SageMaker training job as a CloudFormation resource (aws-cdk-lib has none): a Provider
 * framework custom resource whose onEvent starts the job and whose isComplete waits for it, so
 * the deploy fails with the job's FailureReason. The job name is a hash of everything that
 * shapes the model (image, data, hyperparameters, instance, limits, revision): an unchanged
 * redeploy finds the finished job and starts nothing.
 */
export class TrainingJob extends Construct {
  readonly jobName: string;
  /** Every job of this stack starts with it (EventBridge filters and IAM use it). */
  readonly jobNamePrefix: string;
  /** s3:// URL of model.tar.gz, known once the job has completed. */
  readonly modelDataUrl: string;
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: TrainingJobProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const maxRuntime = props.maxRuntime ?? Duration.hours(1);
    const useSpot = props.useSpot ?? true;
    const maxWait = props.maxWait ?? maxRuntime;
    if (maxRuntime.toMinutes() > 60 || (useSpot && maxWait.toMinutes() > 60)) {
      throw new Error('the training job must end within 60 minutes: CloudFormation waits no longer for it');
    }
    if (useSpot && maxWait.toSeconds() < maxRuntime.toSeconds()) {
      throw new Error('maxWait must be >= maxRuntime for spot training');
    }
    const hyperparameters = sortKeys(props.hyperparameters ?? { profile: 'full' });
    const instanceType = props.instanceType ?? 'ml.g4dn.xlarge';
    const volumeSizeGb = props.volumeSizeGb ?? 30;

    this.jobNamePrefix = stack.stackName
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-')
      .slice(0, 40);
    const identity = {
      stack: stack.stackName,
      image: props.image.assetHash,
      data: props.dataset.prefix,
      hyperparameters,
      instanceType,
      volumeSizeGb,
      maxRuntime: maxRuntime.toSeconds(),
      spot: useSpot,
      maxWait: useSpot ? maxWait.toSeconds() : 0,
      revision: props.revision ?? 0,
    };
    const digest = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 20);
    this.jobName = `${this.jobNamePrefix}-${digest}`;

    this.role = this.createJobRole(props);
    const bucketUri = `s3://${props.bucket.bucketName}/`;
    const request = {
      TrainingJobName: this.jobName,
      RoleArn: this.role.roleArn,
      AlgorithmSpecification: {
        TrainingImage: props.image.imageUri,
        TrainingInputMode: 'File',
        MetricDefinitions: TRAINING_METRIC_DEFINITIONS,
        EnableSageMakerMetricsTimeSeries: true,
      },
      HyperParameters: hyperparameters,
      InputDataConfig: [channel('train', props.dataset.trainUri), channel('test', props.dataset.testUri)],
      OutputDataConfig: { S3OutputPath: `${bucketUri}${OUTPUT_PREFIX}` },
      ResourceConfig: { InstanceType: instanceType, InstanceCount: 1, VolumeSizeInGB: volumeSizeGb },
      StoppingCondition: {
        MaxRuntimeInSeconds: maxRuntime.toSeconds(),
        ...(useSpot ? { MaxWaitTimeInSeconds: maxWait.toSeconds() } : {}),
      },
      EnableManagedSpotTraining: useSpot,
      CheckpointConfig: {
        S3Uri: `${bucketUri}${CHECKPOINT_PREFIX}${this.jobName}/`,
        LocalPath: '/opt/ml/checkpoints',
      },
      // The image carries its weights and code; the job needs no network beyond its channels.
      EnableNetworkIsolation: true,
    };

    const jobArns = stack.formatArn({
      service: 'sagemaker',
      resource: 'training-job',
      resourceName: `${this.jobNamePrefix}-*`,
    });
    const onEvent = nodeFunction(this, 'OnEvent', {
      entry: 'lambda/training-job/on-event.ts',
      description: 'Starts (or reuses) the SageMaker training job',
      logRetentionDays: props.logRetentionDays,
      timeout: Duration.minutes(1),
    });
    onEvent.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'sagemaker:CreateTrainingJob',
          'sagemaker:DescribeTrainingJob',
          'sagemaker:StopTrainingJob',
        ],
        resources: [jobArns],
      }),
    );
    this.role.grantPassRole(onEvent.grantPrincipal);
    const isComplete = nodeFunction(this, 'IsComplete', {
      entry: 'lambda/training-job/is-complete.ts',
      description: 'Reports whether the SageMaker training job has ended',
      logRetentionDays: props.logRetentionDays,
      timeout: Duration.minutes(1),
    });
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['sagemaker:DescribeTrainingJob'], resources: [jobArns] }),
    );
    for (const fn of [onEvent, isComplete]) {
      suppress(fn.role as iam.Role, [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            "Job names are derived at synth time from their inputs; the wildcard covers only this stack's name prefix (old jobs must still be stopped/described after an update).",
          findings: [
            `Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:training-job/${this.jobNamePrefix}-*`,
          ],
        },
      ]);
    }

    const provider = new Provider(this, 'Provider', {
      onEventHandler: onEvent,
      isCompleteHandler: isComplete,
      queryInterval: Duration.minutes(1),
      // CloudFormation's ceiling; MaxRuntime/MaxWait are validated to fit inside it.
      totalTimeout: Duration.minutes(60),
      logGroup: new logs.LogGroup(this, 'ProviderLogs', { retention: props.logRetentionDays }),
    });
    suppressProviderFindings(provider, [onEvent, isComplete]);

    const resource = new CustomResource(this, 'Resource', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::SageMakerTrainingJob',
      properties: { Request: stack.toJsonString(request) },
    });
    // The data must be in place and the role able to read it before the job starts.
    resource.node.addDependency(props.dataset.deployment, this.role);
    this.modelDataUrl = resource.getAttString('ModelDataUrl');
  }

  private createJobRole(props: TrainingJobProps): iam.Role {
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
        reason: STAR_ONLY_ACTIONS_REASON,
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

function suppressProviderFindings(provider: Provider, handlers: IConstruct[]): void {
  // The framework's own functions, which the waiter state machine invokes.
  const framework = ['framework-isComplete', 'framework-onTimeout'].map((id) => provider.node.findChild(id));
  suppress(provider, [
    {
      id: 'AwsSolutions-IAM5',
      reason:
        "CDK Provider framework: `<function ARN>:*` covers the versions of this construct's own onEvent/isComplete/onTimeout functions, which it must invoke.",
      findings: [...handlers, ...framework].map((fn) => `Resource::${arnRef(fn)}:*`),
    },
    {
      id: 'AwsSolutions-IAM4',
      reason:
        'CDK Provider framework functions: AWSLambdaBasicExecutionRole only lets them write their own CloudWatch logs.',
      findings: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole'],
    },
    {
      id: 'AwsSolutions-L1',
      reason: 'CDK Provider framework functions: their runtime is chosen by aws-cdk-lib, not by this app.',
    },
    {
      id: 'AwsSolutions-SF1',
      reason:
        'The Provider waiter state machine only re-invokes isComplete once a minute; every poll is already logged by the isComplete Lambda.',
    },
    {
      id: 'AwsSolutions-SF2',
      reason:
        'X-Ray tracing of a once-a-minute polling loop adds cost and no insight; the Lambdas log every poll.',
    },
  ]);
}
