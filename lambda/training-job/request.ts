import type { CreateTrainingJobCommandInput } from '@aws-sdk/client-sagemaker';
import { z } from 'zod';

/**
 * The custom resource carries the whole CreateTrainingJob request as one JSON string property
 * (CloudFormation would turn numbers and booleans into strings otherwise). Only the fields the
 * handlers rely on are checked; SageMaker validates the rest and its error fails the deploy.
 */
const RequestSchema = z.looseObject({
  TrainingJobName: z.string().regex(/^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/, 'not a valid training job name'),
  RoleArn: z.string().startsWith('arn:'),
  AlgorithmSpecification: z.looseObject({ TrainingImage: z.string().min(1) }),
  OutputDataConfig: z.looseObject({ S3OutputPath: z.string().startsWith('s3://') }),
  StoppingCondition: z.looseObject({ MaxRuntimeInSeconds: z.number().int().positive() }),
});

export function parseRequest(props: Record<string, unknown>): CreateTrainingJobCommandInput {
  if (typeof props.Request !== 'string')
    throw new Error('resource property Request (JSON string) is missing');
  let json: unknown;
  try {
    json = JSON.parse(props.Request);
  } catch (err) {
    throw new Error(`resource property Request is not JSON: ${(err as Error).message}`);
  }
  const parsed = RequestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`resource property Request is invalid: ${issue?.path.join('.')}: ${issue?.message}`);
  }
  return parsed.data as unknown as CreateTrainingJobCommandInput;
}
