import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashDataset, listDatasetFiles } from '../../lib/storage/dataset-files.ts';
import { type LocalS3, startLocalS3 } from '../../lib/storage/local-s3.ts';
import { downloadPrefix, listKeys, objectExists, uploadDataset } from '../../lib/storage/s3-transfer.ts';

describe('dataset transfer through the real S3 client against a loopback S3 server', () => {
  let tmp: string;
  let s3: LocalS3;
  const bucket = 'brain-tumor-test';

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bt-s3-'));
    for (const [cls, n] of [
      ['glioma_tumor', 3],
      ['no_tumor', 2],
    ] as const) {
      await mkdir(path.join(tmp, 'data', cls), { recursive: true });
      for (let i = 0; i < n; i++)
        await writeFile(path.join(tmp, 'data', cls, `img (${i}).jpg`), `${cls}-${i}`);
    }
    await writeFile(path.join(tmp, 'data', 'notes.txt'), 'not an image');
    s3 = await startLocalS3({ directory: path.join(tmp, 's3'), buckets: [bucket] });
  });

  afterAll(async () => {
    await s3?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('lists only images, sorted, with POSIX relative paths', async () => {
    expect(await listDatasetFiles(path.join(tmp, 'data'))).toEqual([
      'glioma_tumor/img (0).jpg',
      'glioma_tumor/img (1).jpg',
      'glioma_tumor/img (2).jpg',
      'no_tumor/img (0).jpg',
      'no_tumor/img (1).jpg',
    ]);
  });

  it('hashes content: same bytes give the same hash, one changed byte a new one', async () => {
    const before = await hashDataset(path.join(tmp, 'data'));
    expect(before).toMatch(/^[0-9a-f]{16}$/);
    expect(await hashDataset(path.join(tmp, 'data'))).toBe(before);
    await writeFile(path.join(tmp, 'data', 'no_tumor', 'img (1).jpg'), 'changed');
    expect(await hashDataset(path.join(tmp, 'data'))).not.toBe(before);
  });

  it('uploads once, skips what is already there, and downloads the same tree back', async () => {
    const dir = path.join(tmp, 'data');
    const first = await uploadDataset(s3.client, bucket, 'datasets/v1', dir);
    expect(first).toEqual({ uploaded: 5, skipped: 0 });
    const second = await uploadDataset(s3.client, bucket, 'datasets/v1', dir);
    expect(second).toEqual({ uploaded: 0, skipped: 5 });
    expect(await objectExists(s3.client, bucket, 'datasets/v1/glioma_tumor/img (2).jpg')).toBe(true);
    expect(await objectExists(s3.client, bucket, 'datasets/v1/notes.txt')).toBe(false);

    const back = path.join(tmp, 'back');
    expect(await downloadPrefix(s3.client, bucket, 'datasets/v1', back)).toBe(5);
    expect(await readFile(path.join(back, 'glioma_tumor', 'img (2).jpg'), 'utf8')).toBe('glioma_tumor-2');
    expect(await hashDataset(back)).toBe(await hashDataset(dir));
  });

  it('lists past the first page of 1,000 keys', async () => {
    const dir = path.join(tmp, 'many', 'pituitary_tumor');
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < 1005; i++) await writeFile(path.join(dir, `p${i}.png`), String(i));
    const result = await uploadDataset(s3.client, bucket, 'datasets/many', path.join(tmp, 'many'), {
      concurrency: 32,
    });
    expect(result.uploaded).toBe(1005);
    expect((await listKeys(s3.client, bucket, 'datasets/many')).size).toBe(1005);
  });
});
