import path from 'node:path';
import { Annotations, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps, Token } from 'aws-cdk-lib';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import type { Construct } from 'constructs';
import { Alarms, vcpusOf } from './alarms.ts';
import { type AppConfig, REPO_ROOT } from './config.ts';
import { Dashboard } from './dashboard.ts';
import { DataBucket } from './data-bucket.ts';
import { DatasetDelivery, type DatasetInfo } from './dataset-delivery.ts';
import { applyRemovalSetting, giveFunctionsLogGroups, SageMakerLogRetention } from './housekeeping.ts';
import { ModelDeployment } from './model-deployment.ts';
import { ModelRegistry } from './model-registry.ts';
import { PredictApi } from './predict-api.ts';
import { trainerFingerprint } from './trainer-fingerprint.ts';
import { TrainingPipeline } from './training-pipeline.ts';

export interface BrainTumorStackProps extends StackProps {
  readonly config: AppConfig;
  /** The dataset to upload and train on; without it only the bucket and alarm topic are deployed. */
  readonly dataset?: DatasetInfo;
}

/**
 * Wires the constructs: bucket -> dataset -> training state machine -> model registry (approval
 * gate) -> deployment state machine -> endpoint -> API, plus alarms.
 */
const CONTAINER_DIR = path.join(REPO_ROOT, 'training-container');

/** Lower-case name prefix for jobs, models and the endpoint (SageMaker names allow [a-z0-9-]). */
function stack_prefix(stackName: string): string {
  return stackName
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 40);
}

export class BrainTumorStack extends Stack {
  readonly data: DataBucket;

  constructor(scope: Construct, id: string, props: BrainTumorStackProps) {
    super(scope, id, {
      description: 'Brain tumor MRI classifier: SageMaker GPU training, real-time endpoint, HTTPS API',
      ...props,
    });
    const { config, dataset } = props;
    const data = new DataBucket(this, 'DataBucket', { removalPolicy: config.bucketRemovalPolicy });
    this.data = data;
    new CfnOutput(this, 'BucketName', {
      value: data.bucket.bucketName,
      description: 'Data and model bucket',
    });

    if (!dataset) {
      Annotations.of(this).addWarningV2(
        'brain-tumor:no-dataset',
        `No dataset at ${config.datasetDir}: training job, endpoint and API are left out. ` +
          'Set -c datasetPath=<image folder> to deploy them.',
      );
      const alarms = new Alarms(this, 'Alarms', { email: config.alarmEmail });
      new CfnOutput(this, 'AlarmTopicArn', { value: alarms.topic.topicArn });
      this.housekeeping(config);
      return;
    }

    const delivery = new DatasetDelivery(this, 'Dataset', {
      bucket: data.bucket,
      dataset,
      trainDir: config.datasetTrainDir,
      testDir: config.datasetTestDir,
      logRetentionDays: config.logRetentionDays,
    });
    // Synth only stages the folder; Docker builds it during `cdk deploy`.
    // Only when set, so the default build (and its asset hash) is the Dockerfile's own.
    const buildArgs: Record<string, string> = config.containerBaseImage
      ? { BASE_IMAGE: config.containerBaseImage }
      : {};
    const image = new ecrAssets.DockerImageAsset(this, 'Image', {
      directory: CONTAINER_DIR,
      platform: ecrAssets.Platform.LINUX_AMD64,
      ...(config.containerBaseImage ? { buildArgs } : {}),
    });
    const namePrefix = stack_prefix(this.stackName);
    const removalPolicy = config.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
    const registry = new ModelRegistry(this, 'Registry', {
      namePrefix,
      thresholds: {
        accuracy: config.approvalMinAccuracy,
        leakFreeAccuracy: config.approvalMinLeakFreeAccuracy,
        classRecall: config.approvalMinClassRecall,
      },
      logRetentionDays: config.logRetentionDays,
      removalPolicy,
    });
    const training = new TrainingPipeline(this, 'Training', {
      bucket: data.bucket,
      image,
      trainerFingerprint: trainerFingerprint(CONTAINER_DIR, buildArgs),
      dataset: delivery,
      registry,
      instanceType: config.trainingInstanceType,
      volumeSizeGb: config.trainingVolumeSizeGb,
      maxRuntime: Duration.minutes(config.trainingMaxRuntimeMinutes),
      useSpot: config.trainingUseSpot,
      maxWait: Duration.minutes(config.trainingMaxWaitMinutes),
      hyperparameters: config.trainingHyperparameters,
      revision: config.trainingRevision,
      logRetentionDays: config.logRetentionDays,
      removalPolicy,
    });
    const endpoint = new ModelDeployment(this, 'Endpoint', {
      bucket: data.bucket,
      image,
      registry,
      namePrefix,
      instanceType: config.endpointInstanceType,
      minInstances: config.endpointMinInstances,
      maxInstances: config.endpointMaxInstances,
      targetInvocationsPerInstance: config.endpointTargetInvocationsPerInstance,
      dataCaptureSamplePercent: config.dataCapture ? config.dataCaptureSamplePercent : undefined,
      rollbackLatencyMs: config.modelLatencyAlarmMs,
      logRetentionDays: config.logRetentionDays,
      removalPolicy,
    });
    const api = new PredictApi(this, 'Api', {
      endpointName: endpoint.endpointName,
      endpointArn: endpoint.endpointArn,
      auth: config.apiAuth,
      rateLimit: config.apiRateLimit,
      burstLimit: config.apiBurstLimit,
      quotaPerDay: config.apiQuotaPerDay,
      integrationTimeout: Duration.seconds(config.apiIntegrationTimeoutSeconds),
      corsAllowOrigins: config.corsAllowOrigins,
      logRetentionDays: config.logRetentionDays,
    });
    const watchedEndpoint = {
      name: endpoint.endpointName,
      variantName: endpoint.variantName,
      vcpus: vcpusOf(config.endpointInstanceType),
    };
    const alarms = new Alarms(this, 'Alarms', {
      email: config.alarmEmail,
      endpoint: watchedEndpoint,
      modelLatencyMs: config.modelLatencyAlarmMs,
      endpointCpuPercent: config.endpointCpuAlarmPercent,
      endpointMemoryPercent: config.endpointMemoryAlarmPercent,
      serverErrorThreshold: config.serverErrorAlarmThreshold,
      apiStage: api.api.deploymentStage,
      apiLatencyMs: config.apiLatencyAlarmMs,
      predictFunction: api.handler,
      functions: [{ label: 'Predict', fn: api.handler }],
      trainingJobNamePrefix: training.jobNamePrefix,
    });
    const dashboard = new Dashboard(this, 'Dashboard', {
      dashboardName: `${this.stackName}-${this.region}`,
      apiStage: api.api.deploymentStage,
      predictFunction: api.handler,
      endpoint: watchedEndpoint,
      trainingJobRule: alarms.trainingJobRule,
      alarms: alarms.alarms,
    });
    // SageMaker creates these log groups itself, without retention.
    const sagemakerLogs = new SageMakerLogRetention(this, 'SageMakerLogs', {
      retentionDays: config.logRetentionDays,
      removalPolicy: config.removalPolicy,
      endpointName: endpoint.endpointName,
    });
    // With a fixed endpoint name the group can outlive the endpoint on delete, so its last logs
    // (container shutdown) land in a group that is then deleted rather than recreated.
    if (sagemakerLogs.endpoint && !Token.isUnresolved(endpoint.endpointName)) {
      endpoint.node.addDependency(sagemakerLogs.endpoint);
    }

    new CfnOutput(this, 'ApiUrl', { value: api.url, description: 'POST images or JSON here' });
    if (api.apiKey) {
      new CfnOutput(this, 'ApiKeyId', {
        value: api.apiKey.keyId,
        description: 'aws apigateway get-api-key --include-value --api-key <id>',
      });
    }
    new CfnOutput(this, 'EndpointName', { value: endpoint.endpointName });
    new CfnOutput(this, 'TrainingJobName', { value: training.jobName });
    new CfnOutput(this, 'TrainingStateMachineArn', { value: training.stateMachine.stateMachineArn });
    new CfnOutput(this, 'DeploymentStateMachineArn', { value: endpoint.stateMachine.stateMachineArn });
    new CfnOutput(this, 'ModelPackageGroup', { value: registry.groupName });
    new CfnOutput(this, 'DatasetUri', { value: `s3://${data.bucket.bucketName}/${delivery.prefix}` });
    new CfnOutput(this, 'AlarmTopicArn', { value: alarms.topic.topicArn });
    new CfnOutput(this, 'DashboardName', { value: dashboard.dashboard.dashboardName });
    this.housekeeping(config);
  }

  /** Last: log groups (with retention) for functions that have none, then the removal setting. */
  private housekeeping(config: AppConfig): void {
    giveFunctionsLogGroups(this, config.logRetentionDays, config.removalPolicy);
    applyRemovalSetting(this, config.removalPolicy);
  }
}
