import {
  DescribeExecutionCommand,
  ListStateMachinesCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { Command } from 'commander';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { register } from '../../bin/commands/batch.ts';
import { BatchInputSchema, planBatch } from '../../lambda/batch-transform/input.ts';
import {
  batchStateMachineName,
  consoleUrlOf,
  DEFAULT_STACK,
  defaultExecutionName,
  startAwsBatch,
} from '../../lib/pipeline/batch-aws.ts';

/** `brain-tumor batch --aws`: what it sends the state machine, how it finds it, how it waits. */

const sfn = mockClient(SFNClient);
const client = new SFNClient({ region: 'eu-west-1' });
const MACHINE = 'arn:aws:states:eu-west-1:111122223333:stateMachine:BrainTumorDetection-batch';
const noSleep = async () => {};
const now = () => new Date('2026-12-02T02:11:20.123Z');

beforeEach(() => {
  sfn.reset();
  sfn.on(ListStateMachinesCommand).resolves({
    stateMachines: [{ name: 'BrainTumorDetection-batch', stateMachineArn: MACHINE } as never],
  });
  sfn.on(StartExecutionCommand).callsFake((input: { name: string }) => ({
    executionArn: `${MACHINE.replace('stateMachine', 'execution')}:${input.name}`,
  }));
});

const sent = () => {
  const call = sfn.commandCalls(StartExecutionCommand)[0].args[0].input;
  return { ...call, input: JSON.parse(call.input as string) };
};

describe('batch --aws: start', () => {
  it('sends the options as the execution input the state machine validates, and returns at once', async () => {
    const result = await startAwsBatch(
      {
        prefix: 'scans/',
        instanceType: 'ml.c5.2xlarge',
        instanceCount: '2',
        maxPayloadMb: '8',
        concurrency: '4',
        format: 'images',
      },
      { sfn: client, now },
    );
    const request = sent();
    expect(request.stateMachineArn).toBe(MACHINE);
    expect(request.name).toMatch(/^batch-20261202-021120-[0-9a-f]{4}$/);
    expect(request.input).toEqual({
      prefix: 'scans/',
      format: 'images',
      instanceType: 'ml.c5.2xlarge',
      instanceCount: 2,
      maxPayloadInMB: 8,
      maxConcurrentTransforms: 4,
    });
    // The very JSON sent is what the Plan step accepts, and plans the run it asked for.
    const planned = planBatch(
      BatchInputSchema.parse(request.input),
      {
        instanceType: 'ml.c5.xlarge',
        instanceCount: 1,
        maxPayloadInMB: 6,
        maxConcurrentTransforms: 0,
        collectConcurrency: 4,
      },
      { bucket: 'b', namePrefix: 'braintumordetection', executionName: request.name as string },
    );
    expect(planned).toMatchObject({
      instanceType: 'ml.c5.2xlarge',
      instanceCount: 2,
      maxConcurrentTransforms: 4,
    });
    expect(result).toMatchObject({
      status: 'RUNNING',
      executionName: request.name,
      stateMachineArn: MACHINE,
    });
    expect(result.consoleUrl).toContain('eu-west-1.console.aws.amazon.com/states/');
    expect(sfn.commandCalls(DescribeExecutionCommand)).toHaveLength(0);
  });

  it('finds <stack>-batch across listing pages; an explicit ARN skips the lookup', async () => {
    sfn
      .on(ListStateMachinesCommand)
      .resolvesOnce({
        stateMachines: [{ name: 'Other-batch', stateMachineArn: 'arn:x' } as never],
        nextToken: 'p2',
      })
      .resolvesOnce({ stateMachines: [{ name: 'Dev-batch', stateMachineArn: `${MACHINE}-dev` } as never] });
    await startAwsBatch({ prefix: 'a', stack: 'Dev' }, { sfn: client, now });
    expect(sent().stateMachineArn).toBe(`${MACHINE}-dev`);
    expect(sfn.commandCalls(ListStateMachinesCommand)[1].args[0].input.nextToken).toBe('p2');

    sfn.resetHistory();
    await startAwsBatch(
      { prefix: 'a', stateMachineArn: 'arn:aws:states:us-east-1:1:stateMachine:x' },
      { sfn: client },
    );
    expect(sfn.commandCalls(ListStateMachinesCommand)).toHaveLength(0);
    expect(batchStateMachineName(DEFAULT_STACK)).toBe('BrainTumorDetection-batch');
  });

  it('a stack without the state machine says how to fix it', async () => {
    sfn.on(ListStateMachinesCommand).resolves({ stateMachines: [] });
    await expect(startAwsBatch({ prefix: 'a', stack: 'Nope' }, { sfn: client })).rejects.toThrow(
      /no state machine Nope-batch .*--state-machine-arn/,
    );
  });

  it('refuses bad options before any AWS call, naming each', async () => {
    const bad = [
      [{ prefix: 'a', instanceCount: '0' }, /instanceCount/],
      [{ prefix: 'a', format: 'png' }, /format/],
      [{ prefix: 'a', batchStrategy: 'MultiRecord' }, /batchStrategy: images go one per request/],
      [{ prefix: 'a', maxPayloadMb: 'six' }, /maxPayloadMb: expected a number/],
      [{ prefix: 'a', instanceType: 'c5.xlarge' }, /instanceType/],
      [{ prefix: 'batch-output/x/' }, /prefix must not be under batch-output/],
      [{ prefix: 'a', executionName: 'has space' }, /executionName/],
      [{ prefix: 'a', colour: 'blue' }, /colour/],
      [{}, /prefix/],
    ] as const;
    for (const [options, message] of bad) {
      await expect(startAwsBatch(options as never, { sfn: client }), JSON.stringify(options)).rejects.toThrow(
        message,
      );
    }
    expect(sfn.calls()).toHaveLength(0);
  });

  it('jsonlines may batch records (MultiRecord)', async () => {
    await startAwsBatch(
      {
        prefix: 's3://bucket/packed/',
        format: 'jsonlines',
        batchStrategy: 'MultiRecord',
        executionName: 'packed_1',
      },
      { sfn: client },
    );
    expect(sent()).toMatchObject({
      name: 'packed_1',
      input: { prefix: 's3://bucket/packed/', format: 'jsonlines', batchStrategy: 'MultiRecord' },
    });
  });
});

describe('batch --aws: wait', () => {
  it('polls until the run ends and returns its summary', async () => {
    const summary = { images: 3, labels: { glioma: 3 }, errors: {} };
    sfn
      .on(DescribeExecutionCommand)
      .resolvesOnce({ status: 'RUNNING' } as never)
      .resolvesOnce({ status: 'RUNNING' } as never)
      .resolvesOnce({ status: 'SUCCEEDED', output: JSON.stringify(summary) } as never);
    const slept: number[] = [];
    const lines: string[] = [];
    const result = await startAwsBatch(
      { prefix: 'a', wait: true, pollSeconds: 5 },
      { sfn: client, sleep: async (ms) => void slept.push(ms), log: (l) => lines.push(l) },
    );
    expect(result).toMatchObject({ status: 'SUCCEEDED', summary });
    expect(slept).toEqual([5000, 5000]);
    expect(lines.at(-1)).toMatch(/SUCCEEDED$/);
  });

  it("a failed run is a result with the state machine's error and cause", async () => {
    sfn.on(DescribeExecutionCommand).resolves({
      status: 'FAILED',
      error: 'NoDeployedModel',
      cause: 'no deployed model: endpoint x does not exist; approve a model package first',
    } as never);
    const result = await startAwsBatch({ prefix: 'a', wait: true }, { sfn: client, sleep: noSleep });
    expect(result).toMatchObject({ status: 'FAILED', error: 'NoDeployedModel' });
    expect(result.cause).toMatch(/approve a model package/);
    expect(result.summary).toBeUndefined();
  });
});

describe('batch --aws: names', () => {
  it('execution names are valid execution and job names; console URLs point at the region', () => {
    expect(defaultExecutionName(now())).toMatch(/^batch-20261202-021120-[0-9a-f]{4}$/);
    expect(consoleUrlOf('arn:aws:states:ap-south-1:1:execution:sm:run')).toBe(
      'https://ap-south-1.console.aws.amazon.com/states/home?region=ap-south-1#/v2/executions/details/arn:aws:states:ap-south-1:1:execution:sm:run',
    );
  });
});

describe('brain-tumor batch --aws (the command, in-process)', () => {
  // runOnAws prints progress lines on stderr; commander prints usage errors there too.
  beforeAll(() => {
    vi.spyOn(console, 'error').mockImplementation(() => {});
  });
  afterAll(() => vi.restoreAllMocks());

  /** Parses `brain-tumor batch <args>` as bin/cli.ts does; its SFNClient is the mocked one. */
  async function batch(args: string[]): Promise<void> {
    const program = new Command('brain-tumor')
      .exitOverride()
      .configureOutput({ writeErr: () => {}, writeOut: () => {} });
    register(program);
    await program.parseAsync(['batch', ...args, '--region', 'eu-west-1'], { from: 'user' });
  }

  it("passes the local flags' spelling through as the API's: MULTI_RECORD -> MultiRecord", async () => {
    await batch([
      '--aws',
      '--prefix',
      'packed/',
      '--format',
      'jsonlines',
      '--batch-strategy',
      'MULTI_RECORD',
      '--max-payload-mb',
      '8',
      '--concurrency',
      '4',
      '--instance-count',
      '2',
      '--name',
      'packed_1',
    ]);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(1);
    expect(sent()).toMatchObject({ stateMachineArn: MACHINE, name: 'packed_1' });
    expect(sent().input).toEqual({
      prefix: 'packed/',
      format: 'jsonlines',
      batchStrategy: 'MultiRecord',
      maxPayloadInMB: 8,
      maxConcurrentTransforms: 4,
      instanceCount: 2,
    });

    sfn.resetHistory();
    // The folder argument is the prefix; SINGLE_RECORD is SingleRecord.
    await batch(['scans/', '--aws', '--batch-strategy', 'SINGLE_RECORD']);
    expect(sent().input).toEqual({ prefix: 'scans/', batchStrategy: 'SingleRecord' });
  });

  it('refuses local-only flags, other strategies and MultiRecord images before any AWS call', async () => {
    const refused = [
      [['--aws', '--prefix', 'a/', '--model', 'model/'], /--model is for local runs/],
      [['--aws', '--prefix', 'a/', '--out', 'r.jsonl'], /--out is for local runs/],
      [['--aws', '--prefix', 'a/', '--url', 'http://127.0.0.1:8080'], /--url is for local runs/],
      [['--aws', '--prefix', 'a/', '--batch-strategy', 'MultiRecord'], /Allowed choices/],
      [['--aws', '--prefix', 'a/', '--batch-strategy', 'MULTI_RECORD'], /images go one per request/],
      [['--aws'], /--aws needs --prefix/],
    ] as const;
    for (const [args, message] of refused) {
      await expect(batch([...args]), args.join(' ')).rejects.toThrow(message);
    }
    expect(sfn.calls()).toHaveLength(0);
  });
});
