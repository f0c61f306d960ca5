import { App, type CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import cdkNag from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../lib/app.ts';
import { BrainTumorStack } from '../../lib/brain-tumor-stack.ts';
import { parseConfig } from '../../lib/config.ts';
import { hasInstanceStorage } from '../../lib/instance-storage.ts';
import { cdkJsonContext, resource, type Synth, synth, tinyDataset } from './synth.ts';

/**
 * The strict (HIPAA-minded) configuration, `-c strict=true`: customer-managed keys, training and
 * endpoint in an isolated VPC, SigV4, no `*` CORS, no prediction or caller IP in logs, and
 * cdk-nag's HIPAA Security pack clean besides AwsSolutions. The default configuration is the
 * snapshot in stack.test.ts, which none of this may change.
 */

// biome-ignore lint/suspicious/noExplicitAny: templates are untyped JSON; tests index into them freely.
type Json = any;

/** A CloudFormation value as text: `<Id>` for a Ref, `<Id.Attr>` for a GetAtt, joins joined, other intrinsics `TOKEN`. */
function render(value: Json): string {
  if (typeof value === 'string') return value;
  if (value?.Ref) return `<${value.Ref}>`;
  if (value?.['Fn::GetAtt']) return `<${value['Fn::GetAtt'].join('.')}>`;
  if (value?.['Fn::Join']) return value['Fn::Join'][1].map(render).join(value['Fn::Join'][0]);
  return 'TOKEN';
}

const logicalId = (s: Synth, type: string, prefix: string) => resource(s.template, type, prefix)[0];
const bucketId = (s: Synth) => s.stack.getLogicalId(s.stack.data.bucket.node.defaultChild as CfnElement);

/** The Train state's CreateTrainingJob request. */
function trainingRequest(s: Synth): Json {
  const [, sm] = resource(s.template, 'AWS::StepFunctions::StateMachine', 'TrainingStateMachine');
  return JSON.parse(render(sm.Properties.DefinitionString)).States.Train.Parameters;
}

type Statement = { Action: string | string[]; Resource: Json; Condition?: Json };

/** Every statement of the policies attached to the role whose logical id starts with `rolePrefix`. */
function statements(s: Synth, rolePrefix: string): Statement[] {
  const roleId = logicalId(s, 'AWS::IAM::Role', rolePrefix);
  return Object.values(s.template.findResources('AWS::IAM::Policy'))
    .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

const actions = (sts: Statement[]) => sts.flatMap((st) => [st.Action].flat());

/** The actions granted on `resourceText` (a rendered resource), sorted. */
function actionsOn(sts: Statement[], resourceText: string): string[] {
  return sts
    .filter((st) => [st.Resource].flat().map(render).includes(resourceText))
    .flatMap((st) => [st.Action].flat())
    .sort();
}

function acknowledgements(root: IConstruct): { id: string; reason: string }[] {
  return root.node
    .findAll()
    .flatMap((c) => c.node.metadata)
    .filter((m) => m.type === 'aws:cdk:acknowledged-rules')
    .flatMap((m) => Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({ id, reason })));
}

/** AwsSolutions and HIPAA Security with no unacknowledged finding; every acknowledgement with a specific reason. */
function expectNagClean(app: App): void {
  for (const pack of [new cdkNag.AwsSolutionsChecks(), new cdkNag.HIPAASecurityChecks()]) {
    const report = pack.validateScope(app);
    expect(
      report.violations.map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`),
      pack.constructor.name,
    ).toEqual([]);
  }
  for (const { id, reason } of acknowledgements(app)) {
    expect(reason.length, id).toBeGreaterThanOrEqual(40);
    expect(reason, id).not.toMatch(/placeholder|todo|tbd/i);
  }
}

describe('strict: configuration', () => {
  it('forces SigV4 and no CORS by default; refuses an API key and `*`', () => {
    expect(parseConfig({ strict: 'true' })).toMatchObject({
      strict: true,
      apiAuth: 'iam',
      corsAllowOrigins: [],
    });
    expect(
      parseConfig({ strict: 'true', apiAuth: 'iam', corsAllowOrigins: 'https://app.example' }),
    ).toMatchObject({
      apiAuth: 'iam',
      corsAllowOrigins: ['https://app.example'],
    });
    expect(() => parseConfig({ strict: 'true', apiAuth: 'apiKey' })).toThrow(/apiAuth: strict requires IAM/);
    expect(() => parseConfig({ strict: true, corsAllowOrigins: '["https://a.example","*"]' })).toThrow(
      /corsAllowOrigins: strict refuses '\*'/,
    );
    // The default configuration is unchanged.
    expect(parseConfig({})).toMatchObject({ strict: false, apiAuth: 'apiKey', corsAllowOrigins: ['*'] });
  });

  it('knows which instance types have local storage (SageMaker refuses a volume key for them)', () => {
    const types = [
      'ml.g4dn.xlarge',
      'ml.p3dn.24xlarge',
      'ml.p4d.24xlarge',
      'ml.c5d.xlarge',
      'ml.g5.xlarge',
      'ml.trn1.2xlarge',
    ];
    expect(types.filter(hasInstanceStorage)).toEqual(types);
    const ebsOnly = ['ml.c5.xlarge', 'ml.m5.large', 'ml.p3.2xlarge', 'ml.inf1.xlarge', 'ml.t2.medium'];
    expect(ebsOnly.filter(hasInstanceStorage)).toEqual([]);
  });
});

describe('strict: `cdk synth -c strict=true`', () => {
  let s: Synth;
  let dataKey: string;
  let logsKey: string;
  beforeAll(async () => {
    s = await synth({ datasetPath: await tinyDataset(), strict: 'true' });
    dataKey = `<${logicalId(s, 'AWS::KMS::Key', 'KeysDataKey')}.Arn>`;
    logsKey = `<${logicalId(s, 'AWS::KMS::Key', 'KeysLogsKey')}.Arn>`;
  });

  it('customer-managed keys, rotated; only CloudWatch Logs (this account, this region) is let into the logs key', () => {
    const keys = s.template.findResources('AWS::KMS::Key');
    expect(Object.keys(keys)).toHaveLength(3); // data, logs, and the alarm topic's
    for (const [id, key] of Object.entries(keys)) expect(key.Properties.EnableKeyRotation, id).toBe(true);
    const policy = (prefix: string) =>
      resource(s.template, 'AWS::KMS::Key', prefix)[1].Properties.KeyPolicy.Statement as Json[];
    // The data key: the account (IAM delegation) only; roles get it by IAM grants on its ARN.
    expect(policy('KeysDataKey').map((st) => render(st.Principal.AWS))).toEqual([
      'arn:<AWS::Partition>:iam::<AWS::AccountId>:root',
    ]);
    const logsStatements = policy('KeysLogsKey').filter((st) => st.Principal.Service);
    expect(logsStatements).toHaveLength(1);
    expect(render(logsStatements[0].Principal.Service)).toBe('logs.<AWS::Region>.amazonaws.com');
    expect(render(logsStatements[0].Condition.ArnLike['kms:EncryptionContext:aws:logs:arn'])).toBe(
      'arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:*',
    );
  });

  it('data bucket: SSE-KMS with the data key and a bucket key', () => {
    const [, bucket] = resource(s.template, 'AWS::S3::Bucket', bucketId(s));
    const [rule, ...others] = bucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration;
    expect(others).toEqual([]);
    expect(rule.BucketKeyEnabled).toBe(true);
    expect(rule.ServerSideEncryptionByDefault.SSEAlgorithm).toBe('aws:kms');
    expect(render(rule.ServerSideEncryptionByDefault.KMSMasterKeyID)).toBe(dataKey);
    // S3 access logging accepts SSE-S3 targets only: that bucket stays AES256, and is versioned.
    const [, logs] = resource(s.template, 'AWS::S3::Bucket', 'DataBucketAccessLogs');
    expect(logs.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
  });

  it('training request: output encrypted with the data key, in the VPC; no volume key on g4dn (local NVMe)', () => {
    const p = trainingRequest(s);
    expect(p.OutputDataConfig).toEqual({
      S3OutputPath: `s3://<${bucketId(s)}>/models/`,
      KmsKeyId: dataKey,
    });
    expect(p.ResourceConfig.InstanceType).toBe('ml.g4dn.xlarge');
    expect(p.ResourceConfig).not.toHaveProperty('VolumeKmsKeyId');
    const subnets = Object.keys(s.template.findResources('AWS::EC2::Subnet')).map((id) => `<${id}>`);
    expect(subnets).toHaveLength(2);
    expect(p.VpcConfig).toEqual({
      Subnets: subnets,
      SecurityGroupIds: [
        `<${logicalId(s, 'AWS::EC2::SecurityGroup', 'NetworkSageMakerSecurityGroup')}.GroupId>`,
      ],
    });
    expect(p.EnableNetworkIsolation).toBe(true);
  });

  it('training roles: the job role may use the data key and make its network interfaces in this VPC only; the state machine may grant the key to SageMaker', () => {
    const job = statements(s, 'TrainingJobRole');
    expect(actionsOn(job, dataKey)).toEqual([
      'kms:CreateGrant',
      'kms:Decrypt',
      'kms:DescribeKey',
      'kms:Encrypt',
      'kms:GenerateDataKey',
    ]);
    const grant = job.find((st) => st.Action === 'kms:CreateGrant');
    expect(grant?.Condition).toEqual({ Bool: { 'kms:GrantIsForAWSResource': 'true' } });
    const eni = job.find((st) => [st.Action].flat().includes('ec2:CreateNetworkInterface'));
    expect(render(eni?.Condition.ArnEquals['ec2:Vpc'])).toBe(
      `arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:vpc/<${logicalId(s, 'AWS::EC2::VPC', 'NetworkVpc')}>`,
    );
    const caller = statements(s, 'TrainingStateMachineRole');
    expect(actionsOn(caller, dataKey)).toEqual(['kms:CreateGrant', 'kms:DescribeKey']);
  });

  it('endpoint: the Prepare Lambda gets the key and the VPC; the model role the key and the VPC; the deployment may grant the key', () => {
    const [, prepare] = resource(s.template, 'AWS::Lambda::Function', 'EndpointPrepare');
    const env = prepare.Properties.Environment.Variables;
    expect(render(env.KMS_KEY_ARN)).toBe(dataKey);
    expect(JSON.parse(render(env.VPC_CONFIG))).toEqual(trainingRequest(s).VpcConfig);
    // Encrypt and GenerateDataKey: batch transform output, written with the model role.
    expect(actionsOn(statements(s, 'EndpointModelRole'), dataKey)).toEqual([
      'kms:CreateGrant',
      'kms:Decrypt',
      'kms:DescribeKey',
      'kms:Encrypt',
      'kms:GenerateDataKey',
    ]);
    expect(actions(statements(s, 'EndpointModelRole'))).toEqual(
      expect.arrayContaining(['ec2:CreateNetworkInterface']),
    );
    expect(actionsOn(statements(s, 'EndpointStateMachineRole'), dataKey)).toEqual([
      'kms:CreateGrant',
      'kms:DescribeKey',
    ]);
  });

  it("logs: every log group is encrypted with the logs key, the state machines' and the endpoint's included", () => {
    const groups = s.template.findResources('AWS::Logs::LogGroup');
    for (const [id, group] of Object.entries(groups)) {
      expect(render(group.Properties.KmsKeyId), id).toBe(logsKey);
      expect(group.Properties.RetentionInDays, id).toBe(30);
    }
    for (const prefix of ['TrainingStateMachine', 'EndpointStateMachine']) {
      const [, sm] = resource(s.template, 'AWS::StepFunctions::StateMachine', prefix);
      const destination = render(
        sm.Properties.LoggingConfiguration.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn,
      );
      expect(
        Object.keys(groups).map((id) => `<${id}.Arn>`),
        prefix,
      ).toContain(destination);
    }
    // SageMaker's endpoint group is the stack's own (encrypted), not one SageMaker creates.
    const endpointGroup = Object.values(groups).filter(
      (g) => g.Properties.LogGroupName === '/aws/sagemaker/Endpoints/braintumordetection-endpoint',
    );
    expect(endpointGroup).toHaveLength(1);
    const retained = Object.values(s.template.findResources('Custom::LogRetention')).map(
      (r) => r.Properties.LogGroupName,
    );
    expect(retained).toEqual(['/aws/sagemaker/TrainingJobs', '/aws/sagemaker/TransformJobs']);
  });

  it('VPC: isolated subnets only, no internet or NAT gateway, flow logs, and the endpoints SageMaker and the API need', () => {
    s.template.resourceCountIs('AWS::EC2::VPC', 1);
    s.template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    s.template.resourceCountIs('AWS::EC2::NatGateway', 0);
    for (const subnet of Object.values(s.template.findResources('AWS::EC2::Subnet'))) {
      expect(subnet.Properties.MapPublicIpOnLaunch).toBe(false);
    }
    s.template.resourceCountIs('AWS::EC2::FlowLog', 1);
    s.template.resourceCountIs('Custom::VpcRestrictDefaultSG', 1);
    const endpoints = Object.values(s.template.findResources('AWS::EC2::VPCEndpoint')).map((e) => [
      render(e.Properties.ServiceName).replace('com.amazonaws.<AWS::Region>.', ''),
      e.Properties.VpcEndpointType,
      e.Properties.PrivateDnsEnabled ?? false,
    ]);
    expect(endpoints.sort()).toEqual([
      ['ecr.api', 'Interface', true],
      ['ecr.dkr', 'Interface', true],
      ['logs', 'Interface', true],
      ['monitoring', 'Interface', true],
      ['s3', 'Gateway', false],
      ['sagemaker.runtime', 'Interface', true],
      ['sts', 'Interface', true],
    ]);
    // What runs in the VPC starts only once the endpoints exist: the upload, the training run, the rollout.
    const endpointIds = Object.keys(s.template.findResources('AWS::EC2::VPCEndpoint'));
    for (const type of [
      'Custom::CDKBucketDeployment',
      'Custom::TrainingExecution',
      'Custom::ModelEndpoint',
    ]) {
      const [, custom] = resource(s.template, type);
      expect(custom.DependsOn, type).toEqual(expect.arrayContaining(endpointIds));
    }
    // The gateway endpoint is on the isolated subnets' route tables.
    const [, s3] = Object.entries(s.template.findResources('AWS::EC2::VPCEndpoint')).find(
      ([, e]) => e.Properties.VpcEndpointType === 'Gateway',
    ) as [string, Json];
    expect(s3.Properties.RouteTableIds).toHaveLength(2);
  });

  it('security groups: SageMaker and the predict Lambda have no ingress and HTTPS egress only', () => {
    const sg = (prefix: string) => resource(s.template, 'AWS::EC2::SecurityGroup', prefix)[1].Properties;
    expect(sg('NetworkSageMakerSecurityGroup').SecurityGroupEgress).toEqual([
      expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: 'tcp', FromPort: 443, ToPort: 443 }),
    ]);
    expect(sg('PredictSecurityGroup').SecurityGroupEgress).toEqual([
      expect.objectContaining({ CidrIp: '10.40.0.0/16', IpProtocol: 'tcp', FromPort: 443, ToPort: 443 }),
    ]);
    for (const prefix of ['NetworkSageMakerSecurityGroup', 'PredictSecurityGroup']) {
      expect(sg(prefix).SecurityGroupIngress, prefix).toBeUndefined();
      const id = logicalId(s, 'AWS::EC2::SecurityGroup', prefix);
      const ingress = Object.values(s.template.findResources('AWS::EC2::SecurityGroupIngress')).filter(
        (r) => render(r.Properties.GroupId) === `<${id}.GroupId>`,
      );
      expect(ingress, prefix).toEqual([]);
    }
  });

  it('API: SigV4 only, no CORS, no prediction and no caller IP in logs; the handler and the dataset upload run in the VPC', () => {
    s.template.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'POST',
      AuthorizationType: 'AWS_IAM',
      ApiKeyRequired: false,
    });
    s.template.resourceCountIs('AWS::ApiGateway::ApiKey', 0);
    const methods = Object.values(s.template.findResources('AWS::ApiGateway::Method')).map(
      (m) => m.Properties.HttpMethod,
    );
    expect(methods).toEqual(['POST']); // no OPTIONS preflight
    for (const response of Object.values(s.template.findResources('AWS::ApiGateway::GatewayResponse'))) {
      expect(response.Properties.ResponseParameters).toBeUndefined();
    }
    expect(JSON.stringify(s.template.toJSON())).not.toContain('Access-Control-Allow-Origin');
    const [, handler] = resource(s.template, 'AWS::Lambda::Function', 'ApiHandler');
    expect(handler.Properties.Environment.Variables).toMatchObject({
      CORS_ALLOW_ORIGIN: '',
      LOG_PREDICTIONS: 'false',
    });
    expect(handler.Properties.VpcConfig.SubnetIds).toHaveLength(2);
    const [, upload] = resource(s.template, 'AWS::Lambda::Function', 'CustomCDKBucketDeployment');
    expect(upload.Properties.VpcConfig.SubnetIds).toHaveLength(2);
    const [, stage] = resource(s.template, 'AWS::ApiGateway::Stage');
    const format = stage.Properties.AccessLogSetting.Format as string;
    expect(format).toContain('$context.requestId');
    expect(format).toContain('$context.identity.caller');
    expect(format).not.toContain('sourceIp');
    expect(stage.Properties.TracingEnabled).toBe(true);
  });

  it('cdk-nag: AwsSolutions and HIPAA Security report nothing unacknowledged; every acknowledgement has a specific reason', () => {
    expectNagClean(s.app);
    const hipaa = acknowledgements(s.app).filter((a) => a.id.includes('HIPAA.Security'));
    expect(hipaa.length).toBeGreaterThan(0);
  });
});

describe('strict: data capture, an EBS-only training instance, a GPU endpoint, explicit origins, dev removal', () => {
  let s: Synth;
  beforeAll(async () => {
    s = await synth({
      datasetPath: await tinyDataset(),
      strict: 'true',
      dataCapture: 'true',
      trainingInstanceType: 'ml.p3.2xlarge',
      endpointInstanceType: 'ml.g4dn.xlarge',
      corsAllowOrigins: 'https://app.example',
      removalPolicy: 'destroy',
      // No asset bundling: this synth is about the template.
      'aws:cdk:bundling-stacks': [],
    });
  });

  it('the training volume is encrypted with the data key on an instance type without local storage', () => {
    const dataKey = `<${logicalId(s, 'AWS::KMS::Key', 'KeysDataKey')}.Arn>`;
    expect(trainingRequest(s).ResourceConfig).toMatchObject({
      InstanceType: 'ml.p3.2xlarge',
      VolumeKmsKeyId: dataKey,
    });
    // Capture writes: the model role may encrypt with the key.
    expect(actionsOn(statements(s, 'EndpointModelRole'), dataKey)).toEqual([
      'kms:CreateGrant',
      'kms:Decrypt',
      'kms:DescribeKey',
      'kms:Encrypt',
      'kms:GenerateDataKey',
    ]);
  });

  it('CORS answers the listed origin only', () => {
    const [, options] = Object.entries(s.template.findResources('AWS::ApiGateway::Method')).find(
      ([, m]) => m.Properties.HttpMethod === 'OPTIONS',
    ) as [string, Json];
    expect(
      options.Properties.Integration.IntegrationResponses[0].ResponseParameters[
        'method.response.header.Access-Control-Allow-Origin'
      ],
    ).toBe("'https://app.example'");
    const [, handler] = resource(s.template, 'AWS::Lambda::Function', 'ApiHandler');
    expect(handler.Properties.Environment.Variables.CORS_ALLOW_ORIGIN).toBe('https://app.example');
  });

  it('removalPolicy=destroy deletes the keys and every log group with the stack', () => {
    for (const type of ['AWS::KMS::Key', 'AWS::Logs::LogGroup']) {
      for (const [id, r] of Object.entries(s.template.findResources(type)))
        expect(r.DeletionPolicy, id).toBe('Delete');
    }
  });

  it('stays cdk-nag clean (AwsSolutions + HIPAA)', () => {
    expectNagClean(s.app);
  });
});

describe('strict: the app', () => {
  it('without a dataset: the bucket on the data key, no VPC, nag clean', async () => {
    const app = new App({ context: await cdkJsonContext() });
    const config = { ...parseConfig({ strict: true }), datasetDir: '/nonexistent/dataset' };
    const stack = new BrainTumorStack(app, 'NoData', { config });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } },
        ],
      },
    });
    expectNagClean(app);
  });

  it('synth fails on a HIPAA-only finding with strict, and ignores it without (the pack runs only for strict)', async () => {
    const build = async (strict: boolean) => {
      const app = new App({
        context: {
          ...(await cdkJsonContext()),
          datasetPath: await tinyDataset(),
          strict: String(strict),
          'aws:cdk:bundling-stacks': [],
        },
      });
      const stack = await buildApp(app);
      // An alarm without an action: AwsSolutions has no rule for it, HIPAA Security does.
      new cloudwatch.Alarm(stack, 'Unwatched', {
        metric: new cloudwatch.Metric({ namespace: 'Test', metricName: 'Test' }),
        threshold: 1,
        evaluationPeriods: 1,
      });
      return app;
    };
    const strictApp = await build(true);
    let failure: unknown;
    try {
      strictApp.synth();
    } catch (err) {
      failure = err;
    }
    // The report names the rule and the resource.
    expect(String(failure)).toMatch(/ValidationFailed/);
    expect(String(failure)).toContain('HIPAA.Security-CloudWatchAlarmAction');
    expect(String(failure)).toContain('BrainTumorDetection/Unwatched');
    const plainApp = await build(false);
    expect(() => plainApp.synth()).not.toThrow();
  });
});
