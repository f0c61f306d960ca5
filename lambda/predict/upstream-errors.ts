import { type ErrorBody, ErrorBodySchema, errorBody } from '../../training-container/src/serve/contract.ts';

export interface UpstreamFailure {
  status: number;
  body: ErrorBody;
  /** Seconds a client should wait before retrying (429/503). */
  retryAfter?: number;
  /** For the log: which upstream error it was. */
  cause: string;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'EPIPE',
]);

/**
 * Maps an InvokeEndpoint failure to what the API's client sees. The container's own 4xx
 * (a ModelError carrying `{"error": ...}`) goes back unchanged; everything else becomes a JSON
 * error whose status says whose fault it was and whether retrying helps.
 */
export function mapUpstreamError(err: unknown): UpstreamFailure {
  const e = (err ?? {}) as {
    name?: string;
    code?: string;
    message?: string;
    OriginalStatusCode?: number;
    OriginalMessage?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const name = e.name ?? 'Error';

  if (name === 'ModelError') {
    const status = e.OriginalStatusCode ?? 0;
    if (status >= 400 && status < 500) {
      const original = parseErrorBody(e.OriginalMessage);
      const body = original ?? errorBody('INVALID_REQUEST', 'the model rejected the request');
      return { status, body, cause: `ModelError(${status})` };
    }
    if (status === 501) {
      // The model cannot explain (EXPLAIN_UNSUPPORTED): permanent, so not a retryable 502.
      const original = parseErrorBody(e.OriginalMessage);
      const body = original ?? errorBody('EXPLAIN_UNSUPPORTED', 'the model cannot explain its predictions');
      return { status: 501, body, cause: 'ModelError(501)' };
    }
    if (status === 503) {
      return {
        status: 503,
        body: errorBody('MODEL_NOT_READY', 'the model is not ready; retry shortly'),
        retryAfter: 5,
        cause: 'ModelError(503)',
      };
    }
    return {
      status: 502,
      body: errorBody('UPSTREAM_ERROR', 'the model failed to answer'),
      cause: `ModelError(${status || '?'})`,
    };
  }
  if (
    name === 'ThrottlingException' ||
    e.$metadata?.httpStatusCode === 429 ||
    name === 'ModelNotReadyException'
  ) {
    return {
      status: 429,
      body: errorBody('THROTTLED', 'too many requests for the model; retry shortly'),
      retryAfter: 1,
      cause: name,
    };
  }
  if (
    name === 'AbortError' ||
    name === 'TimeoutError' ||
    e.code === 'ETIMEDOUT' ||
    e.code === 'ECONNABORTED'
  ) {
    return {
      status: 504,
      body: errorBody('UPSTREAM_TIMEOUT', 'the model did not answer in time'),
      cause: name,
    };
  }
  if (
    name === 'ServiceUnavailable' ||
    name === 'InternalDependencyException' ||
    NETWORK_CODES.has(e.code ?? '') ||
    (name === 'ValidationError' && /not found/i.test(e.message ?? ''))
  ) {
    return {
      status: 503,
      body: errorBody('UPSTREAM_UNAVAILABLE', 'the prediction endpoint is unavailable; retry later'),
      retryAfter: 5,
      cause: e.code ?? name,
    };
  }
  return {
    status: 502,
    body: errorBody('UPSTREAM_ERROR', 'the prediction endpoint failed'),
    cause: e.code ?? name,
  };
}

function parseErrorBody(text: string | undefined): ErrorBody | undefined {
  if (!text) return undefined;
  try {
    const parsed = ErrorBodySchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
