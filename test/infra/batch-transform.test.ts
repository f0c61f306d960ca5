import type { App, CfnElement } from 'aws-cdk-lib';
import cdkNag from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { ACCEPT, FORMAT_SETTINGS } from '../../lambda/batch-transform/input.ts';
import { batchStateMachineName, DEFAULT_STACK } from '../../lib/pipeline/batch-aws.ts';
import { resource, type Synth, synth, tinyDataset } from './synth.ts';

/**
 * The batch transform state machine (lib/batch-transform.ts), default and strict: the transform
 * request, the Distributed Map that collects its answers, and every role's statements by their
 * resources. Each assertion was checked against a template broken the way it guards against
 * (docs/batch.md, "Tests").
 */

// biome-ignore lint/suspicious/noExplicitAny: templates are untyped JSON; tests index into them freely.
type Json = any;
type Statement = { Action: string | string[]; Resource: Json; Condition?: Json };

/** A CloudFormation value as text: `<Id>` for a Ref, `<Id.Attr>` for a GetAtt, joins joined, pseudo parameters by name. */
function render(value: Json): string {
  if (typeof value === 'string') return value;
  if (value?.Ref) return `<${value.Ref}>`;
  if (value?.['Fn::GetAtt']) return `<${value['Fn::GetAtt'].join('.')}>`;
  if (value?.['Fn::Join']) return value['Fn::Join'][1].map(render).join(value['Fn::Join'][0]);
  return 'TOKEN';
}

const id = (s: Synth, type: string, prefix: string) => resource(s.template, type, prefix)[0];
const bucketId = (s: Synth) => s.stack.getLogicalId(s.stack.data.bucket.node.defaultChild as CfnElement);

/** The batch state machine's ASL. */
function states(s: Synth): Record<string, Json> {
  const [, sm] = resource(s.template, 'AWS::StepFunctions::StateMachine', 'BatchStateMachine');
  return JSON.parse(render(sm.Properties.DefinitionString));
}

/** Every statement of the policies attached to the role whose logical id starts with `rolePrefix`. */
function statements(s: Synth, rolePrefix: string): Statement[] {
  const roleId = id(s, 'AWS::IAM::Role', rolePrefix);
  return Object.values(s.template.findResources('AWS::IAM::Policy'))
    .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

/** action -> the resources granted it (rendered, sorted). */
function grants(sts: Statement[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const st of sts) {
    for (const action of [st.Action].flat()) {
      out[action] = [...(out[action] ?? []), ...[st.Resource].flat().map(render)].sort();
    }
  }
  return out;
}

const ARN = (service: string, rest: string) =>
  `arn:<AWS::Partition>:${service}:<AWS::Region>:<AWS::AccountId>:${rest}`;

function nagViolations(app: App, packs: cdkNag.NagPack[]): string[] {
  return packs.flatMap((pack) =>
    pack
      .validateScope(app)
      .violations.filter((v) => v.violatingResources.some((r) => r.constructPath?.includes('/Batch/')))
      .map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`),
  );
}

describe('batch transform (default configuration)', () => {
  let s: Synth;
  let bucket: string;
  let stateMachineId: string;
  beforeAll(async () => {
    s = await synth({ datasetPath: await tinyDataset() });
    bucket = `<${bucketId(s)}.Arn>`;
    stateMachineId = id(s, 'AWS::StepFunctions::StateMachine', 'BatchStateMachine');
  });

  it('plans, runs createTransformJob.sync one image per request with JSON-lines answers, collects, summarizes', () => {
    const st = states(s);
    expect(render(st.StartAt)).toBe('Plan');
    expect(st.States.Plan.Next).toBe('Transform');
    expect(st.States.Plan.Parameters).toEqual({ 'input.$': '$', 'executionName.$': '$$.Execution.Name' });
    const t = st.States.Transform;
    expect(t.Resource).toBe('arn:<AWS::Partition>:states:::sagemaker:createTransformJob.sync');
    expect(t.Parameters).toEqual({
      'TransformJobName.$': '$.plan.jobName',
      'ModelName.$': '$.plan.modelName',
      'BatchStrategy.$': '$.plan.batchStrategy',
      'MaxPayloadInMB.$': '$.plan.maxPayloadInMB',
      'MaxConcurrentTransforms.$': '$.plan.maxConcurrentTransforms',
      Environment: { SAGEMAKER_BATCH: 'true' },
      TransformInput: {
        DataSource: { S3DataSource: { S3DataType: 'S3Prefix', 'S3Uri.$': '$.plan.inputUri' } },
        'ContentType.$': '$.plan.contentType',
        'SplitType.$': '$.plan.splitType',
        CompressionType: 'None',
      },
      TransformOutput: {
        'S3OutputPath.$': '$.plan.outputUri',
        Accept: 'application/jsonlines',
        AssembleWith: 'Line',
      },
      TransformResources: {
        'InstanceType.$': '$.plan.instanceType',
        'InstanceCount.$': '$.plan.instanceCount',
      },
    });
    // What Plan puts in those paths for images: one whole object per request, as an image.
    expect(FORMAT_SETTINGS.images).toEqual({ contentType: 'application/x-image', splitType: 'None' });
    expect(FORMAT_SETTINGS.jsonlines).toEqual({ contentType: 'application/jsonlines', splitType: 'Line' });
    expect(ACCEPT).toBe('application/jsonlines');
    expect(t.Catch).toEqual([
      expect.objectContaining({ ErrorEquals: ['States.ALL'], Next: 'TransformFailed' }),
    ]);
    expect(t.Next).toBe('Collect');
    expect(st.States.Collect.Next).toBe('Summarize');
    expect(st.States.Summarize.End).toBe(true);
    expect(st.States.Summarize.Parameters).toMatchObject({
      'transformJobName.$': '$.transform.name',
      'modelName.$': '$.plan.modelName',
      'summaryKey.$': '$.plan.summaryKey',
    });
  });

  it('a bad input or a missing model ends the run with its own error and the message as the cause', () => {
    const st = states(s).States;
    const catches = st.Plan.Catch.map((c: Json) => [c.ErrorEquals, c.Next]);
    expect(catches).toEqual([
      [['InvalidInput'], 'InvalidInputMessage'],
      [['NoDeployedModel'], 'NoDeployedModelMessage'],
    ]);
    for (const name of ['InvalidInput', 'NoDeployedModel']) {
      expect(st[`${name}Message`].Next).toBe(name);
      expect(st[`${name}Message`].Parameters).toEqual({ 'error.$': 'States.StringToJson($.error.Cause)' });
      expect(st[name]).toMatchObject({ Type: 'Fail', Error: name, CausePath: '$.error.errorMessage' });
    }
  });

  it('collects with a Distributed Map over the raw answers: S3 listing, batches of 1000, bounded concurrency', () => {
    const map = states(s).States.Collect;
    expect(map.Type).toBe('Map');
    expect(map.ItemProcessor.ProcessorConfig).toEqual({ Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' });
    expect(map.ItemReader.Resource).toBe('arn:<AWS::Partition>:states:::s3:listObjectsV2');
    expect(map.ItemReader.Parameters).toEqual({ Bucket: `<${bucketId(s)}>`, 'Prefix.$': '$.plan.rawPrefix' });
    expect(map.ItemSelector).toEqual({ 'key.$': '$$.Map.Item.Value.Key', 'index.$': '$$.Map.Item.Index' });
    expect(map.ItemBatcher).toEqual({
      MaxItemsPerBatch: 1000,
      MaxInputBytesPerBatch: 204800,
      BatchInput: {
        'rawPrefix.$': '$.plan.rawPrefix',
        'resultsPrefix.$': '$.plan.resultsPrefix',
        'countsPrefix.$': '$.plan.countsPrefix',
      },
    });
    expect(map.MaxConcurrencyPath).toBe('$.plan.collectConcurrency');
    expect(map.ResultPath).toBeNull();
    const child = map.ItemProcessor.States[map.ItemProcessor.StartAt];
    expect(child.Resource).toBe('arn:<AWS::Partition>:states:::lambda:invoke');
    expect(child.Parameters.FunctionName).toBe(`<${id(s, 'AWS::Lambda::Function', 'BatchCollect')}.Arn>`);
    expect(child.ResultSelector).toEqual({ 'images.$': '$.Payload.images' });
  });

  it('Plan gets the documented defaults, the endpoint and its variant', () => {
    const [, plan] = resource(s.template, 'AWS::Lambda::Function', 'BatchPlan');
    const env = plan.Properties.Environment.Variables;
    expect(env).toMatchObject({
      NAME_PREFIX: 'braintumordetection',
      ENDPOINT_NAME: 'braintumordetection-endpoint',
      VARIANT_NAME: 'AllTraffic',
      DEFAULT_INSTANCE_TYPE: 'ml.c5.xlarge',
      DEFAULT_INSTANCE_COUNT: '1',
      DEFAULT_MAX_PAYLOAD_MB: '6',
      DEFAULT_MAX_CONCURRENT_TRANSFORMS: '0',
      DEFAULT_COLLECT_CONCURRENCY: '4',
      ENCRYPT_VOLUME: 'false',
    });
    expect(render(env.BUCKET)).toBe(`<${bucketId(s)}>`);
    expect(plan.Properties.VpcConfig).toBeUndefined();
  });

  it('the state machine runs, describes and stops only our jobs, waits on the managed rule, passes no role', () => {
    const g = grants(statements(s, 'BatchStateMachineRole'));
    const jobs = [ARN('sagemaker', 'transform-job/braintumordetection-batch-*')];
    // AddTags: .sync tags the job it creates (MANAGED_BY_AWS), which CreateTransformJob authorizes as AddTags.
    for (const action of [
      'CreateTransformJob',
      'DescribeTransformJob',
      'StopTransformJob',
      'ListTags',
      'AddTags',
    ]) {
      expect(g[`sagemaker:${action}`], action).toEqual(jobs);
    }
    const rule = [ARN('events', 'rule/StepFunctionsGetEventsForSageMakerTransformJobsRule')];
    for (const action of ['events:PutRule', 'events:PutTargets', 'events:DescribeRule'])
      expect(g[action]).toEqual(rule);
    expect(Object.keys(g).filter((a) => a.startsWith('iam:'))).toEqual([]);
    expect(
      Object.keys(g)
        .filter((a) => a.startsWith('sagemaker:'))
        .sort(),
    ).toEqual([
      'sagemaker:AddTags',
      'sagemaker:CreateTransformJob',
      'sagemaker:DescribeTransformJob',
      'sagemaker:ListTags',
      'sagemaker:StopTransformJob',
    ]);
    // The item reader lists the bucket; the state machine reads and writes no object itself.
    expect(g['s3:ListBucket']).toEqual([bucket]);
    expect(Object.keys(g).filter((a) => a.startsWith('s3:'))).toEqual(['s3:ListBucket']);
    const fns = ['BatchCollect', 'BatchPlan', 'BatchSummarize'].map((p) => id(s, 'AWS::Lambda::Function', p));
    expect(g['lambda:InvokeFunction']).toEqual(fns.flatMap((f) => [`<${f}.Arn>`, `<${f}.Arn>:*`]).sort());
    // The Distributed Map starts its children as executions of this state machine.
    expect(grants(statements(s, 'BatchStateMachineRole'))['states:StartExecution']).toEqual([
      `<${stateMachineId}>`,
    ]);
  });

  it('the job runs with the model role: reads the bucket, writes only batch-output/*/raw/, logs to TransformJobs', () => {
    const g = grants(statements(s, 'EndpointModelRole'));
    expect(g['s3:PutObject']).toEqual([`${bucket}/batch-output/*/raw/*`]);
    expect(g['s3:GetObject']).toEqual([`${bucket}/*`, `${bucket}/models/*`]);
    expect(g['s3:ListBucket']).toEqual([bucket]);
    expect(g['logs:PutLogEvents']).toContain(ARN('logs', 'log-group:/aws/sagemaker/TransformJobs*'));
    expect(Object.keys(g).filter((a) => a.startsWith('kms:'))).toEqual([]);
  });

  it('the collector reads only raw answers and writes only parts and counts; Summarize only counts and summary.json', () => {
    const c = grants(statements(s, 'BatchCollectRole'));
    expect(c['s3:GetObject']).toEqual([`${bucket}/batch-output/*/raw/*`]);
    expect(c['s3:PutObject']).toEqual([
      `${bucket}/batch-output/*/counts/*`,
      `${bucket}/batch-output/*/results/*`,
    ]);
    expect(c['s3:AbortMultipartUpload']).toEqual([`${bucket}/batch-output/*/results/*`]);
    expect(
      Object.keys(c)
        .filter((a) => !a.startsWith('logs:'))
        .sort(),
    ).toEqual(['s3:AbortMultipartUpload', 's3:GetObject', 's3:PutObject']);
    const sumSts = statements(s, 'BatchSummarizeRole');
    const sum = grants(sumSts);
    expect(sum['s3:GetObject']).toEqual([`${bucket}/batch-output/*/counts/*`]);
    expect(sum['s3:PutObject']).toEqual([`${bucket}/batch-output/*/summary.json`]);
    const list = sumSts.find((st) => [st.Action].flat().includes('s3:ListBucket'));
    expect(render(list?.Resource)).toBe(bucket);
    expect(list?.Condition).toEqual({ StringLike: { 's3:prefix': ['batch-output/*'] } });
  });

  it('Plan may only describe the endpoint and its configs', () => {
    const g = grants(statements(s, 'BatchPlanRole'));
    expect(
      Object.keys(g)
        .filter((a) => !a.startsWith('logs:'))
        .sort(),
    ).toEqual(['sagemaker:DescribeEndpoint', 'sagemaker:DescribeEndpointConfig']);
    expect(g['sagemaker:DescribeEndpoint']).toEqual([
      ARN('sagemaker', 'endpoint/braintumordetection-endpoint'),
    ]);
    expect(g['sagemaker:DescribeEndpointConfig']).toEqual([
      ARN('sagemaker', 'endpoint-config/braintumordetection-v*'),
    ]);
  });

  it("output BatchStateMachineArn, the name the CLI looks for, retention on SageMaker's TransformJobs logs", () => {
    const outputs = s.template.toJSON().Outputs;
    expect(outputs.BatchStateMachineArn.Value).toEqual({ Ref: stateMachineId });
    const [, sm] = resource(s.template, 'AWS::StepFunctions::StateMachine', 'BatchStateMachine');
    expect(sm.Properties.StateMachineName).toBe(batchStateMachineName(DEFAULT_STACK));
    expect(sm.Properties.TracingConfiguration).toEqual({ Enabled: true });
    const retained = Object.values(s.template.findResources('Custom::LogRetention')).map(
      (r) => r.Properties.LogGroupName,
    );
    expect(retained).toContain('/aws/sagemaker/TransformJobs');
  });

  it('cdk-nag AwsSolutions: nothing unacknowledged in the batch construct', () => {
    expect(nagViolations(s.app, [new cdkNag.AwsSolutionsChecks()])).toEqual([]);
  });
});

describe('batch transform (strict)', () => {
  let s: Synth;
  let dataKey: string;
  beforeAll(async () => {
    s = await synth({ datasetPath: await tinyDataset(), strict: 'true' });
    dataKey = `<${id(s, 'AWS::KMS::Key', 'KeysDataKey')}.Arn>`;
  });

  it('output on the data key; the volume too, except where Plan says the instance has local storage', () => {
    const st = states(s).States;
    expect(st.Plan.Next).toBe('EncryptVolume?');
    expect(st['EncryptVolume?'].Choices).toEqual([
      { Variable: '$.plan.encryptVolume', BooleanEquals: true, Next: 'TransformOnEncryptedVolume' },
    ]);
    expect(st['EncryptVolume?'].Default).toBe('Transform');
    const encrypted = st.TransformOnEncryptedVolume.Parameters;
    const plain = st.Transform.Parameters;
    expect(encrypted.TransformOutput.KmsKeyId).toBe(dataKey);
    expect(plain.TransformOutput.KmsKeyId).toBe(dataKey);
    expect(encrypted.TransformResources.VolumeKmsKeyId).toBe(dataKey);
    expect(plain.TransformResources.VolumeKmsKeyId).toBeUndefined();
    // Otherwise the same request, both going on to Collect.
    const { TransformResources: _a, ...restEncrypted } = encrypted;
    const { TransformResources: _b, ...restPlain } = plain;
    expect(restEncrypted).toEqual(restPlain);
    expect([st.Transform.Next, st.TransformOnEncryptedVolume.Next]).toEqual(['Collect', 'Collect']);
    const [, plan] = resource(s.template, 'AWS::Lambda::Function', 'BatchPlan');
    expect(plan.Properties.Environment.Variables.ENCRYPT_VOLUME).toBe('true');
  });

  it('KMS: the state machine may grant the key to SageMaker, the model role encrypt with it, the Lambdas use it for S3', () => {
    const sm = statements(s, 'BatchStateMachineRole').filter((st) => render(st.Resource) === dataKey);
    expect(sm.flatMap((st) => [st.Action].flat()).sort()).toEqual(['kms:CreateGrant', 'kms:DescribeKey']);
    expect(sm.find((st) => [st.Action].flat().includes('kms:CreateGrant'))?.Condition).toEqual({
      Bool: { 'kms:GrantIsForAWSResource': 'true' },
    });
    const model = grants(statements(s, 'EndpointModelRole'));
    for (const action of ['kms:Encrypt', 'kms:GenerateDataKey', 'kms:Decrypt'])
      expect(model[action]).toEqual([dataKey]);
    for (const role of ['BatchCollectRole', 'BatchSummarizeRole']) {
      const g = grants(statements(s, role));
      expect(g['kms:Decrypt'], role).toEqual([dataKey]);
      expect(g['kms:GenerateDataKey'], role).toEqual([dataKey]);
    }
  });

  it('the Lambdas that read predictions run in the VPC, HTTPS out only; Plan (names only) outside', () => {
    const sgId = id(s, 'AWS::EC2::SecurityGroup', 'BatchLambdaSecurityGroup');
    for (const prefix of ['BatchCollect', 'BatchSummarize']) {
      const [, fn] = resource(s.template, 'AWS::Lambda::Function', prefix);
      expect(fn.Properties.VpcConfig.SubnetIds, prefix).toHaveLength(2);
      expect(fn.Properties.VpcConfig.SecurityGroupIds.map(render), prefix).toEqual([`<${sgId}.GroupId>`]);
    }
    const [, sg] = resource(s.template, 'AWS::EC2::SecurityGroup', 'BatchLambdaSecurityGroup');
    expect(sg.Properties.SecurityGroupEgress).toEqual([
      expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 443, ToPort: 443 }),
    ]);
    expect(sg.Properties.SecurityGroupIngress).toBeUndefined();
    const [, plan] = resource(s.template, 'AWS::Lambda::Function', 'BatchPlan');
    expect(plan.Properties.VpcConfig).toBeUndefined();
  });

  it('cdk-nag AwsSolutions and HIPAA Security: nothing unacknowledged in the batch construct', () => {
    expect(nagViolations(s.app, [new cdkNag.AwsSolutionsChecks(), new cdkNag.HIPAASecurityChecks()])).toEqual(
      [],
    );
  });
});
