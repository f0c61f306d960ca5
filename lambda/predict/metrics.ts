/**
 * The predict handler's one custom metric, `Responses` (Count) by status class, published in
 * CloudWatch Embedded Metric Format (EMF): the fields ride on the handler's structured log line
 * for that request, and CloudWatch Logs turns them into a metric. No extra log line, no SDK call,
 * no extra dependency. In Lambda the line goes to stdout (the log); in local mode, where the
 * handler runs inside the CLI, the same line goes to stderr (StderrLogger in lib/local/api.ts).
 *
 * The alarm and dashboard in lib/alarms.ts and lib/dashboard.ts read the same names from here.
 * The fields never carry the prediction (no label dimension): with LOG_PREDICTIONS=false (the
 * strict configuration) the log line, EMF included, says nothing about the scan's class.
 */

export const METRICS_NAMESPACE = 'BrainTumor/Predict';
export const RESPONSES_METRIC = 'Responses';
export const STATUS_CLASSES = ['2xx', '3xx', '4xx', '5xx'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

export function statusClass(status: number): StatusClass {
  if (status >= 500) return '5xx';
  if (status >= 400) return '4xx';
  if (status >= 300) return '3xx';
  return '2xx';
}

/**
 * The EMF fields for one response, to merge into that request's log line. `FunctionName` keeps
 * the metrics of two stacks in one account apart; it is the Lambda's name (`local` outside Lambda).
 */
export function responseMetricFields(
  status: number,
  functionName: string,
  now: number = Date.now(),
): Record<string, unknown> {
  return {
    _aws: {
      Timestamp: now,
      CloudWatchMetrics: [
        {
          Namespace: METRICS_NAMESPACE,
          Dimensions: [['FunctionName', 'StatusClass']],
          Metrics: [{ Name: RESPONSES_METRIC, Unit: 'Count' }],
        },
      ],
    },
    FunctionName: functionName,
    StatusClass: statusClass(status),
    [RESPONSES_METRIC]: 1,
  };
}
