import { type Command, InvalidArgumentError } from 'commander';
import { resolveModel } from '../../lib/pipeline/model-location.ts';
import { ENGINE_NAMES, type EngineName } from '../../training-container/src/engine/index.ts';
import { loadArtifactConfig } from '../../training-container/src/model-io.ts';
import { serve } from '../../training-container/src/serve/entrypoint.ts';

export function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InvalidArgumentError('must be a port number');
  return port;
}

export function register(program: Command): void {
  program
    .command('serve')
    .description("run the container's serve entrypoint (GET /ping, POST /invocations) on a model folder")
    .requiredOption(
      '--model <path>',
      'model folder (model.json, weights.bin, preprocessing.json), the folder `train --out` wrote, or a model.tar.gz',
    )
    .option('--port <port>', 'port to listen on', parsePort, 8080)
    .option('--host <host>', 'address to bind (0.0.0.0 to accept other machines)', '127.0.0.1')
    .option(
      '--engine <name>',
      `tfjs engine: auto, ${ENGINE_NAMES.join(', ')} (default: env BRAIN_TUMOR_ENGINE or auto)`,
    )
    .action(async (opts: { model: string; port: number; host: string; engine?: EngineName | 'auto' }) => {
      const model = await resolveModel(opts.model);
      try {
        // Fail fast with a clear message before the server starts.
        await loadArtifactConfig(model.dir);
        const from = model.kind === 'model.tar.gz' ? ` (unpacked from ${opts.model})` : '';
        console.error(`serving ${model.dir}${from} on http://${opts.host}:${opts.port} (Ctrl-C stops)`);
        // The same function as `main.ts serve` in the container; only the model folder is given directly.
        await serve({ modelDir: model.dir, port: opts.port, host: opts.host, engine: opts.engine });
      } finally {
        await model.cleanup();
      }
    });
}
