import { rm } from 'node:fs/promises';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { startServeProcess } from '../../lib/local/serve-process.ts';
import { saveTinyEfficientNet } from './fixtures.ts';

/** Noise JPEGs decode slowly enough to keep a batch request in flight for a few hundred ms. */
async function noiseJpeg(size: number, seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(size * size * 3);
  let x = seed;
  for (let i = 0; i < raw.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    raw[i] = x >>> 24;
  }
  return sharp(raw, { raw: { width: size, height: size, channels: 3 } })
    .jpeg({ quality: 20 })
    .toBuffer();
}

describe('serve entrypoint as a process (main.ts serve)', () => {
  it('answers, then on SIGTERM finishes the in-flight request and exits 0', async () => {
    // The EfficientNet artifact also proves the entrypoint registers the custom layers itself.
    const modelDir = await saveTinyEfficientNet();
    const logs: string[] = [];
    let sawRequest: () => void = () => {};
    const requestArrived = new Promise<void>((resolve) => {
      sawRequest = resolve;
    });
    const server = await startServeProcess({
      modelDir,
      port: 0,
      engine: 'cpu',
      onLog: (line) => {
        logs.push(line);
        if (line.includes('incoming request') && line.includes('"reqId":"shutdown-test-1"')) sawRequest();
      },
    });
    try {
      const images = await Promise.all(Array.from({ length: 16 }, (_, i) => noiseJpeg(900, i + 1)));
      const body = JSON.stringify({ instances: images.map((b) => ({ b64: b.toString('base64') })) });
      const inFlight = fetch(`${server.url}/invocations`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-amzn-sagemaker-custom-attributes': 'request-id=shutdown-test-1',
        },
        body,
      });
      await requestArrived;
      const started = Date.now();
      server.child.kill('SIGTERM');
      const res = await inFlight;
      expect(res.status).toBe(200);
      expect(((await res.json()) as { predictions: unknown[] }).predictions).toHaveLength(16);
      const exitCode = await new Promise<number | null>((resolve) => {
        if (server.child.exitCode !== null) resolve(server.child.exitCode);
        else server.child.once('exit', (code) => resolve(code));
      });
      expect(exitCode).toBe(0);
      expect(Date.now() - started).toBeLessThan(30_000);
      // The shutdown began while the request was still being served.
      const shutdownAt = logs.findIndex((l) => l.includes('shutting down'));
      // The request id came from the SageMaker custom attribute, as the Lambda sends it.
      const reqId = 'shutdown-test-1';
      const completedAt = logs.findIndex(
        (l) => l.includes('request completed') && l.includes(`"reqId":"${reqId}"`),
      );
      expect(shutdownAt).toBeGreaterThanOrEqual(0);
      expect(completedAt).toBeGreaterThan(shutdownAt);
      // And it no longer accepts connections.
      await expect(fetch(`${server.url}/ping`)).rejects.toThrow();
    } finally {
      await server.close();
      await rm(modelDir, { recursive: true, force: true });
    }
  });
});
