import { ArnFormat, Aspects, CfnResource, type IAspect, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct, type IConstruct } from 'constructs';
import { suppress } from './nag.ts';

/** `retain`: keep what holds data on `cdk destroy`; `destroy` (the dev setting): leave nothing. */
export type RemovalSetting = 'retain' | 'destroy';

/** SageMaker writes every training job's logs here (one group per account and region). */
export const TRAINING_JOBS_LOG_GROUP = '/aws/sagemaker/TrainingJobs';

/** SageMaker writes every batch transform job's logs here (one group per account and region). */
export const TRANSFORM_JOBS_LOG_GROUP = '/aws/sagemaker/TransformJobs';

/** SageMaker writes an endpoint's container logs here. */
export function endpointLogGroupName(endpointName: string): string {
  return `/aws/sagemaker/Endpoints/${endpointName}`;
}

/** The resource types `destroy` deletes with the stack (CDK retains all of them by default). */
export const DATA_RESOURCE_TYPES = ['AWS::Logs::LogGroup', 'AWS::KMS::Key', 'AWS::S3::Bucket'];

/** Shortest deletion window KMS allows; a deleted key can be recovered until then. */
export const KEY_PENDING_WINDOW_DAYS = 7;

/** aws-cdk-lib's singleton for `logs.LogRetention` (a fixed id in the stack). */
const LOG_RETENTION_FUNCTION_ID = 'LogRetentionaae0aa3c5b4d4f87b02d85b201efdd8a';

export interface SageMakerLogRetentionProps {
  /** A value CloudWatch Logs accepts (config.logRetentionDays). */
  readonly retentionDays: number;
  /** `destroy` deletes the log groups with the stack. @default 'retain' */
  readonly removalPolicy?: RemovalSetting;
  /** Endpoint whose `/aws/sagemaker/Endpoints/<name>` group gets retention; none when undefined. */
  readonly endpointName?: string;
  /** Set retention on `/aws/sagemaker/TrainingJobs`. @default true */
  readonly trainingJobs?: boolean;
  /** Set retention on `/aws/sagemaker/TransformJobs` (batch transform). @default false */
  readonly transformJobs?: boolean;
  /**
   * Strict: the endpoint's group is created by the stack as a log group encrypted with this key
   * (SageMaker then writes into it) rather than given retention after SageMaker creates it. The
   * account-wide TrainingJobs group is shared with every other job and keeps SageMaker's
   * encryption. @default undefined
   */
  readonly endpointEncryptionKey?: kms.IKey;
}

/**
 * Retention for the log groups SageMaker creates itself (and which never expire): a
 * `logs.LogRetention` custom resource sets it whether or not the group exists yet (it creates
 * the group if needed). With `removalPolicy: 'destroy'` the groups are deleted with the stack.
 *
 * `/aws/sagemaker/TrainingJobs` is shared by every training job in the account and region: the
 * retention applies to all of them, and `destroy` deletes the whole group (a dev-account setting).
 */
export class SageMakerLogRetention extends Construct {
  readonly trainingJobs?: logs.LogRetention;
  readonly transformJobs?: logs.LogRetention;
  readonly endpoint?: logs.LogRetention | logs.LogGroup;

  constructor(scope: Construct, id: string, props: SageMakerLogRetentionProps) {
    super(scope, id);
    const retention = props.retentionDays as logs.RetentionDays;
    const removal = props.removalPolicy ?? 'retain';
    if (props.trainingJobs ?? true) {
      this.trainingJobs = logRetention(this, 'TrainingJobs', TRAINING_JOBS_LOG_GROUP, retention, removal);
    }
    if (props.transformJobs ?? false) {
      this.transformJobs = logRetention(this, 'TransformJobs', TRANSFORM_JOBS_LOG_GROUP, retention, removal);
    }
    if (props.endpointName !== undefined) {
      const name = endpointLogGroupName(props.endpointName);
      this.endpoint = props.endpointEncryptionKey
        ? new logs.LogGroup(this, 'EndpointGroup', {
            logGroupName: name,
            retention,
            encryptionKey: props.endpointEncryptionKey,
            removalPolicy: removal === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
          })
        : logRetention(this, 'Endpoint', name, retention, removal);
    }
  }
}

/**
 * A `logs.LogRetention`, with the cdk-nag findings on aws-cdk-lib's handler acknowledged: its
 * managed policy and `*` grant, and with `destroy` the delete grant on exactly this log group.
 */
function logRetention(
  scope: Construct,
  id: string,
  logGroupName: string,
  retention: logs.RetentionDays,
  removal: RemovalSetting,
): logs.LogRetention {
  const destroy = removal === 'destroy';
  const created = new logs.LogRetention(scope, id, {
    logGroupName,
    retention,
    removalPolicy: destroy ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
  });
  const stack = Stack.of(scope);
  const handler = stack.node.findChild(LOG_RETENTION_FUNCTION_ID);
  if (!acknowledged.has(handler)) {
    acknowledged.add(handler);
    suppressLogRetentionFindings(handler);
  }
  if (destroy) {
    // As aws-cdk-lib grants it: `log-group:<name>:*`.
    const arn = stack.formatArn({
      service: 'logs',
      resource: 'log-group',
      resourceName: `${logGroupName}:*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    suppress(handler, [
      {
        id: 'AwsSolutions-IAM5',
        reason: `With removalPolicy=destroy, CDK's LogRetention handler may delete the log group ${logGroupName} on stack deletion; \`:*\` is how aws-cdk-lib scopes that grant to the one group.`,
        findings: [`Resource::${nagText(stack, arn)}`],
      },
    ]);
  }
  return created;
}

const acknowledged = new WeakSet<IConstruct>();

/** How cdk-nag spells a (possibly tokenized) string inside a finding id. */
function nagText(stack: Stack, value: string): string {
  const render = (v: unknown): string => {
    if (typeof v === 'string') return v;
    const o = v as { Ref?: string; 'Fn::GetAtt'?: [string, string]; 'Fn::Join'?: [string, unknown[]] };
    if (o.Ref) return `<${o.Ref}>`;
    if (o['Fn::GetAtt']) return `<${o['Fn::GetAtt'].join('.')}>`;
    if (o['Fn::Join']) return o['Fn::Join'][1].map(render).join(o['Fn::Join'][0]);
    throw new Error(`cannot render ${JSON.stringify(v)} for cdk-nag`);
  };
  return render(stack.resolve(value));
}

/**
 * Applies the removal setting to the whole stack. `destroy`: every log group, KMS key and bucket
 * gets DeletionPolicy Delete (keys with the shortest pending window), whoever created it.
 * Buckets must also be emptied to be deleted: DataBucket does that itself (autoDeleteObjects).
 */
export function applyRemovalSetting(stack: Stack, setting: RemovalSetting): void {
  if (setting === 'destroy') Aspects.of(stack).add(new DestroyWithStack());
}

class DestroyWithStack implements IAspect {
  visit(node: IConstruct): void {
    if (!CfnResource.isCfnResource(node) || !DATA_RESOURCE_TYPES.includes(node.cfnResourceType)) return;
    node.applyRemovalPolicy(RemovalPolicy.DESTROY);
    if (node instanceof kms.CfnKey) node.pendingWindowInDays = KEY_PENDING_WINDOW_DAYS;
  }
}

/**
 * Gives every Lambda function in the stack that has no log group of its own one with retention
 * (and the stack's removal setting, through the aspect above). CDK's helper functions (the
 * LogRetention singleton, S3 auto-delete) are created without one and would otherwise write to an
 * auto-created `/aws/lambda/<name>` that never expires and outlives the stack. Call it last.
 */
export function giveFunctionsLogGroups(stack: Stack, retentionDays: number, setting: RemovalSetting): void {
  for (const node of stack.node.findAll()) {
    if (!CfnResource.isCfnResource(node) || node.cfnResourceType !== 'AWS::Lambda::Function') continue;
    if (node instanceof lambda.CfnFunction) {
      const config = node.loggingConfig;
      if (
        config &&
        (Token.isUnresolved(config) || (config as lambda.CfnFunction.LoggingConfigProperty).logGroup)
      )
        continue;
    }
    const scope = node.node.scope as Construct;
    const id = `${node.node.id}Logs`;
    if (scope.node.tryFindChild(id)) continue;
    // The helpers' roles carry AWSLambdaBasicExecutionRole (any log group), so no grant is needed.
    const group = new logs.LogGroup(scope, id, { retention: retentionDays as logs.RetentionDays });
    node.addPropertyOverride('LoggingConfig.LogGroup', group.logGroupName);
  }
  // The LogRetention handler also creates its own default group (`/aws/lambda/<name>`, one-day
  // retention) on its first Create, even though its logs go to the group above. With `destroy`,
  // the handler gets a fixed name and one more LogRetention, served by that same function,
  // deletes that group on `cdk destroy`. (A generated name would make the grant a cycle.)
  const fn = stack.node.tryFindChild(LOG_RETENTION_FUNCTION_ID)?.node.tryFindChild('Resource');
  if (setting === 'destroy' && fn && CfnResource.isCfnResource(fn) && !Token.isUnresolved(stack.stackName)) {
    const functionName = `${stack.stackName.slice(0, 48)}-log-retention`;
    fn.addPropertyOverride('FunctionName', functionName);
    logRetention(stack, 'LogRetentionFunctionLogs', `/aws/lambda/${functionName}`, 1, 'destroy');
  }
}

/** The LogRetention handler is a CDK-owned singleton Lambda; its findings are acknowledged once. */
function suppressLogRetentionFindings(handler: IConstruct): void {
  suppress(handler, [
    {
      id: 'AwsSolutions-IAM4',
      reason:
        "CDK's LogRetention handler (aws-cdk-lib owned): AWSLambdaBasicExecutionRole only lets it write its own CloudWatch logs.",
      findings: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole'],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        "CDK's LogRetention handler: aws-cdk-lib grants logs:PutRetentionPolicy/DeleteRetentionPolicy on '*' (not configurable); it only acts on the log groups named in this stack's Custom::LogRetention resources.",
      findings: ['Resource::*'],
    },
  ]);
}
