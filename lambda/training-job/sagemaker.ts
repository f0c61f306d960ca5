import {
  DescribeTrainingJobCommand,
  type DescribeTrainingJobCommandOutput,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';

/** One client per Lambda container; tests replace its `send` with aws-sdk-client-mock. */
export const sagemaker = new SageMakerClient({});

/** The job, or undefined when SageMaker does not know the name. */
export async function describeJob(name: string): Promise<DescribeTrainingJobCommandOutput | undefined> {
  try {
    return await sagemaker.send(new DescribeTrainingJobCommand({ TrainingJobName: name }));
  } catch (err) {
    // SageMaker answers an unknown name with a ValidationException, not a NotFound error.
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  return e.name === 'ValidationException' && /not found/i.test(e.message ?? '');
}
