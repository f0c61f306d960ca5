import {
  DeleteEndpointCommand,
  DeleteEndpointConfigCommand,
  DeleteModelCommand,
  DeleteModelPackageCommand,
  ListEndpointConfigsCommand,
  ListModelPackagesCommand,
  ListModelsCommand,
  SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { z } from 'zod';
import { isNotFound } from './prepare.ts';

/** One client each per Lambda container; tests replace their `send` with aws-sdk-client-mock. */
export const sagemaker = new SageMakerClient({});
export const sfn = new SFNClient({});

const PropsSchema = z.object({
  StateMachineArn: z.string().startsWith('arn:'),
  EndpointName: z.string().min(1),
  NamePrefix: z.string().regex(/^[a-z0-9-]+$/, 'not a SageMaker name prefix'),
  ModelPackageGroup: z.string().min(1),
  /** 'true' in a dev setting: delete registered packages too, so the group can go. */
  DeletePackages: z.enum(['true', 'false']),
  /** Changes whenever the serving image or the endpoint settings change (its value is not read). */
  Settings: z.string(),
});

/**
 * Custom resource for the endpoint the deployment state machine manages outside CloudFormation.
 * Create and update start a deployment (a new image or new settings roll out the latest approved
 * model; with none approved yet it does nothing). Delete removes the endpoint, and the models and
 * endpoint configs this stack created, so `cdk destroy` leaves none behind.
 */
export async function handler(
  event: CloudFormationCustomResourceEvent,
): Promise<{ PhysicalResourceId: string }> {
  const props = PropsSchema.parse(event.ResourceProperties);
  if (event.RequestType === 'Delete') {
    await cleanUp(props);
    return { PhysicalResourceId: event.PhysicalResourceId };
  }
  const started = await sfn.send(
    new StartExecutionCommand({
      stateMachineArn: props.StateMachineArn,
      input: JSON.stringify({ trigger: `cloudformation ${event.RequestType}` }),
    }),
  );
  console.log(JSON.stringify({ message: 'deployment started', executionArn: started.executionArn }));
  return { PhysicalResourceId: props.EndpointName };
}

async function cleanUp(props: z.infer<typeof PropsSchema>): Promise<void> {
  try {
    await sagemaker.send(new DeleteEndpointCommand({ EndpointName: props.EndpointName }));
    console.log(JSON.stringify({ message: 'endpoint deleted', endpoint: props.EndpointName }));
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  // Only names this stack's deployments create: `<prefix>-v<version>-<digest>`.
  // Exactly `<prefix>-v<version>-<10 hex>`: another stack whose name starts with ours must not match.
  const pattern = new RegExp(`^${props.NamePrefix}-v\\d+-[0-9a-f]{10}$`);
  const ours = (name?: string): name is string => !!name && pattern.test(name);
  for (const name of await listAll(async (NextToken) => {
    const page = await sagemaker.send(
      new ListEndpointConfigsCommand({ NameContains: props.NamePrefix, NextToken }),
    );
    return { names: page.EndpointConfigs?.map((c) => c.EndpointConfigName) ?? [], next: page.NextToken };
  })) {
    if (ours(name)) await sagemaker.send(new DeleteEndpointConfigCommand({ EndpointConfigName: name }));
  }
  for (const name of await listAll(async (NextToken) => {
    const page = await sagemaker.send(new ListModelsCommand({ NameContains: props.NamePrefix, NextToken }));
    return { names: page.Models?.map((m) => m.ModelName) ?? [], next: page.NextToken };
  })) {
    if (ours(name)) await sagemaker.send(new DeleteModelCommand({ ModelName: name }));
  }
  if (props.DeletePackages === 'true') {
    for (const arn of await listAll(async (NextToken) => {
      const page = await sagemaker.send(
        new ListModelPackagesCommand({ ModelPackageGroupName: props.ModelPackageGroup, NextToken }),
      );
      return {
        names: page.ModelPackageSummaryList?.map((p) => p.ModelPackageArn) ?? [],
        next: page.NextToken,
      };
    })) {
      if (arn) await sagemaker.send(new DeleteModelPackageCommand({ ModelPackageName: arn }));
    }
  }
}

async function listAll(
  page: (token?: string) => Promise<{ names: (string | undefined)[]; next?: string }>,
): Promise<(string | undefined)[]> {
  const all: (string | undefined)[] = [];
  let token: string | undefined;
  do {
    const result = await page(token);
    all.push(...result.names);
    token = result.next;
  } while (token);
  return all;
}
