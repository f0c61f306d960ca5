import { mkdir } from 'node:fs/promises';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';

/**
 * Local mode's S3: an S3-compatible server (s3rver) on loopback, holding its objects in a
 * folder, reached through the real `@aws-sdk/client-s3`. No mock: the code that uploads the
 * dataset and the model is the code that talks to AWS.
 */
export interface LocalS3Options {
  /** Where objects live on disk. */
  directory: string;
  /** Port on 127.0.0.1. Default 0 (any free port). */
  port?: number;
  /** Buckets to create on start. */
  buckets?: string[];
}

export interface LocalS3 {
  endpoint: string;
  client: S3Client;
  close: () => Promise<void>;
}

export async function startLocalS3(opts: LocalS3Options): Promise<LocalS3> {
  await mkdir(opts.directory, { recursive: true });
  const server = new S3rver({
    address: '127.0.0.1',
    port: opts.port ?? 0,
    silent: true,
    directory: opts.directory,
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = s3Client(endpoint);
  for (const bucket of opts.buckets ?? []) {
    await client.send(new CreateBucketCommand({ Bucket: bucket })).catch((err: { name?: string }) => {
      if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
    });
  }
  return {
    endpoint,
    client,
    close: async () => {
      client.destroy();
      await server.close();
    },
  };
}

/**
 * An S3 client for AWS (no endpoint: region and credentials from the environment) or for an
 * S3-compatible server on loopback (path-style addressing, dummy credentials, and checksums only
 * where S3 requires them, since s3rver does not implement the newer flexible checksums).
 */
export function s3Client(endpoint?: string): S3Client {
  if (!endpoint) return new S3Client({});
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
