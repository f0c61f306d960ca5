import type { APIGatewayProxyEvent, Context } from 'aws-lambda';

/** A REST API proxy event as API Gateway sends it (binary media types arrive base64-encoded). */
export function proxyEvent(
  options: {
    method?: string;
    contentType?: string;
    body?: Buffer | string | null;
    base64?: boolean;
    headers?: Record<string, string>;
    requestId?: string;
  } = {},
): APIGatewayProxyEvent {
  const base64 = options.base64 ?? Buffer.isBuffer(options.body);
  const body =
    options.body === undefined || options.body === null
      ? null
      : Buffer.isBuffer(options.body)
        ? options.body.toString(base64 ? 'base64' : 'utf8')
        : options.body;
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.contentType) headers['Content-Type'] = options.contentType;
  return {
    resource: '/predict',
    path: '/predict',
    httpMethod: options.method ?? 'POST',
    headers,
    multiValueHeaders: {},
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: null,
    stageVariables: null,
    body,
    isBase64Encoded: base64,
    requestContext: { requestId: options.requestId ?? 'req-123' } as APIGatewayProxyEvent['requestContext'],
  };
}

export function lambdaContext(remainingMs = 28_000): Context {
  const deadline = Date.now() + remainingMs;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'predict',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:predict',
    memoryLimitInMB: '512',
    awsRequestId: 'lambda-req-1',
    logGroupName: '/aws/lambda/predict',
    logStreamName: 'stream',
    getRemainingTimeInMillis: () => deadline - Date.now(),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}
