import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';

// Placeholder until the serving work lands: answers 501 with a JSON error body.
export async function handler(_event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  return {
    statusCode: 501,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ error: { code: 'NOT_IMPLEMENTED', message: 'prediction is not wired yet' } }),
  };
}
