import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { listDatasetFiles } from './dataset-files.ts';

/**
 * Dataset and model transfers through `@aws-sdk/client-s3`. The same functions talk to AWS
 * (`brain-tumor upload-data`) and to the S3-compatible server of local mode.
 */
export interface TransferOptions {
  /** Parallel requests. Default 16. */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface UploadResult {
  uploaded: number;
  skipped: number;
}

/** Uploads every image below `dir` to `s3://bucket/prefix/...`, skipping objects already there. */
export async function uploadDataset(
  s3: S3Client,
  bucket: string,
  prefix: string,
  dir: string,
  opts: TransferOptions = {},
): Promise<UploadResult> {
  const files = await listDatasetFiles(dir);
  const existing = await listKeys(s3, bucket, prefix);
  let uploaded = 0;
  let done = 0;
  await forEachLimit(files, opts.concurrency ?? 16, async (file) => {
    const key = joinKey(prefix, file);
    if (!existing.has(key)) {
      await uploadFile(s3, bucket, key, path.join(dir, file));
      uploaded++;
    }
    opts.onProgress?.(++done, files.length);
  });
  return { uploaded, skipped: files.length - uploaded };
}

/** Downloads every object under `s3://bucket/prefix/` into `dir`, keeping relative paths. */
export async function downloadPrefix(
  s3: S3Client,
  bucket: string,
  prefix: string,
  dir: string,
  opts: TransferOptions = {},
): Promise<number> {
  const keys = [...(await listKeys(s3, bucket, prefix))].sort();
  const base = prefix.endsWith('/') ? prefix : `${prefix}/`;
  let done = 0;
  await forEachLimit(keys, opts.concurrency ?? 16, async (key) => {
    const relative = key.slice(base.length);
    if (!relative || relative.split('/').includes('..')) return;
    await downloadFile(s3, bucket, key, path.join(dir, relative));
    opts.onProgress?.(++done, keys.length);
  });
  return keys.length;
}

export async function uploadFile(s3: S3Client, bucket: string, key: string, file: string): Promise<void> {
  const { size } = await stat(file);
  await s3.send(
    new PutObjectCommand({ Bucket: bucket, Key: key, Body: createReadStream(file), ContentLength: size }),
  );
}

export async function downloadFile(s3: S3Client, bucket: string, key: string, file: string): Promise<void> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  if (!res.Body) throw new Error(`s3://${bucket}/${key} has no body`);
  await mkdir(path.dirname(file), { recursive: true });
  await pipeline(res.Body as NodeJS.ReadableStream, createWriteStream(file));
}

export async function objectExists(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (err) {
    if ((err as { name?: string }).name === 'NotFound' || (err as { name?: string }).name === 'NoSuchKey') {
      return false;
    }
    throw err;
  }
}

export async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<Set<string>> {
  // ListObjects (v1) paged by marker: s3rver's v2 continuation tokens fail under OpenSSL 3, and
  // v1 pages identically on AWS.
  const keys = new Set<string>();
  let marker: string | undefined;
  for (;;) {
    const page = await s3.send(new ListObjectsCommand({ Bucket: bucket, Prefix: prefix, Marker: marker }));
    const contents = page.Contents ?? [];
    for (const obj of contents) if (obj.Key) keys.add(obj.Key);
    if (!page.IsTruncated || contents.length === 0) return keys;
    marker = page.NextMarker ?? contents[contents.length - 1].Key;
  }
}

function joinKey(prefix: string, file: string): string {
  return prefix ? `${prefix.replace(/\/+$/, '')}/${file}` : file;
}

async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
