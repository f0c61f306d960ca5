import { createHash } from 'node:crypto';
import {
  CreateEndpointConfigCommand,
  CreateModelCommand,
  DescribeEndpointCommand,
  DescribeEndpointConfigCommand,
  DescribeModelCommand,
  DescribeModelPackageCommand,
  ListModelPackagesCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { z } from 'zod';
import { hasInstanceStorage } from '../../lib/instance-storage.ts';

/** One client per Lambda container; tests replace its `send` with aws-sdk-client-mock. */
export const sagemaker = new SageMakerClient({});

const EnvSchema = z.object({
  MODEL_PACKAGE_GROUP: z.string().min(1),
  ENDPOINT_NAME: z.string().min(1),
  NAME_PREFIX: z.string().min(1).max(40),
  IMAGE_URI: z.string().min(1),
  MODEL_ROLE_ARN: z.string().startsWith('arn:'),
  VARIANT_NAME: z.string().min(1),
  INSTANCE_TYPE: z.string().regex(/^ml\./),
  INITIAL_INSTANCES: z.coerce.number().int().min(1),
  /** JSON of the endpoint config's DataCaptureConfig, or empty for none. */
  DATA_CAPTURE: z.string().default(''),
  /**
   * Customer-managed KMS key (strict configuration) for the endpoint's storage volume and the
   * data capture; empty or unset for AWS-managed encryption.
   */
  KMS_KEY_ARN: z.string().default(''),
  /** JSON of CreateModel's VpcConfig (strict configuration), or empty/unset for none. */
  VPC_CONFIG: z.string().default(''),
});

const VpcConfigSchema = z.object({
  Subnets: z.array(z.string().min(1)).min(1),
  SecurityGroupIds: z.array(z.string().min(1)).min(1),
});

export type Action = 'none' | 'create' | 'update';

export interface Prepared {
  action: Action;
  /** Why (for `none`) or what (otherwise), for the execution history. */
  reason: string;
  endpointConfigName?: string;
  modelPackageArn?: string;
  /** The variant's instance type changes: autoscaling must be deregistered for the update. */
  instanceTypeChanged: boolean;
}

/** SageMaker is busy with the endpoint: the state machine retries this step later. */
export class EndpointBusy extends Error {
  constructor(status: string) {
    super(`endpoint is ${status}; retry when it is InService`);
    this.name = 'EndpointBusy';
  }
}

const BUSY = new Set([
  'Creating',
  'Updating',
  'SystemUpdating',
  'RollingBack',
  'Deleting',
  'UpdateRollbackFailed',
]);

/**
 * First step of the deployment state machine: finds the latest Approved package in the group,
 * creates (or finds) its model and endpoint config with the current image and instance settings,
 * and says what the endpoint needs: nothing, a create, or an update. Names derive from the
 * package version and the settings, so a retried or repeated execution reuses what exists.
 */
export async function handler(): Promise<Prepared> {
  const env = EnvSchema.parse(process.env);
  const latest = await sagemaker.send(
    new ListModelPackagesCommand({
      ModelPackageGroupName: env.MODEL_PACKAGE_GROUP,
      ModelApprovalStatus: 'Approved',
      SortBy: 'CreationTime',
      SortOrder: 'Descending',
      MaxResults: 1,
    }),
  );
  const summary = latest.ModelPackageSummaryList?.[0];
  if (!summary?.ModelPackageArn) {
    return {
      action: 'none',
      reason: `no Approved model package in ${env.MODEL_PACKAGE_GROUP}`,
      instanceTypeChanged: false,
    };
  }
  const pkg = await sagemaker.send(
    new DescribeModelPackageCommand({ ModelPackageName: summary.ModelPackageArn }),
  );
  const modelDataUrl = pkg.InferenceSpecification?.Containers?.[0]?.ModelDataUrl;
  if (!modelDataUrl) throw new Error(`model package ${summary.ModelPackageArn} has no ModelDataUrl`);
  const kmsKeyArn = env.KMS_KEY_ARN || undefined;
  const dataCapture = env.DATA_CAPTURE
    ? { ...JSON.parse(env.DATA_CAPTURE), ...(kmsKeyArn ? { KmsKeyId: kmsKeyArn } : {}) }
    : undefined;
  const vpcConfig = env.VPC_CONFIG ? VpcConfigSchema.parse(JSON.parse(env.VPC_CONFIG)) : undefined;
  // Local instance storage is encrypted by the instance's hardware; SageMaker refuses a key for it.
  const volumeKmsKeyId = kmsKeyArn && !hasInstanceStorage(env.INSTANCE_TYPE) ? kmsKeyArn : undefined;
  // Undefined fields drop out of the JSON: without a key or VPC, names are what they always were.
  const settings = {
    image: env.IMAGE_URI,
    modelDataUrl,
    role: env.MODEL_ROLE_ARN,
    instanceType: env.INSTANCE_TYPE,
    initialInstances: env.INITIAL_INSTANCES,
    dataCapture,
    kmsKeyArn,
    vpcConfig,
  };
  const digest = createHash('sha256').update(JSON.stringify(settings)).digest('hex').slice(0, 10);
  const name = `${env.NAME_PREFIX}-v${pkg.ModelPackageVersion ?? 0}-${digest}`;

  if (!(await exists(() => sagemaker.send(new DescribeModelCommand({ ModelName: name }))))) {
    await sagemaker.send(
      new CreateModelCommand({
        ModelName: name,
        ExecutionRoleArn: env.MODEL_ROLE_ARN,
        // The current image serves the package's weights: serving fixes roll out without retraining.
        PrimaryContainer: { Image: env.IMAGE_URI, ModelDataUrl: modelDataUrl },
        EnableNetworkIsolation: true,
        ...(vpcConfig ? { VpcConfig: vpcConfig } : {}),
      }),
    );
  }
  if (
    !(await exists(() => sagemaker.send(new DescribeEndpointConfigCommand({ EndpointConfigName: name }))))
  ) {
    await sagemaker.send(
      new CreateEndpointConfigCommand({
        EndpointConfigName: name,
        ProductionVariants: [
          {
            // Blue/green guardrails need the same variant name in the old and new configs.
            VariantName: env.VARIANT_NAME,
            ModelName: name,
            InstanceType: env.INSTANCE_TYPE as never,
            InitialInstanceCount: env.INITIAL_INSTANCES,
            InitialVariantWeight: 1,
          },
        ],
        ...(dataCapture ? { DataCaptureConfig: dataCapture } : {}),
        ...(volumeKmsKeyId ? { KmsKeyId: volumeKmsKeyId } : {}),
      }),
    );
  }

  const base = { endpointConfigName: name, modelPackageArn: summary.ModelPackageArn };
  let endpoint: Awaited<ReturnType<typeof describeEndpoint>>;
  try {
    endpoint = await describeEndpoint(env.ENDPOINT_NAME);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    return {
      ...base,
      action: 'create',
      reason: `create ${env.ENDPOINT_NAME} with ${name}`,
      instanceTypeChanged: false,
    };
  }
  const status = endpoint.EndpointStatus ?? 'unknown';
  if (BUSY.has(status)) throw new EndpointBusy(status);
  if (status === 'Failed') {
    throw new Error(
      `endpoint ${env.ENDPOINT_NAME} is Failed (${endpoint.FailureReason}): delete it, then run this deployment again`,
    );
  }
  if (endpoint.EndpointConfigName === name) {
    return {
      ...base,
      action: 'none',
      reason: `${env.ENDPOINT_NAME} already serves ${name}`,
      instanceTypeChanged: false,
    };
  }
  const current = await sagemaker.send(
    new DescribeEndpointConfigCommand({ EndpointConfigName: endpoint.EndpointConfigName }),
  );
  const currentType = current.ProductionVariants?.find(
    (v) => v.VariantName === env.VARIANT_NAME,
  )?.InstanceType;
  return {
    ...base,
    action: 'update',
    reason: `update ${env.ENDPOINT_NAME}: ${endpoint.EndpointConfigName} -> ${name}`,
    instanceTypeChanged: currentType !== env.INSTANCE_TYPE,
  };
}

function describeEndpoint(name: string) {
  return sagemaker.send(new DescribeEndpointCommand({ EndpointName: name }));
}

async function exists(describe: () => Promise<unknown>): Promise<boolean> {
  try {
    await describe();
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** SageMaker answers an unknown name with a ValidationException ("Could not find ..."). */
export function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  return e.name === 'ValidationException' && /could not find|not found|does not exist/i.test(e.message ?? '');
}
