import { z } from 'zod';

/** The minimum scores for automatic approval (fractions, 0-1). */
export interface ApprovalThresholds {
  readonly accuracy: number;
  readonly leakFreeAccuracy: number;
  readonly classRecall: number;
}

/** The Testing evaluation as the trainer's `test:*` metrics report it (undefined: not reported). */
export interface TestEvaluation {
  readonly accuracy?: number;
  readonly balancedAccuracy?: number;
  readonly leakFreeAccuracy?: number;
  readonly recall: Readonly<Record<string, number | undefined>>;
}

export type ApprovalStatus = 'Approved' | 'PendingManualApproval';

/** The gate's defaults (CDK context approvalMin*): what issue 12 asks of a model worth serving. */
export const DEFAULT_APPROVAL_THRESHOLDS: ApprovalThresholds = {
  accuracy: 0.8,
  leakFreeAccuracy: 0.4,
  classRecall: 0.5,
};

export const ThresholdsSchema = z.object({
  accuracy: z.number().min(0).max(1),
  leakFreeAccuracy: z.number().min(0).max(1),
  classRecall: z.number().min(0).max(1),
});

/** SageMaker's FinalMetricDataList (metric names from lib/training-metrics.ts) as an evaluation. */
export function evaluationFromMetrics(
  metrics: ReadonlyArray<{ MetricName?: string; Value?: number }>,
  labels: readonly string[],
): TestEvaluation {
  const value = (name: string) => {
    const v = metrics.find((m) => m.MetricName === name)?.Value;
    return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
  };
  return {
    accuracy: value('test:accuracy'),
    balancedAccuracy: value('test:balanced_accuracy'),
    leakFreeAccuracy: value('test:leak_free_accuracy'),
    recall: Object.fromEntries(labels.map((l) => [l, value(`test:recall:${l}`)])),
  };
}

/**
 * Approved when every score reaches its threshold; otherwise PendingManualApproval with the
 * reasons, so a person decides. A missing score (no test channel, a job that ended before its
 * evaluation) never approves.
 */
export function decideApproval(
  evaluation: TestEvaluation,
  thresholds: ApprovalThresholds,
): { status: ApprovalStatus; reasons: string[] } {
  const checks: [string, number | undefined, number][] = [
    ['Testing accuracy', evaluation.accuracy, thresholds.accuracy],
    ['leak-free accuracy', evaluation.leakFreeAccuracy, thresholds.leakFreeAccuracy],
    ...Object.entries(evaluation.recall).map(([label, v]): [string, number | undefined, number] => [
      `${label} recall`,
      v,
      thresholds.classRecall,
    ]),
  ];
  const reasons = checks.flatMap(([name, value, min]) => {
    if (value === undefined) return [`${name} was not reported`];
    return value < min ? [`${name} ${pct(value)} < ${pct(min)}`] : [];
  });
  return { status: reasons.length === 0 ? 'Approved' : 'PendingManualApproval', reasons };
}

/** The same evaluation as the trainer's evaluation.json writes it (local mode, `brain-tumor evaluate`). */
export function evaluationFromReport(
  report: {
    overall?: { accuracy: number; balancedAccuracy: number; perClass?: Record<string, { recall: number }> };
    leakFree?: { accuracy: number };
  },
  labels: readonly string[],
): TestEvaluation {
  return {
    accuracy: report.overall?.accuracy,
    balancedAccuracy: report.overall?.balancedAccuracy,
    leakFreeAccuracy: report.leakFree?.accuracy,
    recall: Object.fromEntries(labels.map((l) => [l, report.overall?.perClass?.[l]?.recall])),
  };
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
