import path from 'node:path';
import { Annotations, CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import type { Construct } from 'constructs';
import { Alarms } from './alarms.ts';
import { type AppConfig, REPO_ROOT } from './config.ts';
import { DataBucket } from './data-bucket.ts';
import { DatasetDelivery, type DatasetInfo } from './dataset-delivery.ts';
import { ModelEndpoint } from './model-endpoint.ts';
import { PredictApi } from './predict-api.ts';
import { TrainingJob } from './training-job.ts';

export interface BrainTumorStackProps extends StackProps {
  readonly config: AppConfig;
  /** The dataset to upload and train on; without it only the bucket and alarm topic are deployed. */
  readonly dataset?: DatasetInfo;
}

/** Wires the constructs: bucket -> dataset -> training job -> endpoint -> API, plus alarms. */
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
    const image = new ecrAssets.DockerImageAsset(this, 'Image', {
      directory: path.join(REPO_ROOT, 'training-container'),
      platform: ecrAssets.Platform.LINUX_AMD64,
    });
    const training = new TrainingJob(this, 'Training', {
      bucket: data.bucket,
      image,
      dataset: delivery,
      instanceType: config.trainingInstanceType,
      volumeSizeGb: config.trainingVolumeSizeGb,
      maxRuntime: Duration.minutes(config.trainingMaxRuntimeMinutes),
      useSpot: config.trainingUseSpot,
      maxWait: Duration.minutes(config.trainingMaxWaitMinutes),
      hyperparameters: config.trainingHyperparameters,
      revision: config.trainingRevision,
      logRetentionDays: config.logRetentionDays,
    });
    const endpoint = new ModelEndpoint(this, 'Endpoint', {
      bucket: data.bucket,
      image,
      modelDataUrl: training.modelDataUrl,
      instanceType: config.endpointInstanceType,
      minInstances: config.endpointMinInstances,
      maxInstances: config.endpointMaxInstances,
      targetInvocationsPerInstance: config.endpointTargetInvocationsPerInstance,
      dataCaptureSamplePercent: config.dataCapture ? config.dataCaptureSamplePercent : undefined,
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
    const alarms = new Alarms(this, 'Alarms', {
      email: config.alarmEmail,
      endpoint: { name: endpoint.endpointName, variantName: endpoint.variantName },
      modelLatencyMs: config.modelLatencyAlarmMs,
      functions: [{ label: 'Predict', fn: api.handler }],
      trainingJobNamePrefix: training.jobNamePrefix,
    });

    new CfnOutput(this, 'ApiUrl', { value: api.url, description: 'POST images or JSON here' });
    if (api.apiKey) {
      new CfnOutput(this, 'ApiKeyId', {
        value: api.apiKey.keyId,
        description: 'aws apigateway get-api-key --include-value --api-key <id>',
      });
    }
    new CfnOutput(this, 'EndpointName', { value: endpoint.endpointName });
    new CfnOutput(this, 'TrainingJobName', { value: training.jobName });
    new CfnOutput(this, 'DatasetUri', { value: `s3://${data.bucket.bucketName}/${delivery.prefix}` });
    new CfnOutput(this, 'AlarmTopicArn', { value: alarms.topic.topicArn });
  }
}
