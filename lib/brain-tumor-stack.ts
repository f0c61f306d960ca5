import path from 'node:path';
import { Annotations, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps, Token } from 'aws-cdk-lib';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import type { Construct } from 'constructs';
import { Alarms, vcpusOf } from './alarms.ts';
import { BatchTransform } from './batch-transform.ts';
import { type AppConfig, REPO_ROOT } from './config.ts';
import { Dashboard } from './dashboard.ts';
import { DataBucket } from './data-bucket.ts';
import { DatasetDelivery, type DatasetInfo } from './dataset-delivery.ts';
import { EncryptionKeys } from './encryption.ts';
import { acknowledgeHipaaFindings } from './hipaa.ts';
import { applyRemovalSetting, giveFunctionsLogGroups, SageMakerLogRetention } from './housekeeping.ts';
import { ModelDeployment } from './model-deployment.ts';
import { ModelRegistry } from './model-registry.ts';
import { Network } from './network.ts';
import { PredictApi } from './predict-api.ts';
import { trainerFingerprint } from './trainer-fingerprint.ts';
import { TrainingPipeline } from './training-pipeline.ts';
import { WebPage } from './web-page.ts';

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
export function namePrefixOf(stackName: string): string {
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
    const removalPolicy = config.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
    // Strict (HIPAA-minded): customer-managed keys and, with a dataset, an isolated VPC. Nothing
    // of it exists in the default configuration.
    const keys = config.strict ? new EncryptionKeys(this, 'Keys') : undefined;
    const data = new DataBucket(this, 'DataBucket', {
      removalPolicy: config.bucketRemovalPolicy,
      encryptionKey: keys?.data,
    });
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
      this.housekeeping(config, keys);
      return;
    }
    const network = config.strict
      ? new Network(this, 'Network', { logRetentionDays: config.logRetentionDays, removalPolicy })
      : undefined;

    const delivery = new DatasetDelivery(this, 'Dataset', {
      bucket: data.bucket,
      dataset,
      trainDir: config.datasetTrainDir,
      testDir: config.datasetTestDir,
      logRetentionDays: config.logRetentionDays,
      // The upload handler carries the images: in the VPC (S3 through the gateway endpoint).
      network,
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
    const namePrefix = namePrefixOf(this.stackName);
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
      namePrefix,
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
      encryptionKey: keys?.data,
      network,
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
      encryptionKey: keys?.data,
      network,
    });
    // Batch transform with the model the endpoint serves (started by `brain-tumor batch --aws`).
    const batch = new BatchTransform(this, 'Batch', {
      bucket: data.bucket,
      namePrefix,
      deployment: endpoint,
      stateMachineName: `${this.stackName}-batch`,
      logRetentionDays: config.logRetentionDays,
      removalPolicy,
      encryptionKey: keys?.data,
      network: network ? { vpc: network.vpc, subnets: network.subnets } : undefined,
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
      ...(network
        ? {
            logPredictions: false,
            logCallerIp: false,
            tracing: true,
            network: {
              vpc: network.vpc,
              subnets: network.subnets,
              securityGroup: network.lambdaSecurityGroup(
                this,
                'PredictSecurityGroup',
                'Predict Lambda: HTTPS to the VPC endpoints (SageMaker Runtime) only',
              ),
            },
          }
        : {}),
    });
    // The web page at GET / of the same API; only with API keys (a browser cannot SigV4-sign).
    if (api.apiKey) new WebPage(this, 'WebPage', { api: api.api });
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
      endpointEncryptionKey: keys?.logs,
      transformJobs: true,
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
    new CfnOutput(this, 'BatchStateMachineArn', {
      value: batch.stateMachine.stateMachineArn,
      description: 'brain-tumor batch --aws --prefix <images/> (docs/batch.md)',
    });
    new CfnOutput(this, 'ModelPackageGroup', { value: registry.groupName });
    new CfnOutput(this, 'DatasetUri', { value: `s3://${data.bucket.bucketName}/${delivery.prefix}` });
    new CfnOutput(this, 'AlarmTopicArn', { value: alarms.topic.topicArn });
    new CfnOutput(this, 'DashboardName', { value: dashboard.dashboard.dashboardName });
    if (network) new CfnOutput(this, 'VpcId', { value: network.vpc.vpcId });
    this.housekeeping(config, keys);
  }

  /**
   * Last: log groups (with retention) for functions that have none, then the removal setting;
   * strict: every log group encrypted with the logs key, and the HIPAA findings that do not
   * apply acknowledged resource by resource.
   */
  private housekeeping(config: AppConfig, keys: EncryptionKeys | undefined): void {
    giveFunctionsLogGroups(this, config.logRetentionDays, config.removalPolicy);
    applyRemovalSetting(this, config.removalPolicy);
    if (keys) {
      keys.encryptLogGroups(this);
      acknowledgeHipaaFindings(this);
    }
  }
}
