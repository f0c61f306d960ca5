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

  it('training job: GPU, spot with checkpoints, MaxWait >= MaxRuntime = 1 h, both channels, metrics', () => {
    const [, cr] = only('Custom::SageMakerTrainingJob');
    // Tokens become placeholders; the rest is the JSON the handler sends to CreateTrainingJob.
    const req = JSON.parse(joinTokens(cr.Properties.Request));
    expect(req.TrainingJobName).toMatch(/^braintumordetection-[0-9a-f]{20}$/);
    expect(req.ResourceConfig).toEqual({
      InstanceType: 'ml.g4dn.xlarge',
      InstanceCount: 1,
      VolumeSizeInGB: 30,
    });
    expect(req.EnableManagedSpotTraining).toBe(true);
    expect(req.StoppingCondition.MaxRuntimeInSeconds).toBe(3600);
    expect(req.StoppingCondition.MaxWaitTimeInSeconds).toBeGreaterThanOrEqual(3600);
    expect(req.CheckpointConfig).toEqual({
      S3Uri: `s3://TOKEN/checkpoints/${req.TrainingJobName}/`,
      LocalPath: '/opt/ml/checkpoints',
    });
    expect(req.HyperParameters).toEqual({ profile: 'full' });
    const prefix = only('Custom::CDKBucketDeployment')[1].Properties.DestinationBucketKeyPrefix;
    expect(req.InputDataConfig.map((c: { ChannelName: string }) => c.ChannelName)).toEqual(['train', 'test']);
    expect(req.InputDataConfig[0].DataSource.S3DataSource.S3Uri).toBe(`s3://TOKEN/${prefix}Training/`);
    expect(req.InputDataConfig[1].DataSource.S3DataSource.S3Uri).toBe(`s3://TOKEN/${prefix}Testing/`);
    expect(req.OutputDataConfig.S3OutputPath).toBe('s3://TOKEN/models/');
    expect(req.AlgorithmSpecification.MetricDefinitions.map((m: { Name: string }) => m.Name)).toEqual([
      'epoch',
      'train:loss',
      'train:accuracy',
      'validation:loss',
      'validation:accuracy',
      'learning_rate',
    ]);
  });

  it('training job: the deploy waits at most as long as CloudFormation allows', () => {
    // Provider framework: isComplete every 60 s, 60 attempts = the 1 h custom-resource limit.
    const [, sm] = only('AWS::StepFunctions::StateMachine');
    const definition = joinTokens((sm.Properties as { DefinitionString: unknown }).DefinitionString);
    expect(definition).toContain('"IntervalSeconds":60');
    expect(definition).toContain('"MaxAttempts":60');
  });

  it('endpoint: model, config and endpoint carry no fixed names; autoscaling 1..2 on invocations', () => {
    expect(only('AWS::SageMaker::EndpointConfig')[1].Properties).not.toHaveProperty('EndpointConfigName');
    expect(only('AWS::SageMaker::Endpoint')[1].Properties).not.toHaveProperty('EndpointName');
    expect(only('AWS::SageMaker::Model')[1].Properties).not.toHaveProperty('ModelName');
    s.template.hasResourceProperties('AWS::SageMaker::Model', {
      PrimaryContainer: {
        ModelDataUrl: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Training'), 'ModelDataUrl'] },
      },
    });
    s.template.hasResourceProperties('AWS::SageMaker::EndpointConfig', {
      ProductionVariants: [Match.objectLike({ InstanceType: 'ml.c5.xlarge', InitialInstanceCount: 1 })],
    });
    s.template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 1,
      MaxCapacity: 2,
      ScalableDimension: 'sagemaker:variant:DesiredInstanceCount',
    });
    s.template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        PredefinedMetricSpecification: { PredefinedMetricType: 'SageMakerVariantInvocationsPerInstance' },
      }),
    });
  });

  it('predict Lambda: Node 20, ENDPOINT_NAME set, may invoke only this endpoint', () => {
    const [, fn] = resource(s.template, 'AWS::Lambda::Function', 'ApiHandler');
    expect(fn.Properties).toMatchObject({ Runtime: 'nodejs20.x', Handler: 'index.handler' });
    const endpointId = Object.keys(resources('AWS::SageMaker::Endpoint'))[0];
    expect(fn.Properties.Environment.Variables.ENDPOINT_NAME).toEqual({
      'Fn::GetAtt': [endpointId, 'EndpointName'],
    });
    const roleId = fn.Properties.Role['Fn::GetAtt'][0];
    const policies = Object.values(resources('AWS::IAM::Policy')).filter((p) =>
      (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId),
    );
    const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement);
    const sagemakerStatements = statements.filter((st: { Action: string | string[] }) =>
      [st.Action].flat().some((a) => a.startsWith('sagemaker:')),
    );
    expect(sagemakerStatements).toEqual([
      { Effect: 'Allow', Action: 'sagemaker:InvokeEndpoint', Resource: { Ref: endpointId } },
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

  it('alarms: endpoint 5xx and latency, Lambda errors and throttles, failed jobs -> encrypted SNS + e-mail', () => {
    const alarms = Object.values(resources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    expect(alarms.map((a) => a.MetricName).sort()).toEqual([
      'Errors',
      'Invocation5XXErrors',
      'ModelLatency',
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
        detail: { TrainingJobName: [{ prefix: 'braintumordetection' }], TrainingJobStatus: ['Failed'] },
      },
      Targets: [Match.objectLike({ Arn: { Ref: topicId } })],
    });
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
