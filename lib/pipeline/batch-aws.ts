import { randomBytes } from 'node:crypto';
import {
  DescribeExecutionCommand,
  ListStateMachinesCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { z } from 'zod';
import {
  type BatchInput,
  BatchInputSchema,
  describeIssues,
  INPUT_FORMATS,
} from '../../lambda/batch-transform/input.ts';
import type { Summary } from '../../lambda/batch-transform/summarize.ts';

/**
 * `brain-tumor batch --aws`: starts the deployed batch transform state machine
 * (lib/batch-transform.ts) on `s3://<data bucket>/<prefix>/` and, with `wait`, follows it to the
 * end. The execution input is validated with the schema the state machine's Plan step validates
 * it with (lambda/batch-transform/input.ts), so what passes here is what the state machine accepts.
 */

/** The stack `cdk deploy` creates unless `-c stackName=...` says otherwise. */
export const DEFAULT_STACK = 'BrainTumorDetection';

/** The state machine's name in a stack (lib/brain-tumor-stack.ts names it so). */
export function batchStateMachineName(stack: string): string {
  return `${stack}-batch`;
}

// Command-line values arrive as strings: numbers are coerced here, their ranges checked by BatchInputSchema.
const num = z.coerce.number({ error: 'expected a number' }).optional();

/** The options of `brain-tumor batch --aws`, as the CLI passes them. */
export const AwsBatchOptionsSchema = z.strictObject({
  /** `--prefix images/`: key prefix (or s3:// URI) of the inputs in the stack's data bucket. */
  prefix: z.string({ error: 'prefix is required' }),
  /** `--format images|jsonlines` @default images */
  format: z.enum(INPUT_FORMATS).optional(),
  /** `--instance-type` @default the state machine's (ml.c5.xlarge) */
  instanceType: z.string().optional(),
  /** `--instance-count` @default 1 */
  instanceCount: num,
  /** `--max-payload-mb` @default 6 */
  maxPayloadMb: num,
  /** `--concurrency`: MaxConcurrentTransforms, parallel requests per instance; 0 = the container's choice. @default 0 */
  concurrency: num,
  /** `--batch-strategy SingleRecord|MultiRecord` @default SingleRecord (images), MultiRecord (jsonlines) */
  batchStrategy: z.enum(['SingleRecord', 'MultiRecord']).optional(),
  /** `--collect-concurrency`: collector Lambdas at once. @default 4 */
  collectConcurrency: num,
  /** `--stack`: finds the state machine `<stack>-batch`. @default BrainTumorDetection */
  stack: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9-]{0,60}$/, 'a CloudFormation stack name')
    .default(DEFAULT_STACK),
  /** `--state-machine-arn` (stack output BatchStateMachineArn): skips the lookup by name. */
  stateMachineArn: z.string().startsWith('arn:', 'expected a state machine ARN').optional(),
  /** `--name`: the execution's name, which also names the job and the output folder. @default batch-<UTC time>-<random> */
  executionName: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,80}$/, '1-80 letters, digits, - or _')
    .optional(),
  /** `--wait`: follow the execution to its end. @default false */
  wait: z.boolean().default(false),
  /** Seconds between DescribeExecution calls while waiting. @default 30 */
  pollSeconds: z.coerce.number().positive().default(30),
  /** `--region` @default the SDK's (AWS_REGION, profile) */
  region: z.string().optional(),
});
export type AwsBatchOptions = z.input<typeof AwsBatchOptionsSchema>;

export interface AwsBatchResult {
  stateMachineArn: string;
  executionArn: string;
  executionName: string;
  /** The execution input as sent. */
  input: BatchInput;
  /** RUNNING unless `wait`; then SUCCEEDED, FAILED, TIMED_OUT or ABORTED. */
  status: string;
  /** With `wait` and SUCCEEDED: the execution's output, also in `s3://<bucket>/batch-output/<execution>/summary.json`. */
  summary?: Summary;
  /** FAILED and the like: the state machine's error name (InvalidInput, NoDeployedModel, TransformFailed, ...) and cause. */
  error?: string;
  cause?: string;
  /** The execution in the Step Functions console. */
  consoleUrl: string;
}

export interface AwsBatchDeps {
  /** @default a new SFNClient (in `region`) */
  sfn?: SFNClient;
  /** Progress lines. @default none */
  log?: (line: string) => void;
  /** @default setTimeout */
  sleep?: (ms: number) => Promise<void>;
  /** @default new Date() */
  now?: () => Date;
}

/** The execution input the options make, validated as the state machine's Plan step will validate it. */
export function executionInputOf(options: z.output<typeof AwsBatchOptionsSchema>): BatchInput {
  const input = dropUndefined({
    prefix: options.prefix,
    format: options.format,
    instanceType: options.instanceType,
    instanceCount: options.instanceCount,
    maxPayloadInMB: options.maxPayloadMb,
    maxConcurrentTransforms: options.concurrency,
    batchStrategy: options.batchStrategy,
    collectConcurrency: options.collectConcurrency,
  }) as BatchInput;
  // What the state machine receives is this JSON text: validate its parse, not the object.
  const parsed = BatchInputSchema.safeParse(JSON.parse(JSON.stringify(input)));
  if (!parsed.success) throw new Error(`invalid batch options: ${describeIssues(parsed.error)}`);
  return input;
}

/**
 * Starts a batch transform run and, with `wait`, polls it to its end. Throws on bad options, a
 * state machine that cannot be found, or a failed StartExecution; a run that fails is a result
 * (status FAILED, with the state machine's error and cause), for the caller to report.
 */
export async function startAwsBatch(
  options: AwsBatchOptions,
  deps: AwsBatchDeps = {},
): Promise<AwsBatchResult> {
  const parsedOptions = AwsBatchOptionsSchema.safeParse(options);
  if (!parsedOptions.success)
    throw new Error(`invalid batch options: ${describeIssues(parsedOptions.error)}`);
  const opts = parsedOptions.data;
  const input = executionInputOf(opts);
  const sfn = deps.sfn ?? new SFNClient(opts.region ? { region: opts.region } : {});
  const log = deps.log ?? (() => {});
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const now = deps.now ?? (() => new Date());

  const stateMachineArn = opts.stateMachineArn ?? (await findStateMachine(sfn, opts.stack));
  const executionName = opts.executionName ?? defaultExecutionName(now());
  const started = await sfn.send(
    new StartExecutionCommand({ stateMachineArn, name: executionName, input: JSON.stringify(input) }),
  );
  const executionArn = started.executionArn as string;
  const consoleUrl = consoleUrlOf(executionArn);
  log(`started ${executionName}: ${consoleUrl}`);
  const result: AwsBatchResult = {
    stateMachineArn,
    executionArn,
    executionName,
    input,
    status: 'RUNNING',
    consoleUrl,
  };
  if (!opts.wait) return result;

  for (;;) {
    const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    const status = execution.status ?? 'UNKNOWN';
    if (status !== 'RUNNING' && status !== 'PENDING_REDRIVE') {
      result.status = status;
      if (status === 'SUCCEEDED' && execution.output)
        result.summary = JSON.parse(execution.output) as Summary;
      if (execution.error) result.error = execution.error;
      if (execution.cause) result.cause = execution.cause;
      log(
        `${executionName}: ${status}${execution.error ? ` (${execution.error}: ${execution.cause ?? ''})` : ''}`,
      );
      return result;
    }
    log(`${executionName}: ${status}`);
    await sleep(opts.pollSeconds * 1000);
  }
}

/** The stack's batch state machine, found by its name `<stack>-batch` in the client's account and region. */
export async function findStateMachine(sfn: SFNClient, stack: string): Promise<string> {
  const name = batchStateMachineName(stack);
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new ListStateMachinesCommand({ nextToken }));
    const found = page.stateMachines?.find((sm) => sm.name === name);
    if (found?.stateMachineArn) return found.stateMachineArn;
    nextToken = page.nextToken;
  } while (nextToken);
  throw new Error(
    `no state machine ${name} in this account and region: deploy the stack (npx cdk deploy), check --region and --stack, or pass --state-machine-arn (stack output BatchStateMachineArn)`,
  );
}

/** `batch-20261202-021120-3f9a`: sortable, unique enough, a valid execution and job name. */
export function defaultExecutionName(date: Date): string {
  const stamp = date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '')
    .replace('T', '-');
  return `batch-${stamp}-${randomBytes(2).toString('hex')}`;
}

/** arn:aws:states:REGION:ACCOUNT:execution:... -> its page in the Step Functions console. */
export function consoleUrlOf(executionArn: string): string {
  const region = executionArn.split(':')[3] ?? 'us-east-1';
  return `https://${region}.console.aws.amazon.com/states/home?region=${region}#/v2/executions/details/${executionArn}`;
}

function dropUndefined(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined));
}
