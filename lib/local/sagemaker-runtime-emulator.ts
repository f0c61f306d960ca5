import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyReply } from 'fastify';
import { MAX_BODY_BYTES } from '../../training-container/src/serve/contract.ts';

/**
 * A loopback server that speaks the SageMaker Runtime REST shape for `InvokeEndpoint`, so the
 * real `SageMakerRuntimeClient` (and therefore the real predict Lambda) runs unchanged against a
 * local `serve` process. It forwards the body to the container's `/invocations`, as SageMaker
 * does, and reports failures the way SageMaker does: a status, an `x-amzn-errortype` header
 * and a JSON body (ModelError carries the container's status and body).
 */
export interface SageMakerRuntimeEmulatorOptions {
  /** Base URL of the container's server, e.g. http://127.0.0.1:8080. */
  serveUrl: string;
  /** Endpoint name that exists; others answer ValidationError "not found". Default: any name. */
  endpointName?: string;
  /** Default 0 (a free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** SageMaker waits 60 s for the container; default 60 000 ms. */
  invocationTimeoutMs?: number;
}

export interface RunningEmulator {
  /** Base URL to give the SDK client as `endpoint`. */
  url: string;
  close: () => Promise<void>;
}

const ACCOUNT = '000000000000';
const REGION = 'us-east-1';
const ERROR_NAMESPACE = 'http://internal.amazonaws.com/doc/2017-05-13/';

export async function startSageMakerRuntimeEmulator(
  options: SageMakerRuntimeEmulatorOptions,
): Promise<RunningEmulator> {
  const serveUrl = options.serveUrl.replace(/\/+$/, '');
  const timeoutMs = options.invocationTimeoutMs ?? 60_000;
  // A little over the limit so the size check below, not the framework, answers oversize bodies.
  const app = Fastify({ logger: false, bodyLimit: MAX_BODY_BYTES + 1024 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const sendError = (reply: FastifyReply, status: number, type: string, body: Record<string, unknown>) =>
    reply
      .code(status)
      .header('x-amzn-errortype', `${type}:${ERROR_NAMESPACE}`)
      .header('x-amzn-requestid', randomUUID())
      .type('application/json')
      .send(body);

  app.post<{ Params: { name: string } }>('/endpoints/:name/invocations', async (request, reply) => {
    const { name } = request.params;
    if (!request.headers.authorization) {
      return sendError(reply, 403, 'MissingAuthenticationTokenException', {
        message: 'Missing Authentication Token',
      });
    }
    if (options.endpointName && name !== options.endpointName) {
      return sendError(reply, 400, 'ValidationError', {
        message: `Endpoint ${name} of account ${ACCOUNT} not found.`,
      });
    }
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    if (body.length > MAX_BODY_BYTES) {
      return sendError(reply, 400, 'ValidationError', {
        message: `Request body size ${body.length} exceeds the maximum of ${MAX_BODY_BYTES} bytes.`,
      });
    }

    const headers: Record<string, string> = {};
    const contentType = request.headers['content-type'];
    if (contentType) headers['content-type'] = contentType;
    headers.accept = String(request.headers.accept ?? 'application/json');
    const attributes = request.headers['x-amzn-sagemaker-custom-attributes'];
    if (typeof attributes === 'string') headers['x-amzn-sagemaker-custom-attributes'] = attributes;

    let res: Response;
    let text: string;
    try {
      res = await fetch(`${serveUrl}/invocations`, {
        method: 'POST',
        headers,
        body: body.length ? new Uint8Array(body) : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      if (timedOut) {
        return sendError(reply, 424, 'ModelError', {
          ErrorCode: 'CLIENT_ERROR_FROM_MODEL',
          LogStreamArn: logStreamArn(name),
          Message: 'Your invocation timed out while waiting for a response from container primary.',
        });
      }
      return sendError(reply, 503, 'ServiceUnavailable', {
        message: `The endpoint ${name} is unavailable: its container does not answer at ${serveUrl}.`,
      });
    }

    if (res.ok) {
      reply
        .code(200)
        .header('content-type', res.headers.get('content-type') ?? 'application/octet-stream')
        .header('x-amzn-invoked-production-variant', 'AllTraffic')
        .header('x-amzn-requestid', randomUUID());
      const echoed = res.headers.get('x-amzn-sagemaker-custom-attributes');
      if (echoed) reply.header('x-amzn-sagemaker-custom-attributes', echoed);
      return reply.send(text);
    }
    const kind = res.status < 500 ? 'client' : 'server';
    return sendError(reply, 424, 'ModelError', {
      ErrorCode: res.status < 500 ? 'CLIENT_ERROR_FROM_MODEL' : 'SERVER_ERROR_FROM_MODEL',
      LogStreamArn: logStreamArn(name),
      Message: `Received ${kind} error (${res.status}) from primary with message "${text}". See https://${REGION}.console.aws.amazon.com/cloudwatch/home?region=${REGION}#logEventViewer:group=/aws/sagemaker/Endpoints/${name} in account ${ACCOUNT} for more information.`,
      OriginalMessage: text,
      OriginalStatusCode: res.status,
    });
  });

  app.setNotFoundHandler((_request, reply) =>
    sendError(reply, 404, 'UnknownOperationException', { message: 'Unknown operation' }),
  );
  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) =>
    sendError(
      reply,
      error.statusCode && error.statusCode < 500 ? 400 : 500,
      error.statusCode && error.statusCode < 500 ? 'ValidationError' : 'InternalFailure',
      {
        message: error.statusCode && error.statusCode < 500 ? error.message : 'internal failure',
      },
    ),
  );

  await app.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('emulator has no TCP address');
  return { url: `http://${options.host ?? '127.0.0.1'}:${address.port}`, close: () => app.close() };
}

function logStreamArn(name: string): string {
  return `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:/aws/sagemaker/Endpoints/${name}`;
}
