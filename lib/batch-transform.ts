import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { ACCEPT, jobNamePrefixOf, OUTPUT_ROOT } from '../lambda/batch-transform/input.ts';
import { grantKeyForAwsResources } from './encryption.ts';
import { TRANSFORM_JOBS_LOG_GROUP } from './housekeeping.ts';
import type { ModelDeployment } from './model-deployment.ts';
import { arnRef, suppress } from './nag.ts';
import { nodeFunction } from './node-function.ts';
import { grantSageMakerLogs } from './sagemaker-role.ts';

export interface BatchTransformProps {
  readonly bucket: s3.IBucket;
  /** Lower-case name prefix of the stack: transform jobs are named `<prefix>-batch-<execution>`. */
  readonly namePrefix: string;
  /** The endpoint whose model the jobs run, and whose model role they run with. */
  readonly deployment: ModelDeployment;
  /** State machine name; `brain-tumor batch --aws --stack <name>` finds it as `<stack>-batch`. */
  readonly stateMachineName: string;
  /** Default instance type; an execution may choose another. @default 'ml.c5.xlarge' */
  readonly instanceType?: string;
  /** @default 1 */
  readonly instanceCount?: number;
  /** Largest request SageMaker sends the container (one image, or a jsonlines mini-batch). @default 6 */
  readonly maxPayloadInMB?: number;
  /** Parallel requests per instance; 0 = ask the container's GET /execution-parameters. @default 0 */
  readonly maxConcurrentTransforms?: number;
  /** `.out` objects each collector Lambda reads into one part file. @default 1000 */
  readonly itemsPerBatch?: number;
  /** Collector Lambdas at once (each uses one of the account's Lambda concurrency). @default 4 */
  readonly collectConcurrency?: number;
  /** A run (the transform job included) is stopped after this. @default Duration.hours(72) */
  readonly timeout?: Duration;
  readonly logRetentionDays: number;
  /** @default RemovalPolicy.RETAIN (the state machine's log group) */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Customer-managed key (strict): the job's output (`TransformOutput.KmsKeyId`) and volume
   * (`TransformResources.VolumeKmsKeyId`, not on instance types with local storage).
   * @default AWS-managed
   */
  readonly encryptionKey?: kms.IKey;
  /** Strict: the collector and summary Lambdas, which read predictions, run in these subnets. @default outside any VPC */
  readonly network?: { readonly vpc: ec2.IVpc; readonly subnets: ec2.ISubnet[] };
}

/** Bytes of keys per collector child, below Step Functions' 256 KiB input limit (BatchInput adds a few hundred). */
const MAX_BATCH_BYTES = 200 * 1024;

/** Step Functions' managed rule for `createTransformJob.sync`. */
const SYNC_RULE = 'StepFunctionsGetEventsForSageMakerTransformJobsRule';

/** How cdk-nag spells an object ARN of the bucket in a finding id. */
const nagObjects = (bucket: s3.IBucket, pattern: string) => `Resource::${arnRef(bucket)}/${pattern}`;

/**
 * SageMaker Batch Transform with the model the endpoint serves, over `s3://<bucket>/<prefix>/`,
 * as a Step Functions state machine (execution input: lambda/batch-transform/input.ts, docs/batch.md):
 *
 * 1. `Plan` (Lambda): validates the input, applies the defaults above, names the job after the
 *    execution and finds the endpoint's model (DescribeEndpoint -> DescribeEndpointConfig ->
 *    the `AllTraffic` variant's model); fails `InvalidInput` or `NoDeployedModel` with the reason.
 * 2. `Transform`: `createTransformJob.sync`, one image per request (`SplitType None`) or
 *    jsonlines records, answers as JSON lines to `batch-output/<execution>/raw/`. The job runs
 *    with the model's role and, in strict mode, the model's VPC config and the data key.
 * 3. `Collect`: a Distributed Map over `raw/` (S3 listing, `itemsPerBatch` objects per child),
 *    each child a Lambda that writes `results/part-<n>.jsonl` (every answer joined with its
 *    input file's name) and its counts.
 * 4. `Summarize` (Lambda): adds up the counts, writes `summary.json`; the execution's output.
 */
export class BatchTransform extends Construct {
  readonly stateMachine: sfn.StateMachine;
  /** Every transform job of this stack starts with it. */
  readonly jobNamePrefix: string;
  readonly planFunction: lambda.IFunction;
  readonly collectFunction: lambda.IFunction;
  readonly summarizeFunction: lambda.IFunction;

  constructor(scope: Construct, id: string, props: BatchTransformProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { bucket, deployment } = props;
    this.jobNamePrefix = jobNamePrefixOf(props.namePrefix);
    const key = props.encryptionKey;
    const vpc = props.network
      ? {
          vpc: props.network.vpc,
          subnets: props.network.subnets,
          securityGroup: this.lambdaSecurityGroup(props.network.vpc),
        }
      : undefined;

    const plan = nodeFunction(this, 'Plan', {
      entry: 'lambda/batch-transform/plan.ts',
      description: 'Validates a batch transform input, names the job and finds the model the endpoint serves',
      logRetentionDays: props.logRetentionDays,
      timeout: Duration.seconds(30),
      environment: {
        BUCKET: bucket.bucketName,
        NAME_PREFIX: props.namePrefix,
        ENDPOINT_NAME: deployment.endpointName,
        VARIANT_NAME: deployment.variantName,
        DEFAULT_INSTANCE_TYPE: props.instanceType ?? 'ml.c5.xlarge',
        DEFAULT_INSTANCE_COUNT: String(props.instanceCount ?? 1),
        DEFAULT_MAX_PAYLOAD_MB: String(props.maxPayloadInMB ?? 6),
        DEFAULT_MAX_CONCURRENT_TRANSFORMS: String(props.maxConcurrentTransforms ?? 0),
        DEFAULT_COLLECT_CONCURRENCY: String(props.collectConcurrency ?? 4),
        ENCRYPT_VOLUME: String(key !== undefined),
      },
    });
    plan.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:DescribeEndpoint'],
        resources: [deployment.endpointArn],
      }),
    );
    plan.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:DescribeEndpointConfig'],
        resources: [
          stack.formatArn({
            service: 'sagemaker',
            resource: 'endpoint-config',
            resourceName: deployment.deployedNames,
          }),
        ],
      }),
    );
    this.planFunction = plan;

    const collect = nodeFunction(this, 'Collect', {
      entry: 'lambda/batch-transform/collect.ts',
      description:
        "Joins a batch of the transform job's answers with their input file names into a part file",
      logRetentionDays: props.logRetentionDays,
      timeout: Duration.minutes(5),
      memorySize: 1024,
      environment: { BUCKET: bucket.bucketName },
      vpc,
    });
    this.grantObjects(collect, bucket, ['s3:GetObject'], ['raw/*'], key, 'read');
    this.grantObjects(
      collect,
      bucket,
      ['s3:PutObject', 's3:AbortMultipartUpload'],
      ['results/*'],
      key,
      'write',
    );
    this.grantObjects(collect, bucket, ['s3:PutObject'], ['counts/*'], key, 'write');
    this.collectFunction = collect;

    const summarize = nodeFunction(this, 'Summarize', {
      entry: 'lambda/batch-transform/summarize.ts',
      description: "Adds up a batch transform's counts and writes its summary.json",
      logRetentionDays: props.logRetentionDays,
      timeout: Duration.minutes(5),
      environment: { BUCKET: bucket.bucketName },
      vpc,
    });
    summarize.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${OUTPUT_ROOT}*`] } },
      }),
    );
    this.grantObjects(summarize, bucket, ['s3:GetObject'], ['counts/*'], key, 'read');
    this.grantObjects(summarize, bucket, ['s3:PutObject'], ['summary.json'], key, 'write');
    this.summarizeFunction = summarize;

    this.grantModelRole(props);
    this.stateMachine = this.buildStateMachine(props, plan, collect, summarize);
    this.grantTransformTask(props, stack);
    this.suppressFindings(props, plan, collect, summarize);
  }

  private buildStateMachine(
    props: BatchTransformProps,
    plan: lambda.IFunction,
    collect: lambda.IFunction,
    summarize: lambda.IFunction,
  ): sfn.StateMachine {
    const planStep = new tasks.LambdaInvoke(this, 'PlanStep', {
      stateName: 'Plan',
      lambdaFunction: plan,
      payload: sfn.TaskInput.fromObject({
        input: sfn.JsonPath.entirePayload,
        executionName: sfn.JsonPath.executionName,
      }),
      payloadResponseOnly: true,
      resultPath: '$.plan',
      retryOnServiceExceptions: true,
    });
    // A Lambda error's Cause is JSON text: fail with its message, not the whole JSON.
    const failWith = (name: string, cause: string) =>
      new sfn.Pass(this, `${name}Message`, {
        parameters: { 'error.$': 'States.StringToJson($.error.Cause)' },
      }).next(new sfn.Fail(this, name, { error: name, comment: cause, causePath: '$.error.errorMessage' }));
    planStep.addCatch(failWith('InvalidInput', 'The execution input is not valid (docs/batch.md)'), {
      errors: ['InvalidInput'],
      resultPath: '$.error',
    });
    planStep.addCatch(
      failWith('NoDeployedModel', 'The endpoint does not exist or is not InService: approve a model package'),
      { errors: ['NoDeployedModel'], resultPath: '$.error' },
    );

    const transformFailed = new sfn.Fail(this, 'TransformFailed', {
      error: 'TransformFailed',
      causePath: '$.error.Cause',
    });
    const collectStep = this.collectMap(props, collect);
    const transform = this.transformState('Transform', props, false);
    transform.addCatch(transformFailed, { resultPath: '$.error' });
    transform.next(collectStep);
    let start: sfn.IChainable = transform;
    if (props.encryptionKey) {
      // The volume key is refused on instance types with local storage; Plan knows which.
      const encrypted = this.transformState('TransformOnEncryptedVolume', props, true);
      encrypted.addCatch(transformFailed, { resultPath: '$.error' });
      encrypted.next(collectStep);
      start = new sfn.Choice(this, 'EncryptVolume?')
        .when(sfn.Condition.booleanEquals('$.plan.encryptVolume', true), encrypted)
        .otherwise(transform);
    }
    const summarizeStep = new tasks.LambdaInvoke(this, 'SummarizeStep', {
      stateName: 'Summarize',
      lambdaFunction: summarize,
      payload: sfn.TaskInput.fromObject({
        countsPrefix: sfn.JsonPath.stringAt('$.plan.countsPrefix'),
        resultsPrefix: sfn.JsonPath.stringAt('$.plan.resultsPrefix'),
        summaryKey: sfn.JsonPath.stringAt('$.plan.summaryKey'),
        inputUri: sfn.JsonPath.stringAt('$.plan.inputUri'),
        transformJobName: sfn.JsonPath.stringAt('$.transform.name'),
        modelName: sfn.JsonPath.stringAt('$.plan.modelName'),
        instanceType: sfn.JsonPath.stringAt('$.plan.instanceType'),
        instanceCount: sfn.JsonPath.numberAt('$.plan.instanceCount'),
      }),
      // The summary is the execution's output.
      payloadResponseOnly: true,
      retryOnServiceExceptions: true,
    });
    collectStep.next(summarizeStep);

    const logGroup = new logs.LogGroup(this, 'StateMachineLogs', {
      retention: props.logRetentionDays as logs.RetentionDays,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    return new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: props.stateMachineName,
      definitionBody: sfn.DefinitionBody.fromChainable(planStep.next(start)),
      comment: 'Batch transform of s3://<bucket>/<prefix>/ with the model the endpoint serves',
      logs: { destination: logGroup, level: sfn.LogLevel.ALL },
      tracingEnabled: true,
      timeout: props.timeout ?? Duration.hours(72),
    });
  }

  /**
   * The CreateTransformJob request, as the training pipeline writes its request: raw ASL, because
   * aws-cdk-lib's SageMakerCreateTransformJob would create a role with AmazonSageMakerFullAccess
   * and grant iam:PassRole on it and sagemaker:*TransformJob on every job, although
   * CreateTransformJob takes no role (the model carries it).
   */
  private transformState(id: string, props: BatchTransformProps, encryptVolume: boolean): sfn.CustomState {
    const stack = Stack.of(this);
    const key = props.encryptionKey;
    return new sfn.CustomState(this, id, {
      stateJson: {
        Type: 'Task',
        Resource: `arn:${stack.partition}:states:::sagemaker:createTransformJob.sync`,
        Parameters: {
          'TransformJobName.$': '$.plan.jobName',
          'ModelName.$': '$.plan.modelName',
          'BatchStrategy.$': '$.plan.batchStrategy',
          'MaxPayloadInMB.$': '$.plan.maxPayloadInMB',
          // 0: SageMaker asks the container (GET /execution-parameters), else 1.
          'MaxConcurrentTransforms.$': '$.plan.maxConcurrentTransforms',
          // The container's batch mode: an unreadable image is answered 200 with its error row,
          // where a 4xx would fail the whole job (docs/serving.md). Set here rather than relied on.
          Environment: { SAGEMAKER_BATCH: 'true' },
          TransformInput: {
            DataSource: { S3DataSource: { S3DataType: 'S3Prefix', 'S3Uri.$': '$.plan.inputUri' } },
            'ContentType.$': '$.plan.contentType',
            'SplitType.$': '$.plan.splitType',
            CompressionType: 'None',
          },
          TransformOutput: {
            'S3OutputPath.$': '$.plan.outputUri',
            Accept: ACCEPT,
            AssembleWith: 'Line',
            ...(key ? { KmsKeyId: key.keyArn } : {}),
          },
          TransformResources: {
            'InstanceType.$': '$.plan.instanceType',
            'InstanceCount.$': '$.plan.instanceCount',
            ...(key && encryptVolume ? { VolumeKmsKeyId: key.keyArn } : {}),
          },
        },
        ResultSelector: { 'name.$': '$.TransformJobName', 'status.$': '$.TransformJobStatus' },
        ResultPath: '$.transform',
      },
    });
  }

  /** Distributed Map over the job's `.out` objects: a part file per batch, with bounded concurrency. */
  private collectMap(props: BatchTransformProps, collect: lambda.IFunction): sfn.DistributedMap {
    const map = new sfn.DistributedMap(this, 'CollectMap', {
      stateName: 'Collect',
      itemReader: new sfn.S3ObjectsItemReader({
        bucket: props.bucket,
        prefix: sfn.JsonPath.stringAt('$.plan.rawPrefix'),
      }),
      // The key and its place in the listing only: a listed object carries ~250 bytes of
      // metadata, and a batch must stay under 256 KiB.
      itemSelector: {
        key: sfn.JsonPath.stringAt('$$.Map.Item.Value.Key'),
        index: sfn.JsonPath.numberAt('$$.Map.Item.Index'),
      },
      itemBatcher: new sfn.ItemBatcher({
        maxItemsPerBatch: props.itemsPerBatch ?? 1000,
        // A child's input must stay under 256 KiB: with long keys, fewer objects per child.
        maxInputBytesPerBatch: MAX_BATCH_BYTES,
        batchInput: {
          'rawPrefix.$': '$.plan.rawPrefix',
          'resultsPrefix.$': '$.plan.resultsPrefix',
          'countsPrefix.$': '$.plan.countsPrefix',
        },
      }),
      maxConcurrencyPath: sfn.JsonPath.stringAt('$.plan.collectConcurrency'),
      mapExecutionType: sfn.StateMachineType.STANDARD,
      // The counts go to S3 (counts/): the map's own output stays tiny for any number of parts.
      resultPath: sfn.JsonPath.DISCARD,
    });
    map.itemProcessor(
      new tasks.LambdaInvoke(this, 'CollectPart', {
        lambdaFunction: collect,
        resultSelector: { 'images.$': '$.Payload.images' },
        retryOnServiceExceptions: true,
      }),
    );
    return map;
  }

  /**
   * What the transform job needs of the model's role: read the inputs (any prefix of the data
   * bucket the user names), write only `batch-output/*\/raw/*`, log to /aws/sagemaker/TransformJobs,
   * and (strict) encrypt its output with the data key (the role already decrypts with it and may
   * create the volume's grant). The model runs with network isolation, so its container never
   * holds these credentials: SageMaker uses them to read and write S3 for the job.
   */
  private grantModelRole(props: BatchTransformProps): void {
    const role = props.deployment.modelRole;
    role.addToPolicy(
      new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [props.bucket.arnForObjects('*')] }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [props.bucket.bucketArn] }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [props.bucket.arnForObjects(`${OUTPUT_ROOT}*/raw/*`)],
      }),
    );
    grantSageMakerLogs(role, `${TRANSFORM_JOBS_LOG_GROUP}*`);
    if (props.encryptionKey) props.encryptionKey.grant(role, 'kms:Encrypt', 'kms:GenerateDataKey');
  }

  /**
   * What `createTransformJob.sync` needs: create, describe and stop this stack's jobs (the
   * ListTags Step Functions documents for SageMaker's .sync tasks, on the same jobs; AddTags
   * because .sync tags the job it creates `MANAGED_BY_AWS: STARTED_BY_STEP_FUNCTIONS`, and
   * CreateTransformJob with tags is refused without it: aws-cdk issue #26012, which
   * SageMakerCreateTransformJob grants since), and the managed rule it waits with. No
   * iam:PassRole: CreateTransformJob takes no role. Strict: the request names the data key, for
   * which SageMaker creates a grant as the caller.
   */
  private grantTransformTask(props: BatchTransformProps, stack: Stack): void {
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [
          'sagemaker:CreateTransformJob',
          'sagemaker:DescribeTransformJob',
          'sagemaker:StopTransformJob',
          'sagemaker:ListTags',
          'sagemaker:AddTags',
        ],
        resources: [
          stack.formatArn({
            service: 'sagemaker',
            resource: 'transform-job',
            resourceName: `${this.jobNamePrefix}*`,
          }),
        ],
      }),
    );
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
        resources: [stack.formatArn({ service: 'events', resource: 'rule', resourceName: SYNC_RULE })],
      }),
    );
    if (props.encryptionKey) grantKeyForAwsResources(props.encryptionKey, this.stateMachine.role);
  }

  /** `actions` on `batch-output/*\/<each pattern>` of the bucket; with the key, what S3 needs of it for that. */
  private grantObjects(
    fn: lambda.IFunction,
    bucket: s3.IBucket,
    actions: string[],
    patterns: string[],
    key: kms.IKey | undefined,
    use: 'read' | 'write',
  ): void {
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions,
        resources: patterns.map((p) => bucket.arnForObjects(`${OUTPUT_ROOT}*/${p}`)),
      }),
    );
    if (key) key.grant(fn, use === 'read' ? 'kms:Decrypt' : 'kms:GenerateDataKey');
  }

  /** Lambdas that read predictions in the VPC (strict): HTTPS out only (the subnets route to the VPC and S3). */
  private lambdaSecurityGroup(vpcRef: ec2.IVpc): ec2.SecurityGroup {
    const sg = new ec2.SecurityGroup(this, 'LambdaSecurityGroup', {
      vpc: vpcRef,
      description:
        'Batch collect/summary Lambdas: HTTPS out to S3 (gateway endpoint); the subnets route nowhere else',
      allowAllOutbound: false,
    });
    sg.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'HTTPS to S3 through the gateway endpoint (no other route)',
    );
    return sg;
  }

  private suppressFindings(
    props: BatchTransformProps,
    plan: lambda.IFunction,
    collect: lambda.IFunction,
    summarize: lambda.IFunction,
  ): void {
    const bucket = props.bucket;
    suppress(props.deployment.modelRole, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'Batch transform: SageMaker reads the inputs under whatever prefix of the data bucket the user names (the model runs network-isolated, so only SageMaker uses this), and writes only batch-output/<run>/raw/ objects whose names it derives from the inputs.',
        findings: [nagObjects(bucket, '*'), nagObjects(bucket, `${OUTPUT_ROOT}*/raw/*`)],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "SageMaker names a transform job's log streams; access is limited to the /aws/sagemaker/TransformJobs log group.",
        findings: [
          `Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:${TRANSFORM_JOBS_LOG_GROUP}*`,
        ],
      },
    ]);
    suppress(plan.role as iam.Role, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "The endpoint's config is named per deployment; DescribeEndpointConfig is limited to this stack's `<prefix>-v*` configs.",
        findings: [
          `Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:endpoint-config/${props.deployment.deployedNames}`,
        ],
      },
    ]);
    suppress(collect.role as iam.Role, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "Run folders are named per execution: the collector reads only the job's answers (batch-output/<run>/raw/) and writes only part files and counts (results/, counts/).",
        findings: ['raw/*', 'results/*', 'counts/*'].map((p) => nagObjects(bucket, `${OUTPUT_ROOT}*/${p}`)),
      },
    ]);
    suppress(summarize.role as iam.Role, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "Run folders are named per execution: the summary step reads only the collectors' counts and writes only batch-output/<run>/summary.json.",
        findings: ['counts/*', 'summary.json'].map((p) => nagObjects(bucket, `${OUTPUT_ROOT}*/${p}`)),
      },
    ]);
    suppress(this.stateMachine, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "Transform job names derive from execution names; the wildcard covers only this stack's `<prefix>-batch-*` jobs. The Lambda ARN wildcards are the functions' versions, which LambdaInvoke grants.",
        findings: [
          `Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:transform-job/${this.jobNamePrefix}*`,
          ...[plan, collect, summarize].map((fn) => `Resource::${arnRef(fn)}:*`),
        ],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'X-Ray (tracing) and CloudWatch Logs delivery (execution logs) accept only resource * (AWS design); CDK generates these statements.',
        findings: ['Resource::*'],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "The Distributed Map runs its children as executions of this state machine and describes and stops them (aws-cdk-lib's DistributedMapPolicy); the wildcard covers only this state machine's own executions and map runs.",
        findings: [':*', '/*:*'].map(
          (tail) =>
            `Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"${Stack.of(this).getLogicalId(this.stateMachine.node.defaultChild as sfn.CfnStateMachine)}"}]}]}${tail}`,
        ),
      },
    ]);
  }
}
