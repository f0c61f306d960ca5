import { cp, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_UPSTREAM_TIMEOUT_MS } from '../../lambda/predict/handler.ts';
import { REPO_ROOT } from '../../lib/config.ts';
import { trainerFingerprint } from '../../lib/trainer-fingerprint.ts';
import { trainerTimeLimitMinutes } from '../../lib/training-pipeline.ts';
import { CHANNELS } from '../../training-container/src/paths.ts';
import { joinTokens, resource, type Synth, synth, tinyDataset } from './synth.ts';

/**
 * Assertions on the properties whose loss breaks a deploy or a request: the training and
 * deployment state machines, each role's actions, the approval gate, the timeout chain. Each was
 * checked against a template broken the way it guards against (docs/infrastructure.md).
 */

let s: Synth;
beforeAll(async () => {
  s = await synth({ datasetPath: await tinyDataset() });
});

type Statement = { Action: string | string[]; Resource: unknown; Condition?: unknown };
// biome-ignore lint/suspicious/noExplicitAny: ASL is untyped JSON; tests index into it freely.
type State = Record<string, any>;

/** The state machine whose logical id starts with `prefix`, as parsed ASL (tokens as TOKEN). */
function definition(prefix: string): State {
  const [, sm] = resource(s.template, 'AWS::StepFunctions::StateMachine', prefix);
  return JSON.parse(joinTokens(sm.Properties.DefinitionString));
}

/** Every policy statement attached to the role whose logical id starts with `rolePrefix`. */
function statements(rolePrefix: string): Statement[] {
  const [roleId] = resource(s.template, 'AWS::IAM::Role', rolePrefix);
  return Object.values(s.template.findResources('AWS::IAM::Policy'))
    .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

const actions = (sts: Statement[]) => sts.flatMap((st) => [st.Action].flat());
const resourcesOf = (sts: Statement[], action: string) =>
  sts
    .filter((st) => [st.Action].flat().includes(action))
    .flatMap((st) => [st.Resource].flat().map(joinTokens));

describe('training: Step Functions, not a CloudFormation custom resource', () => {
  it('runs the job with createTrainingJob.sync on the channels the container reads, then registers it', () => {
    const { States } = definition('TrainingStateMachine');
    expect(States.Train.Resource).toBe('arn:TOKEN:states:::sagemaker:createTrainingJob.sync');
    expect(States.Train.Next).toBe('Register');
    const p = States.Train.Parameters;
    expect(p['TrainingJobName.$']).toBe('$.jobName');
    expect(p.InputDataConfig.map((c: { ChannelName: string }) => c.ChannelName)).toEqual([
      CHANNELS.train,
      CHANNELS.test,
    ]);
    expect(p.OutputDataConfig.S3OutputPath).toBe('s3://TOKEN/models/');
    expect(p.EnableNetworkIsolation).toBe(true);
    expect(p.AlgorithmSpecification.MetricDefinitions.map((m: { Name: string }) => m.Name)).toEqual(
      expect.arrayContaining(['test:accuracy', 'test:leak_free_accuracy', 'test:recall:glioma']),
    );
    expect(States.Train.Catch).toEqual([expect.objectContaining({ Next: 'TrainingFailed' })]);
    expect(States.Register.Type).toBe('Task');
  });

  it('the trainer stops before MaxRuntime, so a long job saves its model; spot waits at least as long', () => {
    const p = definition('TrainingStateMachine').States.Train.Parameters;
    const maxRuntimeMinutes = p.StoppingCondition.MaxRuntimeInSeconds / 60;
    expect(maxRuntimeMinutes).toBe(180);
    expect(Number(p.HyperParameters.time_limit_minutes)).toBe(trainerTimeLimitMinutes(maxRuntimeMinutes));
    expect(Number(p.HyperParameters.time_limit_minutes)).toBeLessThanOrEqual(maxRuntimeMinutes - 10);
    expect(p.EnableManagedSpotTraining).toBe(true);
    expect(p.StoppingCondition.MaxWaitTimeInSeconds).toBeGreaterThanOrEqual(
      p.StoppingCondition.MaxRuntimeInSeconds,
    );
  });

  it('cdk deploy starts the execution and returns: no waiter, and no image URI in what names the run', () => {
    const [, cr] = resource(s.template, 'Custom::TrainingExecution');
    expect(Object.keys(cr.Properties).sort()).toEqual(['JobName', 'ServiceToken', 'StateMachineArn']);
    expect(cr.Properties.JobName).toMatch(/^braintumordetection-[0-9a-f]{20}$/);
    // A Provider with isComplete would add a waiter state machine (and CloudFormation's hour).
    expect(Object.keys(s.template.findResources('AWS::StepFunctions::StateMachine')).sort()).toEqual([
      expect.stringMatching(/^BatchStateMachine/),
      expect.stringMatching(/^EndpointStateMachine/),
      expect.stringMatching(/^TrainingStateMachine/),
    ]);
  });

  it('the state machine may run, describe and stop only our jobs, pass only the job role, and wait on the managed rule', () => {
    const sts = statements('TrainingStateMachineRole');
    expect(resourcesOf(sts, 'sagemaker:CreateTrainingJob')).toEqual([
      'arn:TOKEN:sagemaker:TOKEN:TOKEN:training-job/braintumordetection-*',
    ]);
    expect(actions(sts)).toEqual(
      expect.arrayContaining(['sagemaker:DescribeTrainingJob', 'sagemaker:StopTrainingJob']),
    );
    // createTrainingJob.sync tags the job it starts: without AddTags the start is refused.
    for (const action of ['sagemaker:AddTags', 'sagemaker:ListTags'])
      expect(resourcesOf(sts, action)).toEqual([
        'arn:TOKEN:sagemaker:TOKEN:TOKEN:training-job/braintumordetection-*',
      ]);
    const [jobRoleId] = resource(s.template, 'AWS::IAM::Role', 'TrainingJobRole');
    expect(sts.filter((st) => actions([st]).includes('iam:PassRole')).map((st) => st.Resource)).toEqual([
      { 'Fn::GetAtt': [jobRoleId, 'Arn'] },
    ]);
    expect(resourcesOf(sts, 'events:PutRule')).toEqual([
      'arn:TOKEN:events:TOKEN:TOKEN:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule',
    ]);
  });

  it('the job role pulls the image, reads only its dataset version and writes only models/ and checkpoints/', () => {
    const sts = statements('TrainingJobRole');
    expect(actions(sts)).toEqual(expect.arrayContaining(['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer']));
    expect(actions(sts)).toContain('ecr:GetAuthorizationToken');
    const prefix = resource(s.template, 'Custom::CDKBucketDeployment')[1].Properties
      .DestinationBucketKeyPrefix;
    expect(resourcesOf(sts, 's3:GetObject').sort()).toEqual(
      [`TOKEN/${prefix}*`, 'TOKEN/checkpoints/*'].sort(),
    );
    expect(resourcesOf(sts, 's3:PutObject').sort()).toEqual(['TOKEN/checkpoints/*', 'TOKEN/models/*']);
  });
});

describe('what names a training run', () => {
  it('changes with the training code or the base image, not with serving code', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'btd-fingerprint-'));
    await cp(path.join(REPO_ROOT, 'training-container', 'src'), path.join(dir, 'src'), { recursive: true });
    await cp(path.join(REPO_ROOT, 'training-container', 'Dockerfile'), path.join(dir, 'Dockerfile'));
    const before = trainerFingerprint(dir);
    await writeFile(path.join(dir, 'src', 'serve', 'server.ts'), '// a serving-only edit\n', { flag: 'a' });
    await writeFile(path.join(dir, 'README.md'), 'docs');
    expect(trainerFingerprint(dir)).toBe(before);
    expect(trainerFingerprint(dir, { BASE_IMAGE: 'nvidia/cuda@sha256:00' })).not.toBe(before);
    await writeFile(path.join(dir, 'src', 'train', 'loop.ts'), '// a trainer edit\n', { flag: 'a' });
    expect(trainerFingerprint(dir)).not.toBe(before);
  });
});

describe('model registry and approval gate', () => {
  it('one package group; the register step gets the configured thresholds and may only create packages in it', () => {
    const [, group] = resource(s.template, 'AWS::SageMaker::ModelPackageGroup');
    expect(group.Properties.ModelPackageGroupName).toBe('braintumordetection-models');
    const [, fn] = resource(s.template, 'AWS::Lambda::Function', 'RegistryRegister');
    expect(fn.Properties.Environment.Variables).toMatchObject({
      MODEL_PACKAGE_GROUP: 'braintumordetection-models',
      APPROVAL_THRESHOLDS: JSON.stringify({ accuracy: 0.8, leakFreeAccuracy: 0.4, classRecall: 0.5 }),
    });
    const sts = statements('RegistryRegisterRole');
    expect(resourcesOf(sts, 'sagemaker:CreateModelPackage')).toContain(
      'arn:TOKEN:sagemaker:TOKEN:TOKEN:model-package/braintumordetection-models/*',
    );
    expect(resourcesOf(sts, 'sagemaker:DescribeTrainingJob')).toEqual([
      'arn:TOKEN:sagemaker:TOKEN:TOKEN:training-job/braintumordetection-*',
    ]);
  });

  it('thresholds come from context', async () => {
    const other = await synth({
      datasetPath: await tinyDataset(),
      approvalMinAccuracy: '0.9',
      approvalMinClassRecall: 0.6,
    });
    const [, fn] = resource(other.template, 'AWS::Lambda::Function', 'RegistryRegister');
    expect(JSON.parse(fn.Properties.Environment.Variables.APPROVAL_THRESHOLDS)).toEqual({
      accuracy: 0.9,
      leakFreeAccuracy: 0.4,
      classRecall: 0.6,
    });
  });
});

describe('endpoint deployment', () => {
  it('updates blue/green with auto-rollback on both alarms, keeping the autoscaled instance count', () => {
    const { States } = definition('EndpointStateMachine');
    expect(States.UpdateEndpoint.Resource).toBe('arn:TOKEN:states:::aws-sdk:sagemaker:updateEndpoint');
    const p = States.UpdateEndpoint.Parameters;
    expect(p.EndpointName).toBe('braintumordetection-endpoint');
    expect(p.RetainAllVariantProperties).toBe(true);
    expect(p.DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration).toMatchObject({
      Type: 'CANARY',
    });
    const alarmIds = Object.keys(s.template.findResources('AWS::CloudWatch::Alarm')).filter((id) =>
      id.startsWith('EndpointRollback'),
    );
    expect(alarmIds).toHaveLength(2);
    expect(p.DeploymentConfig.AutoRollbackConfiguration.Alarms).toHaveLength(2);
    expect(p.ExcludeRetainedVariantProperties).toEqual([{ VariantPropertyType: 'DataCaptureConfig' }]);
    // The rollback alarms are these two alarms, by reference, not any two names.
    const [, sm] = resource(s.template, 'AWS::StepFunctions::StateMachine', 'EndpointStateMachine');
    const raw = JSON.stringify(sm.Properties.DefinitionString);
    for (const id of alarmIds) expect(raw).toContain(JSON.stringify({ Ref: id }));
    // The alarms watch the variant the Prepare step names in every config.
    for (const id of alarmIds) {
      const alarm = s.template.toJSON().Resources[id].Properties;
      expect(alarm.Dimensions).toEqual(
        expect.arrayContaining([
          { Name: 'EndpointName', Value: 'braintumordetection-endpoint' },
          { Name: 'VariantName', Value: 'AllTraffic' },
        ]),
      );
    }
    const [, prepare] = resource(s.template, 'AWS::Lambda::Function', 'EndpointPrepare');
    expect(prepare.Properties.Environment.Variables).toMatchObject({
      ENDPOINT_NAME: 'braintumordetection-endpoint',
      VARIANT_NAME: 'AllTraffic',
      MODEL_PACKAGE_GROUP: 'braintumordetection-models',
      INSTANCE_TYPE: 'ml.c5.xlarge',
    });
  });

  it('an instance-type change deregisters autoscaling first; autoscaling is registered once InService on the new config', () => {
    const { States } = definition('EndpointStateMachine');
    const choice = States['WhatToDo?'];
    expect(choice.Choices.map((c: State) => c.Next)).toEqual([
      'NothingToDeploy',
      'CreateEndpoint',
      'DeregisterScaling',
    ]);
    expect(choice.Default).toBe('UpdateEndpoint');
    expect(States.DeregisterScaling.Next).toBe('UpdateEndpoint');
    const status = States['EndpointStatus?'];
    expect(status.Choices.map((c: State) => c.Next)).toEqual([
      'RegisterScaling',
      'RolledBack',
      'EndpointFailed',
    ]);
    // Serving only when InService on the config this run prepared: otherwise it was rolled back.
    expect(status.Choices[0].And).toEqual(
      expect.arrayContaining([
        { Variable: '$.endpoint.config', StringEqualsPath: '$.prepared.endpointConfigName' },
      ]),
    );
    expect(choice.Choices[2]).toEqual({
      Variable: '$.prepared.instanceTypeChanged',
      BooleanEquals: true,
      Next: 'DeregisterScaling',
    });
    expect(States.RegisterScaling.Parameters).toMatchObject({
      ResourceId: 'endpoint/braintumordetection-endpoint/variant/AllTraffic',
      MinCapacity: 1,
      MaxCapacity: 2,
    });
    expect(States.PutScalingPolicy.Next).toBe('Serving');
  });

  it('runs on every approval change in the group, and on deploys that change the image or settings', () => {
    s.template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.sagemaker'],
        'detail-type': ['SageMaker Model Package State Change'],
        detail: { ModelPackageGroupName: ['braintumordetection-models'] },
      },
    });
    const [, cr] = resource(s.template, 'Custom::ModelEndpoint');
    expect(cr.Properties).toMatchObject({
      EndpointName: 'braintumordetection-endpoint',
      DeletePackages: 'false',
    });
    expect(cr.Properties.Settings).toMatch(/^[0-9a-f]{20}$/);
  });

  it('the Prepare step passes only the model role, and the model role pulls the image and reads models/ (and batch inputs)', () => {
    const prepare = statements('EndpointPrepareRole');
    const [modelRoleId] = resource(s.template, 'AWS::IAM::Role', 'EndpointModelRole');
    expect(prepare.filter((st) => actions([st]).includes('iam:PassRole')).map((st) => st.Resource)).toEqual([
      { 'Fn::GetAtt': [modelRoleId, 'Arn'] },
    ]);
    expect(resourcesOf(prepare, 'sagemaker:CreateModel')).toEqual([
      'arn:TOKEN:sagemaker:TOKEN:TOKEN:model/braintumordetection-v*',
    ]);
    const model = statements('EndpointModelRole');
    expect(actions(model)).toEqual(
      expect.arrayContaining(['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer']),
    );
    // models/ for every model; the whole bucket for batch transform inputs (lib/batch-transform.ts).
    expect(resourcesOf(model, 's3:GetObject').sort()).toEqual(['TOKEN/*', 'TOKEN/models/*']);
  });

  it('with the dev removal setting, cdk destroy deletes the packages and the group too', async () => {
    const dev = await synth({ datasetPath: await tinyDataset(), removalPolicy: 'destroy' });
    const [, cr] = resource(dev.template, 'Custom::ModelEndpoint');
    expect(cr.Properties.DeletePackages).toBe('true');
    const [, group] = resource(dev.template, 'AWS::SageMaker::ModelPackageGroup');
    expect(group.DeletionPolicy).toBe('Delete');
    expect(resource(s.template, 'AWS::SageMaker::ModelPackageGroup')[1].DeletionPolicy).toBe('Retain');
  });
});

describe('request path', () => {
  it('timeout chain: API Gateway 29 s > predict Lambda > the call to the endpoint', () => {
    const [, method] = resource(s.template, 'AWS::ApiGateway::Method', 'ApipredictPOST');
    const integrationSeconds = method.Properties.Integration.TimeoutInMillis / 1000;
    const [, fn] = resource(s.template, 'AWS::Lambda::Function', 'ApiHandler');
    expect(integrationSeconds).toBe(29);
    expect(fn.Properties.Timeout).toBeLessThan(integrationSeconds);
    expect(DEFAULT_UPSTREAM_TIMEOUT_MS / 1000).toBeLessThan(fn.Properties.Timeout);
    expect(fn.Properties.Environment.Variables.ENDPOINT_NAME).toBe('braintumordetection-endpoint');
  });

  it('every Lambda of ours runs Node 22', () => {
    const ours = Object.entries(s.template.findResources('AWS::Lambda::Function')).filter(
      ([, fn]) => fn.Properties.Handler === 'index.handler' && fn.Properties.Description,
    );
    expect(ours.length).toBeGreaterThanOrEqual(5);
    for (const [id, fn] of ours) expect(fn.Properties.Runtime, id).toBe('nodejs22.x');
  });
});
