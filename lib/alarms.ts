import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';

export interface AlarmsProps {
  /** Subscribed by e-mail to the alarm topic; no subscription when undefined. @default undefined */
  readonly email?: string;
  /** Endpoint to watch; endpoint alarms are skipped when undefined. @default undefined */
  readonly endpoint?: { readonly name: string; readonly variantName: string };
  /** Alarm when p90 model latency stays above this for 15 minutes. @default 2000 */
  readonly modelLatencyMs?: number;
  /** Lambdas whose errors and throttles raise alarms. @default [] */
  readonly functions?: ReadonlyArray<{ readonly label: string; readonly fn: lambda.IFunction }>;
  /** Training jobs whose name starts with this notify when they fail; none when undefined. @default undefined */
  readonly trainingJobNamePrefix?: string;
}

/**
 * Alarms and notifications: endpoint 5xx and latency, Lambda errors and throttles, and failed
 * training jobs (EventBridge), all to one encrypted, TLS-only SNS topic.
 */
export class Alarms extends Construct {
  readonly topic: sns.Topic;

  constructor(scope: Construct, id: string, props: AlarmsProps) {
    super(scope, id);
    // Publishers to a KMS-encrypted topic need the key: CloudWatch and EventBridge get it here.
    const key = new kms.Key(this, 'TopicKey', {
      enableKeyRotation: true,
      description: 'Encrypts the brain tumor alarm topic',
    });
    for (const service of ['cloudwatch.amazonaws.com', 'events.amazonaws.com']) {
      key.grant(new iam.ServicePrincipal(service), 'kms:Decrypt', 'kms:GenerateDataKey*');
    }
    this.topic = new sns.Topic(this, 'Topic', {
      masterKey: key,
      enforceSSL: true,
      displayName: 'Brain tumor alarms',
    });
    // The topic policy (for TLS) replaces SNS's default one, so CloudWatch needs an explicit allow.
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
      }),
    );
    if (props.email) this.topic.addSubscription(new subs.EmailSubscription(props.email));
    const action = new cwActions.SnsAction(this.topic);
    const alarm = (alarmId: string, alarmProps: cloudwatch.AlarmProps) =>
      new cloudwatch.Alarm(this, alarmId, alarmProps).addAlarmAction(action);

    if (props.endpoint) {
      const dimensionsMap = { EndpointName: props.endpoint.name, VariantName: props.endpoint.variantName };
      const metric = (metricName: string, statistic: string) =>
        new cloudwatch.Metric({
          namespace: 'AWS/SageMaker',
          metricName,
          dimensionsMap,
          statistic,
          period: Duration.minutes(5),
        });
      alarm('Endpoint5xx', {
        alarmDescription: 'The SageMaker endpoint answered with 5xx errors',
        metric: metric('Invocation5XXErrors', 'Sum'),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      const latencyMs = props.modelLatencyMs ?? 2000;
      alarm('ModelLatency', {
        alarmDescription: `p90 model latency above ${latencyMs} ms for 15 minutes`,
        // ModelLatency is reported in microseconds.
        metric: metric('ModelLatency', 'p90'),
        threshold: latencyMs * 1000,
        evaluationPeriods: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }
    for (const { label, fn } of props.functions ?? []) {
      for (const [kind, metric] of [
        ['Errors', fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' })],
        ['Throttles', fn.metricThrottles({ period: Duration.minutes(5), statistic: 'Sum' })],
      ] as const) {
        alarm(`${label}${kind}`, {
          alarmDescription: `${label} Lambda ${kind.toLowerCase()}`,
          metric,
          threshold: 1,
          evaluationPeriods: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        });
      }
    }
    if (props.trainingJobNamePrefix) {
      new events.Rule(this, 'TrainingJobFailed', {
        description: 'A training job of this stack failed',
        eventPattern: {
          source: ['aws.sagemaker'],
          detailType: ['SageMaker Training Job State Change'],
          detail: {
            TrainingJobName: events.Match.prefix(props.trainingJobNamePrefix),
            TrainingJobStatus: ['Failed'],
          },
        },
        targets: [
          new targets.SnsTopic(this.topic, {
            message: events.RuleTargetInput.fromText(
              `SageMaker training job ${events.EventField.fromPath('$.detail.TrainingJobName')} failed: ${events.EventField.fromPath('$.detail.FailureReason')}`,
            ),
          }),
        ],
      });
    }
  }
}
