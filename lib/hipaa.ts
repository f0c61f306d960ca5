import { CfnResource, type Stack } from 'aws-cdk-lib';
import { type Suppression, suppress } from './nag.ts';

/**
 * cdk-nag's HIPAA Security findings that do not apply to a resource of the strict configuration,
 * acknowledged on that resource (never stack-wide), each with the reason. Called last, once every
 * resource exists; the default configuration never runs the HIPAA pack and never calls this.
 */
export function acknowledgeHipaaFindings(stack: Stack): void {
  for (const node of stack.node.findAll()) {
    if (!CfnResource.isCfnResource(node)) continue;
    const path = node.node.path;
    const suppressions = hipaaSuppressions(node.cfnResourceType, path, node);
    if (suppressions.length > 0) suppress(node, suppressions);
  }
}

const rule = (name: string) => `HIPAA.Security-${name}`;

function hipaaSuppressions(type: string, path: string, node: CfnResource): Suppression[] {
  switch (type) {
    case 'AWS::IAM::Policy':
      return [
        {
          id: rule('IAMNoInlinePolicy'),
          reason:
            'Single-purpose role: this policy (CDK DefaultPolicy) belongs to one role of this stack and is deleted with it; AWS recommends inline policies for a strict one-to-one role-policy relationship, and a managed policy would only add the chance of attaching it elsewhere.',
        },
      ];
    case 'AWS::Lambda::Function':
      return lambdaSuppressions(path, node);
    case 'AWS::S3::Bucket':
      return bucketSuppressions(path);
    case 'AWS::CloudWatch::Alarm':
      return /\/Endpoint\/Rollback[^/]*\//.test(path)
        ? [
            {
              id: rule('CloudWatchAlarmAction'),
              reason:
                "Rollback alarm: SageMaker's blue/green guardrails read it (AutoRollbackConfiguration) to roll an update back; the alarms that notify people (Endpoint5xx, ModelLatency) carry the SNS action.",
            },
          ]
        : [];
    case 'AWS::ApiGateway::Stage':
      return [
        {
          id: rule('APIGWCacheEnabledAndEncrypted'),
          reason:
            'No response cache: every request is a different scan, so a cache would never hit and would only keep predictions (health information) at rest in the gateway.',
        },
        {
          id: rule('APIGWExecutionLoggingEnabled'),
          reason:
            'Access logs are on (without the caller IP). Execution logging needs an account-wide API Gateway CloudWatch role this app does not create, and can log request bodies, i.e. the images strict keeps out of logs.',
        },
        {
          id: rule('APIGWSSLEnabled'),
          reason:
            'The rule asks for a client certificate API Gateway presents to an HTTP backend; the only integration is the predict Lambda (AWS_PROXY), invoked through IAM, so there is no HTTP backend to authenticate to.',
        },
      ];
    default:
      return [];
  }
}

/** How each Lambda of the stack is invoked, by its construct path. */
function invocation(
  path: string,
): 'api' | 'stepFunctions' | 'batch' | 'provider' | 'cloudFormation' | undefined {
  if (/\/Api\/Handler\/Resource$/.test(path)) return 'api';
  if (/\/Batch\/(Plan|Collect|Summarize)\/Resource$/.test(path)) return 'batch';
  if (/\/(Registry\/Register|Endpoint\/Prepare)\/Resource$/.test(path)) return 'stepFunctions';
  if (/\/(Training\/Start|Endpoint\/Lifecycle)\/Resource$/.test(path)) return 'provider';
  if (
    /\/Provider\/framework-[^/]+\/Resource$/.test(path) ||
    /\/Custom::CDKBucketDeployment[^/]*\/Resource$/.test(path)
  ) {
    return 'cloudFormation';
  }
  return undefined;
}

const DLQ_REASONS = {
  api: 'API Gateway invokes it synchronously and the client receives every error; a dead-letter queue only receives failed asynchronous invocations.',
  stepFunctions:
    'Step Functions invokes it synchronously, retries service errors and fails the execution otherwise; a dead-letter queue only receives failed asynchronous invocations.',
  batch:
    'The batch transform state machine invokes it synchronously, retries service errors and fails the run otherwise (the run can be redriven); a dead-letter queue only receives failed asynchronous invocations.',
  provider:
    'The custom-resource Provider framework invokes it synchronously and reports its failure to CloudFormation; a dead-letter queue only receives failed asynchronous invocations.',
  cloudFormation:
    'CloudFormation invokes it for a custom resource and fails (and rolls back) the deployment when it fails; a dead-letter queue would only keep the CloudFormation event.',
};

function lambdaSuppressions(path: string, node: CfnResource): Suppression[] {
  const how = invocation(path);
  if (!how) return [];
  const inVpc = (node as CfnResource & { vpcConfig?: unknown }).vpcConfig !== undefined;
  return [
    { id: rule('LambdaDLQ'), reason: DLQ_REASONS[how] },
    {
      id: rule('LambdaConcurrency'),
      reason:
        how === 'api'
          ? "The API stage's throttle (apiRateLimit, apiBurstLimit) bounds its concurrency; reserved concurrency would take capacity from the account's pool, which new accounts (10 in all) cannot spare."
          : how === 'batch'
            ? "The Distributed Map's MaxConcurrency (collectConcurrency, default 4) bounds the collectors; Plan and Summarize run once per batch run. Reserved concurrency would only take capacity from the account's pool."
            : "Runs a few times per deployment, training or rollout; reserving concurrency for it would only take capacity from the account's pool.",
    },
    ...(inVpc
      ? []
      : [
          {
            id: rule('LambdaInsideVPC'),
            reason:
              'Control-plane function: it calls the SageMaker, Step Functions, Lambda or CloudFormation APIs with names and ARNs only, never images or predictions; the functions that carry images (predict, dataset upload) run in the VPC.',
          },
        ]),
  ];
}

function bucketSuppressions(path: string): Suppression[] {
  if (/\/DataBucket\/AccessLogs\/Resource$/.test(path)) {
    return [
      {
        id: rule('S3DefaultEncryptionKMS'),
        reason:
          'Amazon S3 server access logging delivers only to buckets with SSE-S3 (AES-256) default encryption, not SSE-KMS; the log bucket is encrypted, private, TLS-only and versioned.',
      },
      {
        id: rule('S3BucketReplicationEnabled'),
        reason:
          'Server access logs are audit records kept 365 days in this region; copying them elsewhere belongs to an account-wide logging design (an organisation log archive), not to this stack.',
      },
    ];
  }
  if (/\/DataBucket\/Bucket\/Resource$/.test(path)) {
    return [
      {
        id: rule('S3BucketReplicationEnabled'),
        reason:
          'Cross-region replication is a recovery decision left to the operator (a second region holding health data needs its own key and review); the bucket is versioned, retained on stack deletion, and the dataset can be uploaded again from its source.',
      },
    ];
  }
  return [];
}
