import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { startApi } from '../../lib/local/api.ts';
import { parsePort } from './serve.ts';

export function register(program: Command): void {
  program
    .command('api')
    .description(
      'run the predict Lambda handler behind a local API-Gateway-style adapter, calling serve through a SageMaker-Runtime emulator',
    )
    .option(
      '--endpoint-url <url>',
      'URL of the running serve (the SageMaker container)',
      'http://127.0.0.1:8080',
    )
    .option('--port <port>', 'port of the API', parsePort, 3000)
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--api-key <key>', 'API key clients must send as x-api-key (default: a random one, printed)')
    .option('--no-api-key', 'accept requests without an API key')
    .option('--json', 'print the URLs and key as one JSON line')
    .action(
      async (opts: {
        endpointUrl: string;
        port: number;
        host: string;
        apiKey?: string | boolean;
        json?: boolean;
      }) => {
        const serveUrl = new URL(opts.endpointUrl).toString().replace(/\/+$/, '');
        const apiKey =
          opts.apiKey === false
            ? undefined
            : typeof opts.apiKey === 'string'
              ? opts.apiKey
              : randomBytes(16).toString('hex');
        const ping = await fetch(`${serveUrl}/ping`, { signal: AbortSignal.timeout(3_000) }).then(
          (r) => r.status,
          () => 0,
        );
        if (ping !== 200) {
          console.error(
            `warning: ${serveUrl}/ping answers ${ping || 'nothing'}; predictions fail until serve is ready`,
          );
        }
        const api = await startApi({ serveUrl, port: opts.port, host: opts.host, apiKey });
        if (opts.json) {
          console.log(
            JSON.stringify({
              predictUrl: api.predictUrl,
              webUrl: api.webUrl,
              apiKey: apiKey ?? null,
              serveUrl,
            }),
          );
        } else {
          console.log(`POST ${api.predictUrl}  (image/jpeg, image/png or application/json)`);
          console.log(apiKey ? `API key: ${apiKey}  (header x-api-key)` : 'no API key required');
          console.log(`web page: ${api.webUrl}  (paste the API key there)`);
          console.log(
            `-> predict Lambda handler -> SageMaker-Runtime emulator ${api.emulatorUrl} -> ${serveUrl}`,
          );
          console.log('Ctrl-C stops.');
        }
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await api.close();
      },
    );
}
