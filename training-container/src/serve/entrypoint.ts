import type { EngineName } from '../engine/index.ts';
import { optMlPaths } from '../paths.ts';
import { batchModeFromEnv } from './batch-mode.ts';
import { buildServer } from './server.ts';

export interface ServeOptions {
  /** Model folder; default `/opt/ml/model` under OPT_ML_ROOT. */
  modelDir?: string;
  /** Default env SAGEMAKER_BIND_TO_PORT, else 8080 (the SageMaker hosting port). */
  port?: number;
  /** Default env BRAIN_TUMOR_SERVE_HOST, else 0.0.0.0 (SageMaker reaches the container from outside). */
  host?: string;
  engine?: EngineName | 'auto';
}

/** SageMaker stops a container with SIGTERM and kills it 30 s later; finish well before that. */
const SHUTDOWN_GRACE_MS = 25_000;

/**
 * The container's `serve` entrypoint: listens at once (ping answers 503 while the model loads),
 * loads and warms up the model, then serves until SIGTERM/SIGINT, when it stops accepting
 * connections, finishes in-flight requests and returns. A model that cannot load exits non-zero.
 */
export async function serve(options: ServeOptions = {}): Promise<void> {
  const modelDir = options.modelDir ?? optMlPaths().model;
  const port = options.port ?? Number(process.env.SAGEMAKER_BIND_TO_PORT || 8080);
  const host = options.host ?? (process.env.BRAIN_TUMOR_SERVE_HOST || '0.0.0.0');
  // Read before listening: a malformed SAGEMAKER_* variable stops the container with its name.
  const batch = batchModeFromEnv();
  const { app, ready } = buildServer({ modelDir, engine: options.engine, batch });

  let stopping: Promise<void> | undefined;
  const stop = (signal: string) => {
    if (stopping) return stopping;
    app.log.info({ signal }, 'shutting down: finishing in-flight requests');
    const force = setTimeout(() => {
      app.log.error('in-flight requests did not finish in time; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    stopping = app.close().finally(() => clearTimeout(force));
    return stopping;
  };
  const closed = new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => void stop(signal).then(resolve, resolve));
    }
  });

  await app.listen({ port, host });
  try {
    await ready;
  } catch (err) {
    await app.close();
    throw new Error(
      `cannot serve the model in ${modelDir}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  await closed;
  app.log.info('stopped');
}
