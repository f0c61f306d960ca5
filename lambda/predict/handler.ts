import { Logger } from '@aws-lambda-powertools/logger';
import { InvokeEndpointCommand, SageMakerRuntimeClient } from '@aws-sdk/client-sagemaker-runtime';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { ClientError, type ErrorBody, errorBody } from '../../training-container/src/serve/contract.ts';
import { responseMetricFields } from './metrics.ts';
import { clientResponse, header, type ProxyEvent, ProxyEventSchema, parsePredictRequest } from './request.ts';
import { mapUpstreamError } from './upstream-errors.ts';

/**
 * POST /predict behind API Gateway: validate -> InvokeEndpoint -> the endpoint's JSON, with CORS
 * headers. Every outcome is a JSON response; the handler never throws.
 */

export interface PredictHandlerOptions {
  /** Default: one client for the life of the Lambda environment (see `defaultClient`). */
  client?: SageMakerRuntimeClient;
  /** Default env ENDPOINT_NAME. */
  endpointName?: string;
  /**
   * Allowed CORS origins; default env CORS_ALLOW_ORIGIN (comma-separated; set but empty: none),
   * else `*`. None (empty): no CORS headers at all, browsers on other origins are refused.
   */
  corsAllowOrigins?: string[];
  /**
   * Log the predicted label on the request's log line. Default: env LOG_PREDICTIONS, true unless
   * it is `false` (the strict configuration sets it): a prediction about a person's scan is
   * health information and stays out of the logs then; the line still carries status, sizes,
   * latencies and the response count.
   */
  logPredictions?: boolean;
  /**
   * Most time one InvokeEndpoint may take, retries included; default 25 s, below API Gateway's
   * 29 s, and never more than the Lambda's remaining time minus 1.5 s.
   */
  upstreamTimeoutMs?: number;
  logger?: Logger;
}

export type PredictHandler = (
  event: APIGatewayProxyEvent,
  context?: Partial<Context>,
) => Promise<APIGatewayProxyResult>;

/** How long the handler waits for the endpoint by default: below its own Lambda timeout (lib/predict-api.ts). */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 25_000;

/**
 * The SDK client, created once per Lambda environment and reused across invocations. For local
 * mode only, env SAGEMAKER_RUNTIME_ENDPOINT points it at the SageMaker-Runtime emulator.
 */
export function defaultClient(): SageMakerRuntimeClient {
  const endpoint = process.env.SAGEMAKER_RUNTIME_ENDPOINT;
  return new SageMakerRuntimeClient({
    ...(endpoint ? { endpoint } : {}),
    // Per-attempt socket limits; the whole call is also bounded by an abort signal.
    requestHandler: { connectionTimeout: 3_000, requestTimeout: DEFAULT_UPSTREAM_TIMEOUT_MS },
  });
}

export function createHandler(options: PredictHandlerOptions = {}): PredictHandler {
  let client = options.client;
  const logger = options.logger ?? new Logger({ serviceName: 'brain-tumor-predict' });
  const upstreamTimeoutMs = options.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  const origins =
    options.corsAllowOrigins ??
    (process.env.CORS_ALLOW_ORIGIN ?? '*')
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean);
  const logPredictions =
    options.logPredictions ?? process.env.LOG_PREDICTIONS?.trim().toLowerCase() !== 'false';

  return async (rawEvent, context = {}) => {
    const started = Date.now();
    const parsedEvent = ProxyEventSchema.safeParse(rawEvent);
    const event: ProxyEvent = parsedEvent.success ? parsedEvent.data : { httpMethod: '' };
    const cors = corsHeaders(origins, header(event, 'origin'));
    const requestId = event.requestContext?.requestId ?? context.awsRequestId ?? 'unknown';
    logger.resetKeys();
    if (context.awsRequestId) logger.addContext(context as Context);
    logger.appendKeys({ apiRequestId: requestId });
    // EMF: each response's log line also counts it by status class (lambda/predict/metrics.ts).
    // Errors log at ERROR, so the 5xx count survives a raised log level; 2xx/4xx need INFO.
    const functionName = context.functionName ?? process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'local';
    const metric = (status: number) => responseMetricFields(status, functionName);

    const respond = (status: number, body: unknown, extra: Record<string, string> = {}) => ({
      statusCode: status,
      headers: { 'content-type': 'application/json', ...cors, ...extra },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const fail = (status: number, body: ErrorBody, logFields: Record<string, unknown>, extra = {}) => {
      const log = status >= 500 ? logger.error.bind(logger) : logger.info.bind(logger);
      log('request failed', {
        status,
        code: body.error.code,
        latencyMs: Date.now() - started,
        ...logFields,
        ...metric(status),
      });
      return respond(status, body, extra);
    };

    try {
      if (!parsedEvent.success) {
        return fail(400, errorBody('INVALID_REQUEST', 'not an API Gateway proxy request'), {});
      }
      if (event.httpMethod === 'OPTIONS') return { statusCode: 204, headers: cors, body: '' };
      if (event.httpMethod !== 'POST') {
        const body = errorBody('INVALID_REQUEST', `method ${event.httpMethod} is not allowed; use POST`);
        return fail(405, body, {}, { allow: 'POST, OPTIONS' });
      }

      const request = parsePredictRequest(event);
      const endpointName = options.endpointName ?? process.env.ENDPOINT_NAME;
      if (!endpointName) {
        return fail(500, errorBody('INTERNAL', 'the prediction service is misconfigured'), {
          reason: 'ENDPOINT_NAME is not set',
        });
      }
      client ??= defaultClient();
      const remaining = context.getRemainingTimeInMillis?.() ?? Number.POSITIVE_INFINITY;
      const budget = Math.max(1_000, Math.min(upstreamTimeoutMs, remaining - 1_500));
      const upstreamStarted = Date.now();
      const requestFields = {
        contentType: request.contentType,
        bytes: request.body.length,
        instances: request.instances,
      };
      try {
        const output = await client.send(
          new InvokeEndpointCommand({
            EndpointName: endpointName,
            ContentType: request.contentType,
            Accept: 'application/json',
            Body: request.body,
            CustomAttributes: `request-id=${requestId.replace(/[^\w.-]/g, '')}`,
          }),
          { abortSignal: AbortSignal.timeout(budget) },
        );
        const text = clientResponse(request, Buffer.from(output.Body ?? new Uint8Array()).toString('utf8'));
        const upstreamMs = Date.now() - upstreamStarted;
        let label: unknown;
        try {
          label = (JSON.parse(text) as { label?: unknown }).label;
        } catch {
          return fail(502, errorBody('UPSTREAM_ERROR', 'the model answered with invalid JSON'), {
            ...requestFields,
            upstreamMs,
          });
        }
        logger.info('prediction', {
          status: 200,
          ...requestFields,
          ...(logPredictions ? { label } : {}),
          upstreamMs,
          latencyMs: Date.now() - started,
          variant: output.InvokedProductionVariant,
          ...metric(200),
        });
        return respond(200, text);
      } catch (err) {
        const failure = mapUpstreamError(err);
        const extra = failure.retryAfter ? { 'retry-after': String(failure.retryAfter) } : {};
        return fail(
          failure.status,
          failure.body,
          { ...requestFields, upstream: failure.cause, upstreamMs: Date.now() - upstreamStarted },
          extra,
        );
      }
    } catch (err) {
      if (err instanceof ClientError) return fail(err.status, err.toBody(), {});
      // Log the error itself (message and stack), never the event: it holds the image.
      logger.error('unexpected failure', {
        error:
          err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : String(err),
        ...metric(500),
      });
      return respond(500, errorBody('INTERNAL', 'internal error'));
    }
  };
}

function corsHeaders(origins: string[], requestOrigin: string | undefined): Record<string, string> {
  const base = {
    'access-control-allow-methods': 'POST, OPTIONS',
    'access-control-allow-headers':
      'Content-Type, X-Api-Key, Authorization, X-Amz-Date, X-Amz-Security-Token',
  };
  // No origin allowed: no CORS headers, so browsers refuse cross-origin calls.
  if (origins.length === 0) return {};
  if (origins.includes('*')) return { ...base, 'access-control-allow-origin': '*' };
  // Several origins: echo the caller's when allowed, so caches must vary by Origin.
  const origin = requestOrigin && origins.includes(requestOrigin) ? requestOrigin : origins[0];
  return { ...base, 'access-control-allow-origin': origin, vary: 'Origin' };
}

/** The Lambda entry point (bundled by the CDK stack): ENDPOINT_NAME, CORS_ALLOW_ORIGIN and LOG_PREDICTIONS from the environment. */
export const handler: PredictHandler = createHandler();
