import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { type EngineInfo, type EngineName, initEngine } from '../engine/index.ts';
import { acceptRawBodies } from './body-limit.ts';
import { ClientError, errorBody, MAX_BODY_BYTES, MAX_INSTANCES, parseExplainQuery } from './contract.ts';
import { decodeRequest } from './decode-request.ts';
import { ExplainUnsupportedError } from './gradcam.ts';
import { Predictor } from './predictor.ts';

export interface ServerOptions {
  /** Folder holding model.json, weights.bin and preprocessing.json (SageMaker: /opt/ml/model). */
  modelDir: string;
  /** tfjs engine; default env BRAIN_TUMOR_ENGINE, else 'auto'. */
  engine?: EngineName | 'auto';
  /** Largest request body in bytes; default 6 MB (the SageMaker real-time limit). */
  maxBodyBytes?: number;
  /** Most instances in one JSON request; default 16. */
  maxInstances?: number;
  /** fastify logger options; default JSON logs at info level without request bodies. */
  logger?: FastifyServerOptions['logger'];
  /** Loads and warms up the model; default `Predictor.load`. Tests wrap it to observe readiness. */
  load?: (modelDir: string) => Promise<Predictor>;
}

export interface ServeApp {
  app: FastifyInstance;
  /** Resolves once the model is loaded and warmed up (then /ping answers 200); rejects if loading fails. */
  ready: Promise<Predictor>;
}

/**
 * The SageMaker hosting contract: `GET /ping`, `POST /invocations`. The model loads in the
 * background so the port answers (503) at once, and /ping turns 200 only after a warm-up prediction.
 */
export function buildServer(options: ServerOptions): ServeApp {
  const maxInstances = options.maxInstances ?? MAX_INSTANCES;
  const app = Fastify({
    logger: options.logger ?? { level: 'info' },
    bodyLimit: options.maxBodyBytes ?? MAX_BODY_BYTES,
    // On close: refuse new requests with 503, let in-flight ones finish, drop idle keep-alives.
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // The predict Lambda sends its API request id as a SageMaker custom attribute: log lines here
    // then carry the same id as the Lambda's.
    genReqId: (req) => {
      const attributes = req.headers['x-amzn-sagemaker-custom-attributes'];
      const match =
        typeof attributes === 'string' ? /(?:^|[;,\s])request-id=([\w.-]{1,128})/.exec(attributes) : null;
      return match?.[1] ?? randomUUID();
    },
  });

  let predictor: Predictor | undefined;
  let loadError: Error | undefined;
  const ready = (async () => {
    const engine = await startEngine(options.engine, (line) => app.log.info(line));
    const loaded = await (options.load ?? Predictor.load)(options.modelDir);
    app.log.info(
      {
        engine: engine.name,
        modelVersion: loaded.config.modelVersion,
        imageSize: loaded.imageSize,
        preprocessing: loaded.config.preprocessing,
      },
      'model loaded and warmed up',
    );
    predictor = loaded;
    return loaded;
  })();
  ready.catch((err: Error) => {
    loadError = err;
    app.log.error({ err }, 'model failed to load');
  });
  app.addHook('onClose', async () => predictor?.dispose());
  // Responses finished during shutdown close their connection: otherwise a keep-alive client
  // holds the socket open and the server cannot finish closing.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  // Every body arrives as raw bytes: the route decides by content type, so a bad JSON body or an
  // unknown type becomes our own 4xx error rather than the framework's. An oversized body is read
  // to its end before the 413, so that every client can read the answer (body-limit.ts).
  acceptRawBodies(app, { limit: options.maxBodyBytes ?? MAX_BODY_BYTES });

  app.get('/ping', async (_req, reply) => {
    if (predictor) return reply.code(200).send({ status: 'ok', modelVersion: predictor.config.modelVersion });
    const message = loadError ? 'model failed to load' : 'model is loading';
    return reply.code(503).send(errorBody('MODEL_NOT_READY', message));
  });

  app.post('/invocations', async (request, reply) => {
    if (!predictor) return reply.code(503).send(errorBody('MODEL_NOT_READY', 'model is loading'));
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const query = request.query as Record<string, unknown> | undefined;
    const decoded = await decodeRequest(
      request.headers['content-type'],
      body,
      predictor.preprocessing,
      maxInstances,
      parseExplainQuery(query?.explain),
    );
    const predictions = await predictor.predict(decoded.images, { explain: decoded.explain });
    predictions.forEach((p, i) => {
      const frame = decoded.frames?.[i];
      if (p.heatmap && frame) p.heatmap.frame = frame;
    });
    return reply
      .code(200)
      .type('application/json')
      .send(decoded.kind === 'single' ? predictions[0] : { predictions });
  });

  app.setNotFoundHandler((request, reply) => {
    reply
      .code(404)
      .send(errorBody('NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`));
  });

  app.setErrorHandler((error: FastifyError | ClientError | Error, request, reply) => {
    if (error instanceof ClientError) {
      request.log.info({ code: error.code, status: error.status }, 'rejected request');
      return reply.code(error.status).send(error.toBody());
    }
    if (error instanceof ExplainUnsupportedError) {
      request.log.error({ err: error }, 'explain failed');
      return reply.code(501).send(errorBody('EXPLAIN_UNSUPPORTED', error.message));
    }
    const status = 'statusCode' in error && typeof error.statusCode === 'number' ? error.statusCode : 500;
    if (status >= 400 && status < 500) {
      const code =
        status === 413 ? 'PAYLOAD_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'INVALID_REQUEST';
      const message =
        status === 413
          ? `request body is larger than ${(options.maxBodyBytes ?? MAX_BODY_BYTES) / 2 ** 20} MB`
          : error.message;
      request.log.info({ code, status }, 'rejected request');
      return reply.code(status).send(errorBody(code, message));
    }
    // A server fault: logged in full, answered without details.
    request.log.error({ err: error }, 'prediction failed');
    return reply.code(500).send(errorBody('INTERNAL', 'internal error while predicting'));
  });

  return { app, ready };
}

function startEngine(
  preference: EngineName | 'auto' | undefined,
  log: (line: string) => void,
): Promise<EngineInfo> {
  const chosen = preference ?? ((process.env.BRAIN_TUMOR_ENGINE || 'auto') as EngineName | 'auto');
  return initEngine(chosen, log);
}
