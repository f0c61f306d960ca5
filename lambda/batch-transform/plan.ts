import {
  DescribeEndpointCommand,
  DescribeEndpointConfigCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { z } from 'zod';
import { hasInstanceStorage } from '../../lib/instance-storage.ts';
import { isNotFound } from '../model-deployment/prepare.ts';
import { BatchInputSchema, type BatchPlan, describeIssues, planBatch } from './input.ts';

/** One client per Lambda container; tests replace its `send` with aws-sdk-client-mock. */
export const sagemaker = new SageMakerClient({});

const count = z.coerce.number().int();
const EnvSchema = z.object({
  BUCKET: z.string().min(1),
  NAME_PREFIX: z.string().min(1).max(40),
  ENDPOINT_NAME: z.string().min(1),
  VARIANT_NAME: z.string().min(1),
  DEFAULT_INSTANCE_TYPE: z.string().regex(/^ml\./),
  DEFAULT_INSTANCE_COUNT: count.min(1),
  DEFAULT_MAX_PAYLOAD_MB: count.min(1),
  DEFAULT_MAX_CONCURRENT_TRANSFORMS: count.min(0),
  DEFAULT_COLLECT_CONCURRENCY: count.min(1),
  /** `true` (strict): the job's volume gets the data key, except on instance types with local storage. */
  ENCRYPT_VOLUME: z.enum(['true', 'false']).default('false'),
});

const EventSchema = z.object({
  /** The execution input, as the user gave it. */
  input: z.unknown(),
  /** `$$.Execution.Name`: names the job and the output folder. */
  executionName: z.string().min(1).max(80),
});

/** The execution input is not what the state machine accepts; the message lists every problem. */
export class InvalidInput extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidInput';
  }
}

/** No model to run: the endpoint does not exist or is not InService. */
export class NoDeployedModel extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoDeployedModel';
  }
}

export interface PlanResult extends BatchPlan {
  /** The model the endpoint serves (its AllTraffic variant): the transform job runs it. */
  modelName: string;
  endpointConfigName: string;
  /** Put the data key on the job's volume (strict, and an instance type without local storage). */
  encryptVolume: boolean;
}

/**
 * First state of the batch transform state machine: validates the execution input (the same
 * schema `brain-tumor batch --aws` sends with), applies the deployed defaults, derives the job
 * name and S3 locations from the execution name, and finds the model the endpoint serves. Errors
 * are named (InvalidInput, NoDeployedModel) so the state machine fails with them and their message.
 */
export async function handler(event: unknown): Promise<PlanResult> {
  const env = EnvSchema.parse(process.env);
  const { input, executionName } = EventSchema.parse(event);
  const parsed = BatchInputSchema.safeParse(input);
  if (!parsed.success) throw new InvalidInput(describeIssues(parsed.error));
  let plan: BatchPlan;
  try {
    plan = planBatch(
      parsed.data,
      {
        instanceType: env.DEFAULT_INSTANCE_TYPE,
        instanceCount: env.DEFAULT_INSTANCE_COUNT,
        maxPayloadInMB: env.DEFAULT_MAX_PAYLOAD_MB,
        maxConcurrentTransforms: env.DEFAULT_MAX_CONCURRENT_TRANSFORMS,
        collectConcurrency: env.DEFAULT_COLLECT_CONCURRENCY,
      },
      { bucket: env.BUCKET, namePrefix: env.NAME_PREFIX, executionName },
    );
  } catch (err) {
    throw new InvalidInput((err as Error).message);
  }
  const { modelName, endpointConfigName } = await servedModel(env.ENDPOINT_NAME, env.VARIANT_NAME);
  const result: PlanResult = {
    ...plan,
    modelName,
    endpointConfigName,
    // Local NVMe storage is encrypted by the instance's hardware; SageMaker refuses a key for it.
    encryptVolume: env.ENCRYPT_VOLUME === 'true' && !hasInstanceStorage(plan.instanceType),
  };
  console.log(
    JSON.stringify({
      level: 'INFO',
      message: 'batch planned',
      executionName,
      jobName: result.jobName,
      modelName,
      instanceType: result.instanceType,
      instanceCount: result.instanceCount,
      format: result.format,
    }),
  );
  return result;
}

const NO_MODEL_HINT =
  'approve a model package first (the approval deploys it to the endpoint; docs/infrastructure.md, "Deploy, call, watch")';

/** The model behind the endpoint's variant, read from its current endpoint config. */
async function servedModel(
  endpointName: string,
  variantName: string,
): Promise<{ modelName: string; endpointConfigName: string }> {
  let endpoint: Awaited<ReturnType<typeof describe>>;
  try {
    endpoint = await describe(endpointName);
  } catch (err) {
    if (isNotFound(err)) {
      throw new NoDeployedModel(
        `no deployed model: endpoint ${endpointName} does not exist; ${NO_MODEL_HINT}`,
      );
    }
    throw err;
  }
  const status = endpoint.EndpointStatus ?? 'unknown';
  if (status !== 'InService' || !endpoint.EndpointConfigName) {
    throw new NoDeployedModel(
      `no deployed model: endpoint ${endpointName} is ${status}, not InService; wait for a rollout to finish, or ${NO_MODEL_HINT}`,
    );
  }
  const config = await sagemaker.send(
    new DescribeEndpointConfigCommand({ EndpointConfigName: endpoint.EndpointConfigName }),
  );
  const modelName = config.ProductionVariants?.find((v) => v.VariantName === variantName)?.ModelName;
  if (!modelName) {
    throw new NoDeployedModel(
      `no deployed model: endpoint config ${endpoint.EndpointConfigName} has no variant ${variantName}`,
    );
  }
  return { modelName, endpointConfigName: endpoint.EndpointConfigName };
}

function describe(name: string) {
  return sagemaker.send(new DescribeEndpointCommand({ EndpointName: name }));
}
