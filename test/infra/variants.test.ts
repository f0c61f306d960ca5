import { App } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import cdkNag from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { BrainTumorStack } from '../../lib/brain-tumor-stack.ts';
import { datasetExists, parseConfig } from '../../lib/config.ts';
import { cdkJsonContext, joinTokens, resource, type Synth, synth, tinyDataset } from './synth.ts';

describe('apiAuth=iam, data capture on, spot off', () => {
  let s: Synth;
  beforeAll(async () => {
    s = await synth({
      datasetPath: await tinyDataset(),
      apiAuth: 'iam',
      dataCapture: 'true',
      dataCaptureSamplePercent: '20',
      trainingUseSpot: 'false',
      trainingMaxRuntimeMinutes: '45',
    });
  });

  it('the method requires SigV4 and no API key or usage plan exists', () => {
    s.template.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'POST',
      AuthorizationType: 'AWS_IAM',
      ApiKeyRequired: false,
    });
    s.template.resourceCountIs('AWS::ApiGateway::ApiKey', 0);
    s.template.resourceCountIs('AWS::ApiGateway::UsagePlan', 0);
    expect(Object.keys(s.template.toJSON().Outputs)).not.toContain('ApiKeyId');
  });

  it('serves no web page: a browser cannot SigV4-sign, so GET / stays unrouted', () => {
    expect(
      Object.values(
        s.template.findResources('AWS::ApiGateway::Method', { Properties: { HttpMethod: 'GET' } }),
      ),
    ).toEqual([]);
    expect(Object.keys(s.template.toJSON().Outputs).filter((k) => k.startsWith('WebPage'))).toEqual([]);
  });

  it('captures a sample of requests to the bucket, and the model role may write only there (and batch answers)', () => {
    // The deployment's Prepare step creates each endpoint config with this DataCaptureConfig.
    const [, prepare] = resource(s.template, 'AWS::Lambda::Function', 'EndpointPrepare');
    const capture = JSON.parse(joinTokens(prepare.Properties.Environment.Variables.DATA_CAPTURE));
    expect(capture).toMatchObject({ EnableCapture: true, InitialSamplingPercentage: 20 });
    expect(capture.DestinationS3Uri).toBe('s3://TOKEN/data-capture/');
    const writes = Object.entries(s.template.findResources('AWS::IAM::Policy'))
      .filter(([id]) => id.startsWith('EndpointModelRole'))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement)
      .filter((st: { Action: string | string[] }) => [st.Action].flat().includes('s3:PutObject'));
    expect(writes).toHaveLength(1);
    // batch-output/*/raw/: batch transform jobs run with the model role too (lib/batch-transform.ts).
    expect([writes[0].Resource].flat().map(joinTokens).sort()).toEqual([
      'TOKEN/batch-output/*/raw/*',
      'TOKEN/data-capture/*',
    ]);
  });

  it('on-demand training carries no MaxWait, and the trainer stops 10 minutes before MaxRuntime', () => {
    const [, sm] = resource(s.template, 'AWS::StepFunctions::StateMachine', 'TrainingStateMachine');
    const train = JSON.parse(joinTokens(sm.Properties.DefinitionString)).States.Train.Parameters;
    expect(train.EnableManagedSpotTraining).toBe(false);
    expect(train.StoppingCondition).toEqual({ MaxRuntimeInSeconds: 2700 });
    expect(train.HyperParameters.time_limit_minutes).toBe('35');
  });

  it('stays cdk-nag clean', () => {
    expect(new cdkNag.AwsSolutionsChecks().validateScope(s.app).violations).toEqual([]);
  });
});

describe('no dataset', () => {
  it('a missing default dataset folder is a warning; a missing explicit one is an error', () => {
    const config = parseConfig({});
    expect(datasetExists({ ...config, datasetDir: '/nonexistent/dataset' })).toBe(false);
    expect(() =>
      datasetExists({ ...config, datasetDir: '/nonexistent/dataset', datasetIsDefault: false }),
    ).toThrow(/datasetPath \/nonexistent\/dataset does not exist/);
  });

  it('synthesizes the bucket and alarm topic only, with a warning that says how to fix it', async () => {
    const app = new App({ context: await cdkJsonContext() });
    const config = { ...parseConfig({}), datasetDir: '/nonexistent/dataset' };
    const stack = new BrainTumorStack(app, 'NoData', { config });
    const template = Template.fromStack(stack);
    template.resourceCountIs('Custom::ModelEndpoint', 0);
    template.resourceCountIs('Custom::TrainingExecution', 0);
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 0);
    template.resourceCountIs('AWS::ApiGateway::RestApi', 0);
    template.resourceCountIs('AWS::SNS::Topic', 1);
    expect(Object.keys(template.toJSON().Outputs).sort()).toEqual(['AlarmTopicArn', 'BucketName']);
    Annotations.fromStack(stack).hasWarning(
      '/NoData',
      Match.stringLikeRegexp('No dataset at /nonexistent/dataset'),
    );
    expect(new cdkNag.AwsSolutionsChecks().validateScope(app).violations).toEqual([]);
  });
});
