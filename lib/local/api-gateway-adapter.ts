import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { acceptRawBodies } from '../../training-container/src/serve/body-limit.ts';
import { LAMBDA_SYNC_PAYLOAD_BYTES, mediaType } from '../../training-container/src/serve/contract.ts';

/**
 * A small stand-in for the API Gateway REST API of the stack (lib/predict-api.ts), enough to
 * run the real predict Lambda handler locally: it turns HTTP requests into proxy events (binary
 * media types base64-encoded), checks the API key, answers CORS preflights, enforces the
 * integration timeout, its own payload limit and Lambda's event limit, and reports its own
 * rejections in the stack's gateway response shape `{"error": {"code": "<response type>", "message": ...}}`
 * (except the Lambda limit: see LAMBDA_TOO_LARGE).
 */
export interface ApiGatewayAdapterOptions {
  handler: (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;
  /** Default 3000; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** When set, requests must send it as `x-api-key` (as with the stack's usage plan). Default: none. */
  apiKey?: string;
  /** Default '/predict'. */
  resourcePath?: string;
  /** Default 'prod'. */
  stage?: string;
  /** Default ['image/jpeg', 'image/png'], as in the stack. */
  binaryMediaTypes?: string[];
  /** API Gateway's REST integration limit; default 29 000 ms. */
  integrationTimeoutMs?: number;
  /** The Lambda's configured timeout, seen through `context.getRemainingTimeInMillis()`; default 28 000 ms. */
  lambdaTimeoutMs?: number;
  /** API Gateway's payload limit; default 10 MB. */
  maxBodyBytes?: number;
  /** Lambda's synchronous invocation limit on the serialized event; default 6,291,456 bytes. */
  maxEventBytes?: number;
  /**
   * A folder with the web page (`index.html`, `app.js`): served at `GET /` and `GET /app.js`
   * without authentication (the page asks for the key and sends it with each request). Default: none.
   */
  webDir?: string;
}

export interface RunningApiGateway {
  /** Base URL, e.g. http://127.0.0.1:3000 (the route is `${url}/predict`). */
  url: string;
  close: () => Promise<void>;
}

/**
 * What a client gets when the event is over Lambda's limit: Lambda refuses it, the handler never
 * runs, and API Gateway answers for it, without CORS and not in the stack's error shape. This is
 * the response captured from a REST API (koki-develop/lgtm-generator#10, 2021); other reports
 * describe a 500 or 502 for the same case. Whatever the exact answer, it is not the handler's.
 */
export const LAMBDA_TOO_LARGE = {
  status: 413,
  headers: { 'x-amzn-errortype': 'BadRequestException' },
  body: '{"message": "Request Too Long"}',
} as const;

const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'POST, OPTIONS',
  'access-control-allow-headers': 'Content-Type, X-Api-Key, Authorization, X-Amz-Date, X-Amz-Security-Token',
  'access-control-max-age': '3600',
};

export async function startApiGateway(options: ApiGatewayAdapterOptions): Promise<RunningApiGateway> {
  const resourcePath = options.resourcePath ?? '/predict';
  const stage = options.stage ?? 'prod';
  const binaryTypes = options.binaryMediaTypes ?? ['image/jpeg', 'image/png'];
  const integrationTimeoutMs = options.integrationTimeoutMs ?? 29_000;
  const lambdaTimeoutMs = options.lambdaTimeoutMs ?? 28_000;
  const maxEventBytes = options.maxEventBytes ?? LAMBDA_SYNC_PAYLOAD_BYTES;
  const bodyLimit = options.maxBodyBytes ?? 10 * 1024 * 1024;
  const app = Fastify({ logger: false, bodyLimit });
  // Raw bytes; an oversized body is read to its end before the 413, so every client can read it.
  acceptRawBodies(app, { limit: bodyLimit });

  const gatewayError = (reply: FastifyReply, status: number, type: string, message: string) =>
    reply
      .code(status)
      .headers({
        'access-control-allow-origin': '*',
        'x-amzn-errortype': type,
        'x-amzn-requestid': randomUUID(),
      })
      .type('application/json')
      .send({ error: { code: type, message } });

  if (options.webDir) serveWebPage(app, options.webDir);

  app.options(resourcePath, async (_request, reply) => reply.code(204).headers(CORS_HEADERS).send());

  app.post(resourcePath, async (request, reply) => {
    if (options.apiKey !== undefined && request.headers['x-api-key'] !== options.apiKey) {
      return gatewayError(reply, 403, 'INVALID_API_KEY', 'Forbidden');
    }
    const event = toProxyEvent(request, { resourcePath, stage, binaryTypes });
    // Measured as Lambda does, on the event as JSON (escapes included), not on the HTTP body.
    if (Buffer.byteLength(JSON.stringify(event)) > maxEventBytes) {
      return reply
        .code(LAMBDA_TOO_LARGE.status)
        .headers({ ...LAMBDA_TOO_LARGE.headers, 'x-amzn-requestid': randomUUID() })
        .type('application/json')
        .send(LAMBDA_TOO_LARGE.body);
    }
    const context = lambdaContext(event.requestContext.requestId, lambdaTimeoutMs);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), integrationTimeoutMs);
    });
    let result: APIGatewayProxyResult | 'timeout';
    try {
      result = await Promise.race([options.handler(event, context), timeout]);
    } catch {
      // A handler that throws is a Lambda invocation error: API Gateway answers 502.
      return gatewayError(reply, 502, 'DEFAULT_5XX', 'Internal server error');
    } finally {
      clearTimeout(timer);
    }
    if (result === 'timeout')
      return gatewayError(reply, 504, 'INTEGRATION_TIMEOUT', 'Endpoint request timed out');
    if (!result || typeof result.statusCode !== 'number') {
      return gatewayError(reply, 502, 'DEFAULT_5XX', 'Internal server error');
    }
    reply.code(result.statusCode);
    for (const [name, value] of Object.entries(result.headers ?? {})) reply.header(name, String(value));
    for (const [name, values] of Object.entries(result.multiValueHeaders ?? {}))
      reply.header(name, values.map(String));
    const body = result.body ?? '';
    return reply.send(result.isBase64Encoded ? Buffer.from(body, 'base64') : body);
  });

  app.setNotFoundHandler((_request, reply) =>
    gatewayError(reply, 403, 'MISSING_AUTHENTICATION_TOKEN', 'Missing Authentication Token'),
  );
  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) =>
    error.statusCode === 413
      ? gatewayError(reply, 413, 'REQUEST_TOO_LARGE', 'Request Too Long')
      : gatewayError(
          reply,
          error.statusCode && error.statusCode < 500 ? 400 : 500,
          'DEFAULT_4XX',
          error.message,
        ),
  );

  const host = options.host ?? '127.0.0.1';
  await app.listen({ port: options.port ?? 3000, host });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('API adapter has no TCP address');
  return { url: `http://${host}:${address.port}`, close: () => app.close() };
}

/**
 * The page's Content-Security-Policy: its own script and API only; images are the user's files
 * (blob:) and the heatmaps (data:). The stack serves the same policy (lib/web-page.ts) in a
 * `<meta>` tag, with the script inlined and allowed by its hash (`frame-ancestors` is left out
 * there: a meta policy cannot carry it, so that page sends `X-Frame-Options: DENY` instead).
 */
export function webPagePolicy(scriptSource = "'self'", options: { meta?: boolean } = {}): string {
  return [
    "default-src 'none'",
    `script-src ${scriptSource}`,
    "style-src 'unsafe-inline'",
    'img-src blob: data:',
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    ...(options.meta ? [] : ["frame-ancestors 'none'"]),
  ].join('; ');
}

/** `GET /` (and `/index.html`) and `GET /app.js` from `dir`: a fixed list, read once per request. */
function serveWebPage(app: FastifyInstance, dir: string): void {
  const files = {
    '/': ['index.html', 'text/html; charset=utf-8'],
    '/index.html': ['index.html', 'text/html; charset=utf-8'],
    '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  } as const;
  for (const [route, [file, type]] of Object.entries(files)) {
    app.get(route, async (_request, reply) =>
      reply
        .headers({
          'content-type': type,
          'cache-control': 'no-cache',
          'content-security-policy': webPagePolicy(),
          'x-content-type-options': 'nosniff',
        })
        .send(await readFile(path.join(dir, file))),
    );
  }
}

function toProxyEvent(
  request: FastifyRequest,
  config: { resourcePath: string; stage: string; binaryTypes: string[] },
): APIGatewayProxyEvent {
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    const values = Array.isArray(value) ? value : [value];
    headers[name] = values.join(',');
    multiValueHeaders[name] = values;
  }
  const query = new URL(request.url, 'http://localhost').searchParams;
  const queryParams = query.size ? Object.fromEntries(query) : null;
  const bytes = Buffer.isBuffer(request.body) ? request.body : undefined;
  const binary = config.binaryTypes.includes(mediaType(request.headers['content-type']) ?? '');
  const now = new Date();
  return {
    resource: config.resourcePath,
    path: config.resourcePath,
    httpMethod: request.method,
    headers,
    multiValueHeaders,
    queryStringParameters: queryParams,
    multiValueQueryStringParameters: queryParams
      ? Object.fromEntries([...query.keys()].map((k) => [k, query.getAll(k)]))
      : null,
    pathParameters: null,
    stageVariables: null,
    body: bytes?.length ? bytes.toString(binary ? 'base64' : 'utf8') : null,
    isBase64Encoded: Boolean(bytes?.length && binary),
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      authorizer: null,
      protocol: `HTTP/${request.raw.httpVersion}`,
      httpMethod: request.method,
      path: `/${config.stage}${config.resourcePath}`,
      stage: config.stage,
      requestId: randomUUID(),
      requestTime: now.toUTCString(),
      requestTimeEpoch: now.getTime(),
      resourceId: 'local',
      resourcePath: config.resourcePath,
      identity: {
        accessKey: null,
        accountId: null,
        apiKey: typeof request.headers['x-api-key'] === 'string' ? request.headers['x-api-key'] : null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: request.ip,
        user: null,
        userAgent: request.headers['user-agent'] ?? null,
        userArn: null,
      },
    },
  };
}

function lambdaContext(requestId: string, timeoutMs: number): Context {
  const deadline = Date.now() + timeoutMs;
  const unsupported = () => {
    throw new Error('callback-style Lambda context methods are not supported');
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'brain-tumor-predict-local',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:brain-tumor-predict-local',
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    logGroupName: '/aws/lambda/brain-tumor-predict-local',
    logStreamName: `local/${requestId}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}
