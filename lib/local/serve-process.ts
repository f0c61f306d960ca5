import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The container entrypoint, run as a process exactly as `docker run IMAGE serve` would. */
const MAIN_TS = fileURLToPath(new URL('../../training-container/src/main.ts', import.meta.url));
/** The repo root: `--import tsx` resolves from the child's working directory. */
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServeProcessOptions {
  /** Folder with the model artifact (model.json, weights.bin, preprocessing.json). */
  modelDir: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1: local mode never listens beyond loopback. */
  host?: string;
  /** tfjs engine for the child (env BRAIN_TUMOR_ENGINE); default: inherited, else auto. */
  engine?: string;
  /** How long to wait for /ping 200; default 180 s (EfficientNetB0 load + warm-up on a slow CPU). */
  readyTimeoutMs?: number;
  /** Each log line of the child (stdout and stderr); default: dropped. */
  onLog?: (line: string) => void;
  /** More environment for the child, e.g. SAGEMAKER_BATCH=true for a transform job's container. */
  env?: Record<string, string>;
}

export interface ServeProcess {
  /** Base URL, e.g. http://127.0.0.1:8080 (`/ping`, `/invocations`). */
  url: string;
  child: ChildProcess;
  /** SIGTERM, then wait for a graceful exit (SIGKILL after 30 s); resolves to the exit code. */
  close: () => Promise<number | null>;
}

/**
 * Runs the container's own `serve` entrypoint (`training-container/src/main.ts serve`) as a child
 * process, with OPT_ML_ROOT pointing at a temporary /opt/ml tree whose `model/` is `modelDir`,
 * and resolves once `/ping` answers 200.
 */
export async function startServeProcess(options: ServeProcessOptions): Promise<ServeProcess> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port === 0 ? await freePort(host) : (options.port ?? 8080);
  const root = await mkdtemp(path.join(os.tmpdir(), 'brain-tumor-serve-'));
  await symlink(path.resolve(options.modelDir), path.join(root, 'model'), 'dir');

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...options.env,
    OPT_ML_ROOT: root,
    SAGEMAKER_BIND_TO_PORT: String(port),
    BRAIN_TUMOR_SERVE_HOST: host,
  };
  if (options.engine) env.BRAIN_TUMOR_ENGINE = options.engine;
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN_TS, 'serve'], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  const onChunk = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 20) tail.shift();
      options.onLog?.(line);
    }
  };
  child.stdout?.on('data', onChunk);
  child.stderr?.on('data', onChunk);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited.finally(() => clearTimeout(killer));
    }
    await rm(root, { recursive: true, force: true });
    return child.exitCode;
  };

  try {
    await waitForPing(url, exited, options.readyTimeoutMs ?? 180_000);
  } catch (err) {
    await close();
    const log = tail.length ? `\n${tail.join('\n')}` : '';
    throw new Error(`${err instanceof Error ? err.message : String(err)}${log}`);
  }
  return { url, child, close };
}

async function waitForPing(url: string, exited: Promise<number | null>, timeoutMs: number): Promise<void> {
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`serve exited with code ${exitCode} before it was ready`);
    try {
      const res = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`serve did not answer /ping 200 within ${Math.round(timeoutMs / 1000)} s`);
}

/** A port free right now on `host` (the OS picks it); the child binds it moments later. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() =>
        address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
