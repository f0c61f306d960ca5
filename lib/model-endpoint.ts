import { Stack } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import type * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sagemaker from 'aws-cdk-lib/aws-sagemaker';
import { Construct } from 'constructs';
import { arnRef, suppress } from './nag.ts';
import { grantSageMakerBasics, STAR_ONLY_ACTIONS_REASON } from './sagemaker-role.ts';

export interface ModelEndpointProps {
  readonly bucket: s3.IBucket;
  /** The same image the training job ran; SageMaker starts it with `serve`. */
  readonly image: ecrAssets.DockerImageAsset;
  /** s3:// URL of the training job's model.tar.gz. */
  readonly modelDataUrl: string;
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
}

export const VARIANT_NAME = 'AllTraffic';
const DATA_CAPTURE_PREFIX = 'data-capture/';

/**
 * The real-time endpoint: model, endpoint config and endpoint, all named by CloudFormation
 * (a fixed config name would block every replacement), with target-tracking autoscaling.
 */
export class ModelEndpoint extends Construct {
  /** Generated endpoint name. */
  readonly endpointName: string;
  readonly endpointArn: string;
  readonly variantName = VARIANT_NAME;

  constructor(scope: Construct, id: string, props: ModelEndpointProps) {
    super(scope, id);
    const stack = Stack.of(this);
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
        reason: STAR_ONLY_ACTIONS_REASON,
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

    const model = new sagemaker.CfnModel(this, 'Model', {
      executionRoleArn: role.roleArn,
      primaryContainer: { image: props.image.imageUri, modelDataUrl: props.modelDataUrl },
      enableNetworkIsolation: true,
    });
    // SageMaker checks the role when it creates the model, so its policy must exist first.
    model.node.addDependency(role);

    const minInstances = props.minInstances ?? 1;
    const config = new sagemaker.CfnEndpointConfig(this, 'Config', {
      productionVariants: [
        {
          variantName: VARIANT_NAME,
          modelName: model.attrModelName,
          initialInstanceCount: minInstances,
          instanceType: props.instanceType ?? 'ml.c5.xlarge',
          initialVariantWeight: 1,
        },
      ],
      ...(props.dataCaptureSamplePercent !== undefined
        ? {
            dataCaptureConfig: {
              enableCapture: true,
              initialSamplingPercentage: props.dataCaptureSamplePercent,
              destinationS3Uri: `s3://${props.bucket.bucketName}/${DATA_CAPTURE_PREFIX}`,
              captureOptions: [{ captureMode: 'Input' }, { captureMode: 'Output' }],
            },
          }
        : {}),
    });
    const endpoint = new sagemaker.CfnEndpoint(this, 'Endpoint', {
      endpointConfigName: config.attrEndpointConfigName,
    });
    this.endpointName = endpoint.attrEndpointName;
    // Ref of AWS::SageMaker::Endpoint is its ARN.
    this.endpointArn = endpoint.ref;

    const scaling = new appscaling.ScalableTarget(this, 'Scaling', {
      serviceNamespace: appscaling.ServiceNamespace.SAGEMAKER,
      resourceId: `endpoint/${endpoint.attrEndpointName}/variant/${VARIANT_NAME}`,
      scalableDimension: 'sagemaker:variant:DesiredInstanceCount',
      minCapacity: minInstances,
      maxCapacity: props.maxInstances ?? 2,
      // SageMaker scaling always runs as this service-linked role (created on first use).
      role: iam.Role.fromRoleArn(
        this,
        'ScalingRole',
        stack.formatArn({
          service: 'iam',
          region: '',
          resource: 'role',
          resourceName:
            'aws-service-role/sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint',
        }),
      ),
    });
    scaling.scaleToTrackMetric('InvocationsPerInstance', {
      predefinedMetric: appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
      targetValue: props.targetInvocationsPerInstance ?? 100,
    });
  }
}
