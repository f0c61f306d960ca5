import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { suppress } from './nag.ts';

export interface DataBucketProps {
  /** `retain` keeps the bucket (and every model artifact) when the stack is deleted. @default 'retain' */
  readonly removalPolicy?: 'retain' | 'destroy';
  /** Days a noncurrent object version is kept before expiry. @default 90 */
  readonly noncurrentVersionDays?: number;
  /**
   * A customer-managed key (the strict configuration): the data bucket is SSE-KMS with an S3
   * Bucket Key (fewer KMS calls), and the access-log bucket, which S3 allows SSE-S3 only, is
   * versioned. @default SSE-S3 for both
   */
  readonly encryptionKey?: kms.IKey;
}

/**
 * The one bucket for datasets, model artifacts, checkpoints and data capture: encrypted,
 * private, TLS-only, versioned, with server access logs in a second bucket.
 */
export class DataBucket extends Construct {
  readonly bucket: s3.Bucket;
  readonly accessLogs: s3.Bucket;

  constructor(scope: Construct, id: string, props: DataBucketProps = {}) {
    super(scope, id);
    const destroy = props.removalPolicy === 'destroy';
    const removal = {
      removalPolicy: destroy ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
      autoDeleteObjects: destroy,
    };
    const key = props.encryptionKey;
    this.accessLogs = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        key
          ? { expiration: Duration.days(365), noncurrentVersionExpiration: Duration.days(1) }
          : { expiration: Duration.days(365) },
      ],
      ...(key ? { versioned: true } : {}),
      ...removal,
    });
    suppress(this.accessLogs, [
      {
        id: 'AwsSolutions-S1',
        reason: 'This is the access-log target bucket; logging it into itself would loop.',
      },
    ]);
    this.bucket = new s3.Bucket(this, 'Bucket', {
      ...(key
        ? { encryption: s3.BucketEncryption.KMS, encryptionKey: key, bucketKeyEnabled: true }
        : { encryption: s3.BucketEncryption.S3_MANAGED }),
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: 'data-bucket/',
      lifecycleRules: [
        {
          noncurrentVersionExpiration: Duration.days(props.noncurrentVersionDays ?? 90),
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
        // Spot checkpoints only matter while their job runs.
        { prefix: 'checkpoints/', expiration: Duration.days(30) },
      ],
      ...removal,
    });
  }
}
