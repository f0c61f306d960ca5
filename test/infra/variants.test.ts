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

  it('captures a sample of requests to the bucket, and the model role may write only there', () => {
    s.template.hasResourceProperties('AWS::SageMaker::EndpointConfig', {
      DataCaptureConfig: Match.objectLike({ EnableCapture: true, InitialSamplingPercentage: 20 }),
    });
    const [, config] = resource(s.template, 'AWS::SageMaker::EndpointConfig');
    const destination = joinTokens(config.Properties.DataCaptureConfig.DestinationS3Uri);
    expect(destination).toBe('s3://TOKEN/data-capture/');
    const writes = Object.entries(s.template.findResources('AWS::IAM::Policy'))
      .filter(([id]) => id.startsWith('EndpointModelRole'))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement)
      .filter((st: { Action: string | string[] }) => [st.Action].flat().includes('s3:PutObject'));
    expect(writes).toHaveLength(1);
    expect(joinTokens(writes[0].Resource)).toBe('TOKEN/data-capture/*');
  });

  it('on-demand training carries no MaxWait', () => {
    const [, cr] = resource(s.template, 'Custom::SageMakerTrainingJob');
    const req = JSON.parse(joinTokens(cr.Properties.Request));
    expect(req.EnableManagedSpotTraining).toBe(false);
    expect(req.StoppingCondition).toEqual({ MaxRuntimeInSeconds: 2700 });
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
    template.resourceCountIs('AWS::SageMaker::Endpoint', 0);
    template.resourceCountIs('Custom::SageMakerTrainingJob', 0);
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
