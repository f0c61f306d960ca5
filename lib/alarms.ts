import { Duration } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigateway';
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
import { METRICS_NAMESPACE, RESPONSES_METRIC, type StatusClass } from '../lambda/predict/metrics.ts';

/** The endpoint an alarm or dashboard watches. */
export interface WatchedEndpoint {
  readonly name: string;
  readonly variantName: string;
  /**
   * vCPUs per instance: SageMaker's CPUUtilization is the sum over them (0-400% on 4 vCPUs),
   * so the CPU alarm's threshold is scaled by it. See `vcpusOf`. @default 1
   */
  readonly vcpus?: number;
}

/** Every alarm and dashboard graph uses this period. */
export const METRIC_PERIOD = Duration.minutes(5);

/**
 * A SageMaker endpoint metric: invocation metrics live in `AWS/SageMaker`, instance metrics
 * (CPUUtilization, MemoryUtilization, DiskUtilization) in `/aws/sagemaker/Endpoints`.
 */
export function endpointMetric(
  endpoint: WatchedEndpoint,
  metricName: string,
  statistic: string,
  options: cloudwatch.MetricOptions = {},
): cloudwatch.Metric {
  const instanceMetric = /^(CPU|Memory|Disk|GPU|GPUMemory)Utilization$/.test(metricName);
  return new cloudwatch.Metric({
    namespace: instanceMetric ? '/aws/sagemaker/Endpoints' : 'AWS/SageMaker',
    metricName,
    dimensionsMap: { EndpointName: endpoint.name, VariantName: endpoint.variantName },
    statistic,
    period: METRIC_PERIOD,
    ...options,
  });
}

/** The predict handler's responses of one status class (EMF, see lambda/predict/metrics.ts). */
export function predictResponsesMetric(
  fn: lambda.IFunction,
  statusClass: StatusClass,
  options: cloudwatch.MetricOptions = {},
): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName: RESPONSES_METRIC,
    dimensionsMap: { FunctionName: fn.functionName, StatusClass: statusClass },
    statistic: 'Sum',
    period: METRIC_PERIOD,
    ...options,
  });
}

/** EventBridge's count of events a rule matched (training jobs that failed or were stopped). */
export function ruleMatchesMetric(rule: events.IRule, label: string): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: 'AWS/Events',
    metricName: 'TriggeredRules',
    dimensionsMap: { RuleName: rule.ruleName },
    statistic: 'Sum',
    period: METRIC_PERIOD,
    label,
  });
}

/**
 * vCPUs of an instance type by its size, as EC2 sizes them: large 2, xlarge 4, Nxlarge 4N,
 * medium 2 (ml.t2.medium); undefined for others (metal).
 */
export function vcpusOf(instanceType: string): number | undefined {
  const size = instanceType.split('.').pop() ?? '';
  if (size === 'medium' || size === 'large') return 2;
  const xlarge = /^(\d*)xlarge$/.exec(size);
  return xlarge ? 4 * Number(xlarge[1] || 1) : undefined;
}

/** The training job states the EventBridge rule notifies about. */
export const TRAINING_JOB_ALERT_STATUSES = ['Failed', 'Stopped'];

export interface AlarmsProps {
  /** Subscribed by e-mail to the alarm topic; no subscription when undefined. @default undefined */
  readonly email?: string;
  /** Endpoint to watch; endpoint alarms are skipped when undefined. @default undefined */
  readonly endpoint?: WatchedEndpoint;
  /** Alarm when p90 model latency stays above this for 15 minutes. @default 2000 */
  readonly modelLatencyMs?: number;
  /** Alarm when endpoint CPU, as a share of all its vCPUs, averages above this for 15 minutes. @default 90 */
  readonly endpointCpuPercent?: number;
  /** Alarm when endpoint memory use averages above this percentage for 15 minutes. @default 90 */
  readonly endpointMemoryPercent?: number;
  /** 5xx responses in 5 minutes that raise the endpoint, API and predict 5xx alarms. @default 1 */
  readonly serverErrorThreshold?: number;
  /** REST API stage whose 5XXError and Latency raise alarms; none when undefined. @default undefined */
  readonly apiStage?: apigw.Stage;
  /** Alarm when the API's p90 latency stays above this for 15 minutes. @default 5000 */
  readonly apiLatencyMs?: number;
  /**
   * The predict Lambda: its 5xx responses (the handler answers 500/502/503/504 and never throws,
   * so Lambda's Errors metric misses them) raise an alarm. None when undefined. @default undefined
   */
  readonly predictFunction?: lambda.IFunction;
  /** Lambdas whose errors and throttles raise alarms. @default [] */
  readonly functions?: ReadonlyArray<{ readonly label: string; readonly fn: lambda.IFunction }>;
  /** Training jobs whose name starts with this notify when they fail or stop; none when undefined. @default undefined */
  readonly trainingJobNamePrefix?: string;
}

/**
 * Alarms and notifications, all to one encrypted, TLS-only SNS topic: endpoint 5xx, latency,
 * CPU and memory; API 5xx and latency; the predict handler's 5xx responses; Lambda errors and
 * throttles; and training jobs that fail or are stopped (EventBridge).
 */
export class Alarms extends Construct {
  readonly topic: sns.Topic;
  /** Every alarm, for the dashboard's status widget. */
  readonly alarms: cloudwatch.Alarm[] = [];
  /** The EventBridge rule for failed/stopped training jobs, when a prefix was given. */
  readonly trainingJobRule?: events.Rule;

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
    const alarm = (alarmId: string, alarmProps: cloudwatch.AlarmProps) => {
      const created = new cloudwatch.Alarm(this, alarmId, alarmProps);
      created.addAlarmAction(action);
      this.alarms.push(created);
    };
    const serverErrors = props.serverErrorThreshold ?? 1;

    if (props.endpoint) {
      const endpoint = props.endpoint;
      const metric = (metricName: string, statistic: string) =>
        endpointMetric(endpoint, metricName, statistic);
      alarm('Endpoint5xx', {
        alarmDescription: `The SageMaker endpoint answered with ${serverErrors}+ 5xx errors in 5 minutes`,
        metric: metric('Invocation5XXErrors', 'Sum'),
        threshold: serverErrors,
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
      const cpuPercent = props.endpointCpuPercent ?? 90;
      const vcpus = endpoint.vcpus ?? 1;
      alarm('EndpointCpu', {
        alarmDescription: `Endpoint CPU above ${cpuPercent}% of its ${vcpus} vCPUs (average) for 15 minutes`,
        // Summed over the instance's vCPUs: 100% per vCPU.
        metric: metric('CPUUtilization', 'Average'),
        threshold: cpuPercent * vcpus,
        evaluationPeriods: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      const memoryPercent = props.endpointMemoryPercent ?? 90;
      alarm('EndpointMemory', {
        alarmDescription: `Endpoint memory use above ${memoryPercent}% (average) for 15 minutes`,
        metric: metric('MemoryUtilization', 'Average'),
        threshold: memoryPercent,
        evaluationPeriods: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }
    if (props.apiStage) {
      alarm('Api5xx', {
        alarmDescription: `The API answered ${serverErrors}+ 5xx responses in 5 minutes`,
        metric: props.apiStage.metricServerError({ period: METRIC_PERIOD, statistic: 'Sum' }),
        threshold: serverErrors,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      const apiLatencyMs = props.apiLatencyMs ?? 5000;
      alarm('ApiLatency', {
        alarmDescription: `p90 API latency above ${apiLatencyMs} ms for 15 minutes`,
        metric: props.apiStage.metricLatency({ period: METRIC_PERIOD, statistic: 'p90' }),
        threshold: apiLatencyMs,
        evaluationPeriods: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }
    if (props.predictFunction) {
      alarm('Predict5xxResponses', {
        alarmDescription: `The predict Lambda answered ${serverErrors}+ 5xx responses in 5 minutes`,
        metric: predictResponsesMetric(props.predictFunction, '5xx'),
        threshold: serverErrors,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
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
      // The construct id predates `Stopped`; kept so the rule is updated in place, not replaced.
      this.trainingJobRule = new events.Rule(this, 'TrainingJobFailed', {
        description: 'A training job of this stack failed or was stopped',
        eventPattern: {
          source: ['aws.sagemaker'],
          detailType: ['SageMaker Training Job State Change'],
          detail: {
            TrainingJobName: events.Match.prefix(props.trainingJobNamePrefix),
            TrainingJobStatus: TRAINING_JOB_ALERT_STATUSES,
          },
        },
        targets: [
          new targets.SnsTopic(this.topic, {
            message: events.RuleTargetInput.fromText(
              `SageMaker training job ${events.EventField.fromPath('$.detail.TrainingJobName')} ended ${events.EventField.fromPath('$.detail.TrainingJobStatus')} (${events.EventField.fromPath('$.detail.SecondaryStatus')}): ${events.EventField.fromPath('$.detail.FailureReason')}`,
            ),
          }),
        ],
      });
    }
  }
}
