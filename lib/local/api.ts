import { fileURLToPath } from 'node:url';
import { Logger, type LogItem } from '@aws-lambda-powertools/logger';
import type { ConstructorOptions } from '@aws-lambda-powertools/logger/types';
import { SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import { createHandler } from '../../lambda/predict/handler.ts';
import { startApiGateway } from './api-gateway-adapter.ts';
import { startSageMakerRuntimeEmulator } from './sagemaker-runtime-emulator.ts';

export interface LocalApiOptions {
  /** Base URL of a running `serve` (the container), e.g. http://127.0.0.1:8080. */
  serveUrl: string;
  /** Port of the API; default 3000, 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Required `x-api-key`; default none (any request is accepted). */
  apiKey?: string;
  /** Endpoint name the handler invokes and the emulator knows; default 'brain-tumor-local'. */
  endpointName?: string;
  /**
   * The handler's logger; default a `StderrLogger`: the same JSON lines as in Lambda, on stderr,
   * so that stdout stays free for a command's own output (`brain-tumor local --json`).
   */
  logger?: Logger;
  /** Serve the web page (web/) at `GET /`; default true. */
  webPage?: boolean;
}

/** The web page's files: `index.html` and `app.js`, no build step. */
export const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

export interface LocalApi {
  /** The prediction URL: POST images or JSON here (e.g. http://127.0.0.1:3000/predict). */
  predictUrl: string;
  /** Base URL of the API adapter. */
  url: string;
  /** The web page (`${url}/`), or undefined with `webPage: false`. */
  webUrl?: string;
  /** Base URL of the SageMaker-Runtime emulator the handler's SDK client talks to. */
  emulatorUrl: string;
  close: () => Promise<void>;
}

/**
 * The predict handler's logger in local mode. In Lambda, stdout is the log and the handler's own
 * logger writes its JSON lines there; in local mode the handler runs in-process in a CLI whose
 * stdout belongs to the command (`local --json` prints exactly one JSON document), so the same
 * lines, EMF metric fields included, go to stderr. The Lambda's own logger is unchanged.
 */
export class StderrLogger extends Logger {
  protected override printLog(_logLevel: number, log: LogItem): void {
    log.prepareForPrint();
    process.stderr.write(`${JSON.stringify(log.getAttributes(), this.getJsonReplacer())}\n`);
  }

  protected override createLogger(options?: ConstructorOptions): Logger {
    return new StderrLogger(options);
  }
}

/**
 * The local stand-in for API Gateway -> Lambda -> SageMaker: the real predict handler behind the
 * API-Gateway-style adapter, with its real SageMakerRuntimeClient pointed at the SageMaker-Runtime
 * emulator (dummy credentials; requests are SigV4-signed as on AWS), which forwards to `serve`.
 */
export async function startApi(options: LocalApiOptions): Promise<LocalApi> {
  const endpointName = options.endpointName ?? 'brain-tumor-local';
  const host = options.host ?? '127.0.0.1';
  const emulator = await startSageMakerRuntimeEmulator({ serveUrl: options.serveUrl, endpointName, host });
  const client = new SageMakerRuntimeClient({
    endpoint: emulator.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    requestHandler: { connectionTimeout: 3_000, requestTimeout: 25_000 },
  });
  const logger = options.logger ?? new StderrLogger({ serviceName: 'brain-tumor-predict' });
  const handler = createHandler({ client, endpointName, logger });
  let gateway: Awaited<ReturnType<typeof startApiGateway>>;
  try {
    gateway = await startApiGateway({
      handler,
      port: options.port ?? 3000,
      host,
      apiKey: options.apiKey,
      webDir: options.webPage === false ? undefined : WEB_DIR,
    });
  } catch (err) {
    await emulator.close();
    client.destroy();
    throw err;
  }
  return {
    url: gateway.url,
    predictUrl: `${gateway.url}/predict`,
    webUrl: options.webPage === false ? undefined : `${gateway.url}/`,
    emulatorUrl: emulator.url,
    close: async () => {
      await gateway.close();
      await emulator.close();
      client.destroy();
    },
  };
}
