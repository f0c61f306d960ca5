import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeImages, imageAt, TooManyBadFilesError } from '../../training-container/src/data/decode.ts';
import { listImageFolder } from '../../training-container/src/data/image-folder.ts';

const SIZE = 32;
let root: string;

/** A 40x20 image whose left half is white: orientation tells which side ends up bright. */
function leftHalfWhite(): Buffer {
  const w = 40;
  const h = 20;
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w / 2; x++) px.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3);
  return px;
}

/** Grey 200, opaque on the left half, fully transparent on the right. */
function rgbaHalfTransparent(): Buffer {
  const px = Buffer.alloc(24 * 24 * 4, 200);
  for (let i = 0; i < 24 * 24; i++) px[i * 4 + 3] = i % 24 < 12 ? 255 : 0;
  return px;
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'bt-decode-'));
  const gray = sharp(Buffer.alloc(30 * 30, 128), { raw: { width: 30, height: 30, channels: 1 } });
  const rgb = () => sharp(leftHalfWhite(), { raw: { width: 40, height: 20, channels: 3 } });
  const files: Record<string, Buffer> = {
    'glioma_tumor/gray.jpg': await gray.clone().jpeg().toBuffer(),
    'glioma_tumor/rgba.png': await sharp(rgbaHalfTransparent(), {
      raw: { width: 24, height: 24, channels: 4 },
    })
      .png()
      .toBuffer(),
    'meningioma/cmyk.jpg': await rgb().toColourspace('cmyk').jpeg().toBuffer(),
    'meningioma/plain.png': await rgb().png().toBuffer(),
    // EXIF orientation 6: stored as is, displayed rotated 90 degrees clockwise (left half -> top half).
    'no_tumor/exif-rotated.jpg': await rgb()
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer(),
    'pituitary/truncated.jpg': (await rgb().jpeg().toBuffer()).subarray(0, 200),
    'pituitary/notes.txt': Buffer.from('not an image'),
  };
  for (const [rel, bytes] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), bytes);
  }
  await mkdir(path.join(root, 'unrelated'));
});

describe('image folder + decode', () => {
  it('maps both folder name styles to labels and reports unknown folders', async () => {
    const folder = await listImageFolder(root);
    expect(folder.counts).toEqual([2, 2, 1, 2]);
    expect(folder.ignoredFolders).toEqual(['unrelated']);
    expect(folder.files.map((f) => `${f.relPath}:${f.label}`)).toContain('no_tumor/exif-rotated.jpg:notumor');
  });

  it('decodes grayscale, RGBA, PNG, CMYK and EXIF-rotated images to RGB and names the bad files', async () => {
    const folder = await listImageFolder(root);
    const set = await decodeImages(folder.files, { imageSize: SIZE });
    expect(set.skipped.map((s) => s.relPath)).toEqual(['pituitary/notes.txt', 'pituitary/truncated.jpg']);
    for (const s of set.skipped) expect(s.reason).toMatch(/cannot decode image/);
    expect(set.files).toHaveLength(5);
    expect(set.pixels).toHaveLength(5 * SIZE * SIZE * 3);
    const pixel = (name: string, x: number, y: number) => {
      const i = set.files.findIndex((f) => f.relPath.endsWith(name));
      const img = imageAt(set, i);
      return Array.from(img.subarray((y * SIZE + x) * 3, (y * SIZE + x) * 3 + 3));
    };
    expect(pixel('gray.jpg', 16, 16)).toEqual([128, 128, 128].map((v) => expect.closeTo(v, 0)));
    // Alpha is flattened onto black, like the MRI background.
    expect(pixel('rgba.png', 3, 16)).toEqual([200, 200, 200]);
    expect(pixel('rgba.png', 29, 16)).toEqual([0, 0, 0]);
    // CMYK comes back as RGB: white stays (near) white, black (near) black.
    expect(Math.min(...pixel('cmyk.jpg', 2, 16))).toBeGreaterThan(230);
    expect(Math.max(...pixel('cmyk.jpg', 30, 16))).toBeLessThan(25);
    expect(Math.min(...pixel('plain.png', 2, 16))).toBe(255);
    // Orientation applied: the white half is on top, not on the left.
    expect(Math.min(...pixel('exif-rotated.jpg', 16, 2))).toBeGreaterThan(230);
    expect(Math.max(...pixel('exif-rotated.jpg', 16, 30))).toBeLessThan(25);
  });

  it('fails once bad files exceed max_bad_files', async () => {
    const folder = await listImageFolder(root);
    await expect(decodeImages(folder.files, { imageSize: SIZE, maxBadFiles: 1 })).rejects.toThrow(
      TooManyBadFilesError,
    );
    await expect(decodeImages(folder.files, { imageSize: SIZE, maxBadFiles: 2 })).resolves.toBeDefined();
  });
});
