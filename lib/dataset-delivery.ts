import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { AssetHashType, Size, Stack } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import { arnRef, suppress } from './nag.ts';
import type { SageMakerNetwork } from './network.ts';
import { hashDataset, listDatasetFiles } from './storage/dataset-files.ts';

/** A dataset folder as seen at synth time. */
export interface DatasetInfo {
  /** Absolute folder. */
  readonly dir: string;
  /** Content hash of every image (names and bytes); the S3 prefix and the job name derive from it. */
  readonly hash: string;
  /** Files that are not images (README, .DS_Store): left out of the upload as of the hash. */
  readonly otherFiles: string[];
}

/**
 * Hashes the dataset (streaming, the same hash `brain-tumor upload-data` uses) and checks that
 * both channel folders hold images, so a wrong path fails at synth rather than in the job.
 */
export async function inspectDataset(dir: string, channelDirs: string[]): Promise<DatasetInfo> {
  const images = await listDatasetFiles(dir);
  for (const sub of channelDirs) {
    if (!images.some((f) => f.startsWith(`${sub}/`))) {
      throw new Error(`dataset ${dir} has no images under ${sub}/ (set datasetTrainDir/datasetTestDir)`);
    }
  }
  const imageSet = new Set(images);
  const all = await readdir(dir, { recursive: true, withFileTypes: true });
  const otherFiles = all
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .filter((f) => !imageSet.has(f))
    .sort();
  return { dir, hash: await hashDataset(dir), otherFiles };
}

export interface DatasetDeliveryProps {
  readonly bucket: s3.IBucket;
  readonly dataset: DatasetInfo;
  /** Sub-folder used as the `train` channel. @default 'Training' */
  readonly trainDir?: string;
  /** Sub-folder used as the `test` channel. @default 'Testing' */
  readonly testDir?: string;
  readonly logRetentionDays: number;
  /**
   * Run the upload handler in this VPC (strict): it copies the images from the CDK asset bucket
   * to the data bucket through the S3 gateway endpoint. @default outside any VPC
   */
  readonly network?: SageMakerNetwork;
}

/**
 * Uploads the dataset to `s3://bucket/datasets/<hash>/` during deploy. The prefix is versioned
 * by content, so old versions stay untouched and an unchanged dataset uploads nothing.
 */
export class DatasetDelivery extends Construct {
  /** `datasets/<hash>/` */
  readonly prefix: string;
  readonly trainUri: string;
  readonly testUri: string;
  readonly deployment: s3deploy.BucketDeployment;

  constructor(scope: Construct, id: string, props: DatasetDeliveryProps) {
    super(scope, id);
    this.prefix = `datasets/${props.dataset.hash}/`;
    const base = `s3://${props.bucket.bucketName}/${this.prefix}`;
    this.trainUri = `${base}${props.trainDir ?? 'Training'}/`;
    this.testUri = `${base}${props.testDir ?? 'Testing'}/`;
    this.deployment = new s3deploy.BucketDeployment(this, 'Upload', {
      sources: [
        s3deploy.Source.asset(props.dataset.dir, {
          // Our content hash is the asset hash, so CDK does not fingerprint the folder again.
          assetHash: props.dataset.hash,
          assetHashType: AssetHashType.CUSTOM,
          exclude: props.dataset.otherFiles.map(escapeGlob),
        }),
      ],
      destinationBucket: props.bucket,
      destinationKeyPrefix: this.prefix,
      prune: false,
      retainOnDelete: true,
      // The handler unzips the whole dataset in /tmp.
      memoryLimit: 2048,
      ephemeralStorageSize: Size.gibibytes(10),
      logGroup: new logs.LogGroup(this, 'UploadLogs', { retention: props.logRetentionDays }),
      ...(props.network ? { vpc: props.network.vpc, vpcSubnets: { subnets: props.network.subnets } } : {}),
    });
    // In the VPC the handler reaches S3 only through the gateway endpoint (a child of the VPC).
    if (props.network) this.deployment.node.addDependency(props.network.vpc);
    suppressBucketDeploymentFindings(Stack.of(this), props.bucket, props.network !== undefined);
    if (props.bucket.encryptionKey) {
      const handler = Stack.of(this).node.children.find((c) =>
        c.node.id.startsWith('Custom::CDKBucketDeployment'),
      );
      if (handler) {
        suppress(handler, [
          {
            id: 'AwsSolutions-IAM5',
            reason:
              "CDK BucketDeployment handler writing to the SSE-KMS data bucket (strict): aws-cdk-lib's bucket grant adds kms:GenerateDataKey*/ReEncrypt* on the data key only.",
            findings: ['Action::kms:GenerateDataKey*', 'Action::kms:ReEncrypt*'],
          },
        ]);
      }
    }
  }
}

function escapeGlob(file: string): string {
  return file.replace(/[\\*?[\]{}()!]/g, '\\$&');
}

/** The upload handler is a CDK-owned singleton Lambda; its findings are acknowledged once per stack. */
function suppressBucketDeploymentFindings(stack: Stack, bucket: s3.IBucket, inVpc: boolean): void {
  const handler = stack.node.children.find((c) => c.node.id.startsWith('Custom::CDKBucketDeployment'));
  if (!handler) return;
  const qualifier = stack.synthesizer.bootstrapQualifier ?? 'hnb659fds';
  suppress(handler, [
    {
      id: 'AwsSolutions-IAM4',
      reason:
        'CDK BucketDeployment handler: AWSLambdaBasicExecutionRole only lets it write its own CloudWatch logs.',
      findings: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole'],
    },
    ...(inVpc
      ? [
          {
            id: 'AwsSolutions-IAM4',
            reason:
              'CDK BucketDeployment handler in the VPC (strict): AWSLambdaVPCAccessExecutionRole only lets Lambda manage its network interfaces there.',
            findings: [
              'Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole',
            ],
          },
        ]
      : []),
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'CDK BucketDeployment handler: it copies the dataset zip from the CDK asset bucket into the data bucket, so it needs object-level read on the former and write on the latter (CDK-generated grant).',
      findings: [
        'Action::s3:Abort*',
        'Action::s3:DeleteObject*',
        'Action::s3:GetBucket*',
        'Action::s3:GetObject*',
        'Action::s3:List*',
        `Resource::${arnRef(bucket)}/*`,
        `Resource::arn:<AWS::Partition>:s3:::cdk-${qualifier}-assets-<AWS::AccountId>-<AWS::Region>/*`,
      ],
    },
    {
      id: 'AwsSolutions-L1',
      reason: 'CDK BucketDeployment handler: its runtime is chosen by aws-cdk-lib, not by this app.',
    },
  ]);
}
