import { ArnFormat, Stack } from 'aws-cdk-lib';
import type * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';

/** The shared IAM statement acknowledged by both SageMaker roles. */
export const STAR_ONLY_ACTIONS_REASON =
  'ecr:GetAuthorizationToken and cloudwatch:PutMetricData accept only resource * (AWS design); PutMetricData is limited by a namespace condition.';

/** The same, for a role that runs in the VPC (strict): the EC2 statements too. */
export const STAR_ONLY_ACTIONS_VPC_REASON =
  'ecr:GetAuthorizationToken, cloudwatch:PutMetricData (namespace-conditioned) and the EC2 Describe* calls SageMaker makes for VPC jobs and models accept only resource *; the network-interface actions are conditioned on this VPC (ec2:Vpc).';

/**
 * What every SageMaker execution role of ours needs besides its S3 prefixes: pull our image,
 * write its own CloudWatch log groups (`logGroupPattern`, e.g. `/aws/sagemaker/Endpoints/*`),
 * and publish SageMaker's metrics.
 */
export function grantSageMakerBasics(
  role: iam.Role,
  image: ecrAssets.DockerImageAsset,
  logGroupPattern: string,
): void {
  image.repository.grantPull(role);
  grantSageMakerLogs(role, logGroupPattern);
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['cloudwatch:PutMetricData'],
      resources: ['*'],
      conditions: { StringLike: { 'cloudwatch:namespace': '/aws/sagemaker/*' } },
    }),
  );
}

/** Let SageMaker write the role's job or endpoint logs: log groups matching `logGroupPattern`. */
export function grantSageMakerLogs(role: iam.Role, logGroupPattern: string): void {
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: [
        'logs:CreateLogGroup',
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        'logs:DescribeLogStreams',
      ],
      resources: [
        Stack.of(role).formatArn({
          service: 'logs',
          resource: 'log-group',
          resourceName: logGroupPattern,
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        }),
      ],
    }),
  );
}
