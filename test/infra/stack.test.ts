import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { CfnElement } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import cdkNag from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { joinTokens, resource, type Synth, stableTemplate, synth, tinyDataset } from './synth.ts';

// One synth for the whole file: CDK synth with esbuild bundling is the slow part.
let s: Synth;
beforeAll(async () => {
  s = await synth({ datasetPath: await tinyDataset(), alarmEmail: 'ops@example.com' });
});

const resources = (type: string) => s.template.findResources(type);
const only = (type: string) => resource(s.template, type);

describe('BrainTumorDetection stack', () => {
  it('matches the snapshot (asset hashes normalised)', () => {
    expect(stableTemplate(s.template)).toMatchSnapshot();
  });

  it('data bucket: encrypted, private, versioned, TLS-only, retained, access-logged', () => {
    const id = s.stack.getLogicalId(s.stack.data.bucket.node.defaultChild as CfnElement);
    const bucket = s.template.toJSON().Resources[id];
    expect(bucket).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    s.template.hasResource('AWS::S3::Bucket', {
      Properties: {
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        VersioningConfiguration: { Status: 'Enabled' },
        LoggingConfiguration: {
          DestinationBucketName: {
            Ref: s.stack.getLogicalId(s.stack.data.accessLogs.node.defaultChild as CfnElement),
          },
          LogFilePrefix: 'data-bucket/',
        },
        LifecycleConfiguration: {
          Rules: Match.arrayWith([Match.objectLike({ NoncurrentVersionExpiration: { NoncurrentDays: 90 } })]),
        },
      },
    });
    s.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: id },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('dataset: uploaded under its content hash, README left out, kept on delete', () => {
    const [, upload] = only('Custom::CDKBucketDeployment');
    expect(upload.Properties.DestinationBucketKeyPrefix).toMatch(/^datasets\/[0-9a-f]{16}\/$/);
    expect(upload.Properties).toMatchObject({ Prune: false, RetainOnDelete: true });
    // The staged asset (what the deploy zips and uploads) holds the images only.
    const staged = readdirSync(s.app.outdir)
      .map((d) => path.join(s.app.outdir, d))
      .find((d) => existsSync(path.join(d, 'Training')));
    const files = readdirSync(staged ?? 'missing-staged-dataset', {
      recursive: true,
      withFileTypes: true,
    }).filter((e) => e.isFile());
    expect(files.map((e) => e.name).sort()).toEqual(['a.jpg', 'a.jpg', 'a.jpg', 'a.jpg']);
  });

  it('predict Lambda: Node 22, ENDPOINT_NAME set, may invoke only this endpoint', () => {
    const [, fn] = resource(s.template, 'AWS::Lambda::Function', 'ApiHandler');
    expect(fn.Properties).toMatchObject({ Runtime: 'nodejs22.x', Handler: 'index.handler' });
    // The deployment state machine creates the endpoint under this fixed name (test/infra/mlops.test.ts).
    expect(fn.Properties.Environment.Variables.ENDPOINT_NAME).toBe('braintumordetection-endpoint');
    const roleId = fn.Properties.Role['Fn::GetAtt'][0];
    const policies = Object.values(resources('AWS::IAM::Policy')).filter((p) =>
      (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId),
    );
    const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement);
    const sagemakerStatements = statements.filter((st: { Action: string | string[] }) =>
      [st.Action].flat().some((a) => a.startsWith('sagemaker:')),
    );
    expect(
      sagemakerStatements.map((st: { Action: string; Resource: unknown }) => [
        st.Action,
        joinTokens(st.Resource),
      ]),
    ).toEqual([
      ['sagemaker:InvokeEndpoint', 'arn:TOKEN:sagemaker:TOKEN:TOKEN:endpoint/braintumordetection-endpoint'],
    ]);
    // Everything else is writing its own log group.
    for (const st of statements.filter((x: unknown) => !sagemakerStatements.includes(x))) {
      expect([st.Action].flat().every((a: string) => a.startsWith('logs:'))).toBe(true);
      expect(JSON.stringify(st.Resource)).toContain('ApiHandlerLogs');
    }
  });

  it('API: POST /predict requires an API key; usage plan 10/s burst 20; validated, logged, binary, 29 s', () => {
    s.template.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'POST',
      ApiKeyRequired: true,
      RequestValidatorId: Match.anyValue(),
      RequestParameters: { 'method.request.header.Content-Type': true },
      Integration: Match.objectLike({ Type: 'AWS_PROXY', TimeoutInMillis: 29000 }),
    });
    s.template.hasResourceProperties('AWS::ApiGateway::RequestValidator', {
      ValidateRequestBody: true,
      ValidateRequestParameters: true,
    });
    s.template.hasResourceProperties('AWS::ApiGateway::UsagePlan', {
      Throttle: { RateLimit: 10, BurstLimit: 20 },
      Quota: { Limit: 10000, Period: 'DAY' },
    });
    only('AWS::ApiGateway::UsagePlanKey');
    s.template.hasResourceProperties('AWS::ApiGateway::RestApi', {
      BinaryMediaTypes: ['image/jpeg', 'image/png'],
    });
    s.template.hasResourceProperties('AWS::ApiGateway::Stage', {
      AccessLogSetting: Match.objectLike({ DestinationArn: Match.anyValue() }),
      MethodSettings: [Match.objectLike({ ThrottlingRateLimit: 10, ThrottlingBurstLimit: 20 })],
    });
    // Preflight answers CORS without auth, everything else needs the key.
    s.template.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'OPTIONS',
      Integration: Match.objectLike({
        IntegrationResponses: [
          Match.objectLike({
            ResponseParameters: Match.objectLike({
              'method.response.header.Access-Control-Allow-Origin': "'*'",
            }),
          }),
        ],
      }),
    });
  });

  it('alarms: endpoint, API, predict 5xx, Lambda errors and throttles, failed/stopped jobs -> encrypted SNS + e-mail', () => {
    // The Alarms construct's own (the deployment may add rollback alarms of its own).
    const alarms = Object.entries(resources('AWS::CloudWatch::Alarm'))
      .filter(([id]) => id.startsWith('Alarms'))
      .map(([, a]) => a.Properties);
    expect(alarms.map((a) => a.MetricName).sort()).toEqual([
      '5XXError',
      'CPUUtilization',
      'Errors',
      'Invocation5XXErrors',
      'Latency',
      'MemoryUtilization',
      'ModelLatency',
      'Responses',
      'Throttles',
    ]);
    const topicId = only('AWS::SNS::Topic')[0];
    for (const alarm of alarms) expect(alarm.AlarmActions).toEqual([{ Ref: topicId }]);
    s.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    s.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
    s.template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.sagemaker'],
        'detail-type': ['SageMaker Training Job State Change'],
        detail: {
          TrainingJobName: [{ prefix: 'braintumordetection' }],
          TrainingJobStatus: ['Failed', 'Stopped'],
        },
      },
      Targets: [Match.objectLike({ Arn: { Ref: topicId } })],
    });
  });

  it('alarms: each watches the right metric, dimensions and default threshold', () => {
    const [handlerId, fn] = resource(s.template, 'AWS::Lambda::Function', 'ApiHandler');
    // The endpoint the API calls is the endpoint the alarms watch.
    const endpoint = { Name: 'EndpointName', Value: fn.Properties.Environment.Variables.ENDPOINT_NAME };
    const variant = { Name: 'VariantName', Value: 'AllTraffic' };
    const [stageId] = only('AWS::ApiGateway::Stage');
    const api = [
      { Name: 'ApiName', Value: only('AWS::ApiGateway::RestApi')[1].Properties.Name },
      { Name: 'Stage', Value: { Ref: stageId } },
    ];
    const alarm = (id: string) => resource(s.template, 'AWS::CloudWatch::Alarm', `Alarms${id}`)[1].Properties;
    const expected: Record<string, Record<string, unknown>> = {
      Endpoint5xx: {
        Namespace: 'AWS/SageMaker',
        MetricName: 'Invocation5XXErrors',
        Dimensions: [endpoint, variant],
        Statistic: 'Sum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      },
      ModelLatency: {
        Namespace: 'AWS/SageMaker',
        MetricName: 'ModelLatency',
        Dimensions: [endpoint, variant],
        ExtendedStatistic: 'p90',
        Threshold: 2_000_000, // 2000 ms in microseconds
        EvaluationPeriods: 3,
      },
      // ml.c5.xlarge has 4 vCPUs; CPUUtilization is their sum (0-400%).
      EndpointCpu: {
        Namespace: '/aws/sagemaker/Endpoints',
        MetricName: 'CPUUtilization',
        Dimensions: [endpoint, variant],
        Statistic: 'Average',
        Threshold: 360,
        EvaluationPeriods: 3,
      },
      EndpointMemory: {
        Namespace: '/aws/sagemaker/Endpoints',
        MetricName: 'MemoryUtilization',
        Dimensions: [endpoint, variant],
        Statistic: 'Average',
        Threshold: 90,
        EvaluationPeriods: 3,
      },
      Api5xx: {
        Namespace: 'AWS/ApiGateway',
        MetricName: '5XXError',
        Dimensions: api,
        Statistic: 'Sum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      },
      ApiLatency: {
        Namespace: 'AWS/ApiGateway',
        MetricName: 'Latency',
        Dimensions: api,
        ExtendedStatistic: 'p90',
        Threshold: 5000,
        EvaluationPeriods: 3,
      },
      Predict5xxResponses: {
        Namespace: 'BrainTumor/Predict',
        MetricName: 'Responses',
        Dimensions: [
          { Name: 'FunctionName', Value: { Ref: handlerId } },
          { Name: 'StatusClass', Value: '5xx' },
        ],
        Statistic: 'Sum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      },
    };
    for (const [id, props] of Object.entries(expected)) {
      expect(alarm(id), id).toMatchObject({ Period: 300, TreatMissingData: 'notBreaching', ...props });
    }
  });

  it('dashboard: API, predict responses by status class, endpoint and training graphs', () => {
    const [, dashboard] = only('AWS::CloudWatch::Dashboard');
    const body = joinTokens(dashboard.Properties.DashboardBody);
    for (const text of [
      '"AWS/ApiGateway","Count"',
      '"AWS/ApiGateway","4XXError"',
      '"AWS/ApiGateway","5XXError"',
      '"AWS/ApiGateway","Latency"',
      '"BrainTumor/Predict","Responses","FunctionName","TOKEN","StatusClass","2xx"',
      '"StatusClass","4xx"',
      '"StatusClass","5xx"',
      '"AWS/SageMaker","Invocations"',
      '"AWS/SageMaker","Invocation5XXErrors"',
      '"AWS/SageMaker","ModelLatency"',
      '"/aws/sagemaker/Endpoints","CPUUtilization"',
      '"/aws/sagemaker/Endpoints","MemoryUtilization"',
      '"AWS/Events","TriggeredRules"',
    ]) {
      expect(body).toContain(text);
    }
  });

  it("logs: retention on SageMaker's own log groups and every other one; every function has its own group", () => {
    const retentions = Object.values(resources('Custom::LogRetention')).map((r) => r.Properties);
    const [, fn] = resource(s.template, 'AWS::Lambda::Function', 'ApiHandler');
    const endpointName = fn.Properties.Environment.Variables.ENDPOINT_NAME;
    const groupName = (r: { LogGroupName: unknown }) =>
      typeof r.LogGroupName === 'string' ? r.LogGroupName : JSON.stringify(r.LogGroupName);
    const byName = new Map(retentions.map((r) => [groupName(r), r]));
    const endpointGroup =
      typeof endpointName === 'string'
        ? `/aws/sagemaker/Endpoints/${endpointName}`
        : JSON.stringify({ 'Fn::Join': ['', ['/aws/sagemaker/Endpoints/', endpointName]] });
    for (const name of ['/aws/sagemaker/TrainingJobs', endpointGroup]) {
      expect(byName.get(name), name).toMatchObject({ RetentionInDays: 30, RemovalPolicy: 'retain' });
    }
    for (const [id, group] of Object.entries(resources('AWS::Logs::LogGroup'))) {
      expect(group.Properties.RetentionInDays, id).toBe(30);
    }
    // A function without a log group of its own writes to /aws/lambda/<name>, which never expires.
    for (const [id, f] of Object.entries(resources('AWS::Lambda::Function'))) {
      expect(f.Properties.LoggingConfig?.LogGroup, id).toEqual({ Ref: expect.any(String) });
    }
  });

  it('outputs: API URL, API key id, bucket, endpoint, training job', () => {
    const outputs = Object.keys(s.template.toJSON().Outputs);
    for (const name of ['ApiUrl', 'ApiKeyId', 'BucketName', 'EndpointName', 'TrainingJobName']) {
      expect(outputs).toContain(name);
    }
  });

  it('cdk-nag AwsSolutions: no unacknowledged finding, and every acknowledgement has a specific reason', () => {
    const report = new cdkNag.AwsSolutionsChecks().validateScope(s.app);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`)).toEqual(
      [],
    );
    const reasons = acknowledgements(s.app);
    expect(reasons.length).toBeGreaterThan(0);
    for (const { id, reason } of reasons) {
      expect(reason.length, id).toBeGreaterThanOrEqual(40);
      expect(reason, id).not.toMatch(/placeholder|todo|tbd/i);
    }
  });
});

function acknowledgements(root: IConstruct): { id: string; reason: string }[] {
  return root.node
    .findAll()
    .flatMap((c) => c.node.metadata)
    .filter((m) => m.type === 'aws:cdk:acknowledged-rules')
    .flatMap((m) => Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({ id, reason })));
}
