import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { type EngineInfo, type EngineName, initEngine } from '../engine/index.ts';
import { type BatchMode, batchModeFromEnv, EXECUTION_PARAMETERS } from './batch-mode.ts';
import { acceptRawBodies } from './body-limit.ts';
import {
  ClientError,
  errorBody,
  JSONLINES_CONTENT_TYPE,
  JSONLINES_CONTENT_TYPES,
  MAX_INSTANCES,
  mediaType,
  parseExplainQuery,
} from './contract.ts';
import { decodeRequest, isImageBody } from './decode-request.ts';
import { ExplainUnsupportedError } from './gradcam.ts';
import { answerJsonLines, errorRow } from './jsonlines.ts';
import { Predictor } from './predictor.ts';

export interface ServerOptions {
  /** Folder holding model.json, weights.bin and preprocessing.json (SageMaker: /opt/ml/model). */
  modelDir: string;
  /** tfjs engine; default env BRAIN_TUMOR_ENGINE, else 'auto'. */
  engine?: EngineName | 'auto';
  /**
   * Batch Transform mode (./batch-mode.ts); default read from the environment SageMaker sets
   * (SAGEMAKER_BATCH, SAGEMAKER_MAX_PAYLOAD_IN_MB, ...), which outside a transform job is off.
   */
  batch?: BatchMode;
  /** Largest request body in bytes; default the batch mode's: 6 MB (the SageMaker real-time limit), or MaxPayloadInMB. */
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
 * The SageMaker hosting contract: `GET /ping`, `POST /invocations`, and for Batch Transform
 * `GET /execution-parameters`. The model loads in the background so the port answers (503) at
 * once, and /ping turns 200 only after a warm-up prediction.
 */
export function buildServer(options: ServerOptions): ServeApp {
  const maxInstances = options.maxInstances ?? MAX_INSTANCES;
  const batch = options.batch ?? batchModeFromEnv();
  const maxBodyBytes = options.maxBodyBytes ?? batch.maxBodyBytes;
  const app = Fastify({
    logger: options.logger ?? { level: 'info' },
    bodyLimit: maxBodyBytes,
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
    if (batch.enabled) {
      app.log.info(
        {
          maxBodyBytes,
          maxPayloadInMB: batch.maxPayloadInMB,
          batchStrategy: batch.strategy,
          maxConcurrentTransforms: batch.maxConcurrentTransforms,
        },
        'batch transform mode',
      );
    }
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
  acceptRawBodies(app, { limit: maxBodyBytes });

  app.get('/ping', async (_req, reply) => {
    if (predictor) return reply.code(200).send({ status: 'ok', modelVersion: predictor.config.modelVersion });
    const message = loadError ? 'model failed to load' : 'model is loading';
    return reply.code(503).send(errorBody('MODEL_NOT_READY', message));
  });

  // Batch Transform asks this before its first request; the job's own settings take precedence.
  app.get('/execution-parameters', async (_req, reply) => reply.code(200).send(EXECUTION_PARAMETERS));

  app.post('/invocations', async (request, reply) => {
    if (!predictor) return reply.code(503).send(errorBody('MODEL_NOT_READY', 'model is loading'));
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const query = request.query as Record<string, unknown> | undefined;
    const type = mediaType(request.headers['content-type']);

    if (type && JSONLINES_CONTENT_TYPES.includes(type)) {
      if (parseExplainQuery(query?.explain)) {
        throw new ClientError(400, 'INVALID_REQUEST', 'explain is not available for application/jsonlines');
      }
      // An empty body is zero records: zero lines answer it, in batch mode as in real time.
      const answer = await answerJsonLines(body, predictor, maxInstances);
      request.log.info({ records: answer.records, errors: answer.errors }, 'jsonlines answered');
      return reply.code(200).type(JSONLINES_CONTENT_TYPE).send(answer.body);
    }

    const explain = parseExplainQuery(query?.explain);
    let decoded: Awaited<ReturnType<typeof decodeRequest>>;
    try {
      decoded = await decodeRequest(
        request.headers['content-type'],
        body,
        predictor.preprocessing,
        maxInstances,
        explain,
        { batch: batch.enabled },
      );
    } catch (err) {
      // In a transform job one S3 object is one image body (SplitType=None), and a non-2xx answer
      // fails the whole job: the image's own problem becomes its error row instead.
      if (batch.enabled && err instanceof ClientError && isImageBody(type, true) && err.status !== 415) {
        request.log.info({ code: err.code }, 'batch record answered with an error row');
        return reply.code(200).type(rowType(request.headers.accept)).send(errorRow(undefined, err));
      }
      throw err;
    }
    const predictions = await predictor.predict(decoded.images, { explain: decoded.explain });
    predictions.forEach((p, i) => {
      const frame = decoded.frames?.[i];
      if (p.heatmap && frame) p.heatmap.frame = frame;
    });
    if (decoded.kind === 'single') {
      return reply.code(200).type(rowType(request.headers.accept)).send(predictions[0]);
    }
    return reply.code(200).type('application/json').send({ predictions });
  });

  /**
   * One image's answer is one JSON object, which is also one JSON Lines line: in batch mode it is
   * labelled as the job's Accept asks (a job whose other inputs are .jsonl asks for
   * application/jsonlines), elsewhere as JSON, as it always was.
   */
  const rowType = (accept: string | undefined) =>
    batch.enabled && JSONLINES_CONTENT_TYPES.includes(mediaType(accept) ?? '')
      ? JSONLINES_CONTENT_TYPE
      : 'application/json';

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
        status === 413 ? `request body is larger than ${maxBodyBytes / 2 ** 20} MB` : error.message;
      // A transform job's image object over the limit: its error row, not a failed job (as above).
      if (status === 413 && batch.enabled && isImageBody(mediaType(request.headers['content-type']), true)) {
        request.log.info({ code }, 'batch record answered with an error row');
        return reply.code(200).type(rowType(request.headers.accept)).send(errorBody(code, message));
      }
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
