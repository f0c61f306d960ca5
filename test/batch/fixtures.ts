import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import { sampleImage } from '../serve/fixtures.ts';

/** The SARTAJ dataset beside the repository, when this machine has it. */
export const DATASET = path.resolve('../shared/datasets/sartaj-brain-tumor-mri/Testing');

export interface ScanFolder {
  root: string;
  /** Every image the batch command must pick up, relative to root, sorted. */
  images: string[];
  /** The files that must become error rows, by expected code. */
  broken: Record<string, string>;
  /** Where the scans came from. */
  source: 'dataset' | 'generated';
}

/**
 * A folder as a user would point `brain-tumor batch` at: real MRI scans from the dataset (shrunk
 * to 48 px so the tiny model scores them fast; generated blobs when the dataset is absent) in
 * nested class folders, a PNG and an upper-case .JPG among them, a text file that is not an image,
 * and the broken cases: random bytes named .jpg, a truncated JPEG, a symlink to nowhere and a
 * folder-symlink named like an image (both unreadable as files).
 */
export async function makeScanFolder(root: string, perClass = 2): Promise<ScanFolder> {
  const images: string[] = [];
  let source: ScanFolder['source'] = 'generated';
  let classes: string[] = [];
  try {
    classes = (await readdir(DATASET)).sort();
    source = 'dataset';
  } catch {
    classes = ['glioma_tumor', 'meningioma_tumor', 'no_tumor', 'pituitary_tumor'];
  }
  for (const [ci, cls] of classes.entries()) {
    await mkdir(path.join(root, 'scans', cls), { recursive: true });
    const names =
      source === 'dataset'
        ? (await readdir(path.join(DATASET, cls))).filter((f) => /\.jpe?g$/i.test(f)).sort()
        : [];
    for (let i = 0; i < perClass; i++) {
      const original =
        source === 'dataset'
          ? await readFile(path.join(DATASET, cls, names[i]))
          : await sampleImage('jpeg', 64, 1 + ci * perClass + i);
      const png = ci === 1 && i === 0;
      const resized = sharp(original).resize(48, 48, { fit: 'fill' });
      const bytes = png ? await resized.png().toBuffer() : await resized.jpeg({ quality: 90 }).toBuffer();
      const name = png ? `scan ${i}.png` : ci === 2 && i === 0 ? `SCAN${i}.JPG` : `scan-${i}.jpeg`;
      await writeFile(path.join(root, 'scans', cls, name), bytes);
      images.push(`scans/${cls}/${name}`);
    }
  }
  const good = await readFile(path.join(root, images[0]));
  await writeFile(path.join(root, 'random.jpg'), randomBytes(3000));
  await writeFile(path.join(root, 'truncated.jpg'), good.subarray(0, Math.floor(good.length / 2)));
  await symlink(path.join(root, 'gone.jpg'), path.join(root, 'dangling.jpg'));
  await mkdir(path.join(root, 'folder'), { recursive: true });
  await symlink(path.join(root, 'folder'), path.join(root, 'folder-link.png'));
  await writeFile(path.join(root, 'notes.txt'), 'not an image');
  const broken = {
    'random.jpg': 'UNDECODABLE_IMAGE',
    'truncated.jpg': 'UNDECODABLE_IMAGE',
    'dangling.jpg': 'UNREADABLE_FILE',
    'folder-link.png': 'UNREADABLE_FILE',
  };
  images.push(...Object.keys(broken));
  return { root, images: images.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), broken, source };
}

/** Rows of a results file, parsed. */
export async function readRows(file: string): Promise<Array<Record<string, unknown> & { file: string }>> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

/**
 * A proxy in front of a serve container that sees every request the batch client makes (body
 * sizes, records, how many are in flight) and can hold `/invocations` from the `passed`-th on
 * until `open()`: a run that is stuck there can be killed at a known point.
 */
export interface Gate {
  url: string;
  /** Each /invocations request: body bytes and records (lines). */
  requests: { bytes: number; records: number; contentType?: string }[];
  maxInFlight: number;
  held: () => number;
  /** Lets held and later requests through. */
  open: () => void;
  close: () => Promise<void>;
}

export async function startGate(
  upstream: string,
  options: { pass?: number; delayMs?: number } = {},
): Promise<Gate> {
  let passLeft = options.pass ?? Number.POSITIVE_INFINITY;
  let inFlight = 0;
  const waiting: Array<() => void> = [];
  const gate: Gate = {
    url: '',
    requests: [],
    maxInFlight: 0,
    held: () => waiting.length,
    open: () => {
      passLeft = Number.POSITIVE_INFINITY;
      for (const go of waiting.splice(0)) go();
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const forward = async (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const upstreamRes = await fetch(`${upstream}${req.url}`, {
      method: req.method,
      headers: req.headers['content-type'] ? { 'content-type': req.headers['content-type'] } : {},
      body: req.method === 'POST' ? (body as unknown as BodyInit) : undefined,
    });
    const text = Buffer.from(await upstreamRes.arrayBuffer());
    res.writeHead(upstreamRes.status, {
      'content-type': upstreamRes.headers.get('content-type') ?? 'text/plain',
    });
    res.end(text);
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      try {
        if (req.url?.startsWith('/invocations')) {
          gate.requests.push({
            bytes: body.length,
            records: body.toString('utf8').split('\n').filter(Boolean).length,
            contentType: req.headers['content-type'],
          });
          inFlight++;
          gate.maxInFlight = Math.max(gate.maxInFlight, inFlight);
          try {
            if (passLeft <= 0) await new Promise<void>((resolve) => waiting.push(resolve));
            passLeft--;
            if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
            await forward(req, res, body);
          } finally {
            inFlight--;
          }
        } else {
          await forward(req, res, body);
        }
      } catch {
        res.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  gate.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return gate;
}
