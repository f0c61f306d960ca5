import { ArnFormat, Aspects, type IAspect, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct, type IConstruct } from 'constructs';

/**
 * The strict configuration's customer-managed keys, rotated yearly:
 *
 * - `data`: everything that holds images or what was learnt from them: the bucket's objects
 *   (SSE-KMS with an S3 Bucket Key: datasets, models, checkpoints, data capture), the training
 *   job's volume and output, the endpoint's storage volume and its data capture. Only the roles
 *   of this stack get to use it, each for what it does (IAM grants on this key's ARN).
 * - `logs`: every CloudWatch log group of the stack. Its policy lets CloudWatch Logs of this
 *   region use it for this account's log groups only (encryption-context condition).
 *
 * The key policies keep CDK's default statement for the account (`kms:*` for the root
 * principal), which delegates use of the key to IAM policies: without it no IAM policy could
 * grant the key, and the key could not be administered.
 */
export class EncryptionKeys extends Construct {
  readonly data: kms.Key;
  readonly logs: kms.Key;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    const stack = Stack.of(this);
    this.data = new kms.Key(this, 'DataKey', {
      enableKeyRotation: true,
      description:
        'Brain tumor data: S3 objects (datasets, models, checkpoints, data capture), training and endpoint volumes',
    });
    this.logs = new kms.Key(this, 'LogsKey', {
      enableKeyRotation: true,
      description: 'Brain tumor CloudWatch log groups',
    });
    // As CloudWatch Logs documents it: the regional service principal, for this account's groups only.
    this.logs.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal(`logs.${stack.region}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: {
          ArnLike: {
            'kms:EncryptionContext:aws:logs:arn': stack.formatArn({
              service: 'logs',
              resource: 'log-group',
              resourceName: '*',
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          },
        },
      }),
    );
  }

  /** Encrypts every log group of `scope` (present and future, CDK's helpers' included) with the logs key. */
  encryptLogGroups(scope: IConstruct): void {
    Aspects.of(scope).add(new EncryptLogGroups(this.logs));
  }
}

class EncryptLogGroups implements IAspect {
  constructor(private readonly key: kms.IKey) {}

  visit(node: IConstruct): void {
    if (node instanceof logs.CfnLogGroup && node.kmsKeyId === undefined) node.kmsKeyId = this.key.keyArn;
  }
}

/**
 * What a SageMaker execution role needs of the data key: read objects it encrypted (datasets,
 * model artifacts), write new ones (`write`: model output, checkpoints, data capture), and let
 * SageMaker encrypt the instance's volume (a grant for the AWS resource only).
 */
export function grantDataKeyToExecutionRole(key: kms.IKey, role: iam.IGrantable, write: boolean): void {
  key.grant(role, 'kms:Decrypt', ...(write ? ['kms:Encrypt', 'kms:GenerateDataKey'] : []));
  grantKeyForAwsResources(key, role);
}

/**
 * `kms:CreateGrant` on the key, only for grants an AWS service creates for its own resources
 * (SageMaker for a job's or an endpoint's volume): what the caller of CreateTrainingJob and
 * CreateEndpoint needs when the request names a customer-managed key.
 */
export function grantKeyForAwsResources(key: kms.IKey, principal: iam.IGrantable): void {
  key.grant(principal, 'kms:DescribeKey');
  principal.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ['kms:CreateGrant'],
      resources: [key.keyArn],
      conditions: { Bool: { 'kms:GrantIsForAWSResource': 'true' } },
    }),
  );
}
