import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { DEFAULT_APPROVAL_THRESHOLDS } from '../lambda/model-registry/gate.ts';

/** The repository root: relative `datasetPath` values resolve against it, whatever the cwd. */
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Where the dataset lives when `datasetPath` is not given: beside the repository. */
export const DEFAULT_DATASET_PATH = '../shared/datasets/sartaj-brain-tumor-mri';

/**
 * SageMaker's own ceiling for a training job's MaxRuntime (28 days). The job runs under Step
 * Functions, not inside a CloudFormation custom resource, so `cdk deploy` does not wait for it.
 */
export const MAX_TRAINING_MINUTES = 28 * 24 * 60;

// `-c key=value` on the command line always gives strings, cdk.json gives JSON values: accept both.
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z.union([z.boolean(), z.stringbool()], { error: 'expected true or false' });
const trainingMinutes = int(10, MAX_TRAINING_MINUTES);
const fraction = z.coerce.number().min(0).max(1);
const instanceType = z
  .string()
  .regex(/^ml\.[a-z0-9-]+\.[a-z0-9]+$/, 'expected an instance type like ml.g4dn.xlarge');
const jsonOr = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => {
    if (typeof v !== 'string') return v;
    try {
      return JSON.parse(v);
    } catch {
      return v.split(',').map((s) => s.trim());
    }
  }, schema);

/** CloudWatch Logs accepts only these retention periods. */
const RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 3653];

/**
 * Every context key the app reads, with its default. Keep docs/infrastructure.md's table in
 * step with this schema.
 */
export const ConfigSchema = z
  .object({
    /** CloudFormation stack name; also prefixes training job names. */
    stackName: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9-]{0,60}$/, 'letters, digits and hyphens, starting with a letter')
      .default('BrainTumorDetection'),
    /** Image-folder dataset to upload; relative paths resolve against the repository root. */
    datasetPath: z.string().min(1).optional(),
    /** Sub-folders of the dataset used as the `train` and `test` channels. */
    datasetTrainDir: z.string().min(1).default('Training'),
    datasetTestDir: z.string().min(1).default('Testing'),

    trainingInstanceType: instanceType.default('ml.g4dn.xlarge'),
    trainingVolumeSizeGb: int(1, 16384).default(30),
    /** SageMaker stops the job here; the trainer's time limit is set to end before it (see TrainingPipeline). */
    trainingMaxRuntimeMinutes: trainingMinutes.default(180),
    /** Managed spot training (about 70% cheaper, may wait for capacity). */
    trainingUseSpot: bool.default(true),
    /** Spot only: capacity wait plus run time; must be >= trainingMaxRuntimeMinutes. */
    trainingMaxWaitMinutes: trainingMinutes.default(360),
    /** Passed to the trainer as SageMaker hyperparameters (values become strings). */
    trainingHyperparameters: jsonOr(
      z
        .record(
          z.string().min(1).max(256),
          z.union([z.string().max(2500), z.number(), z.boolean()]).transform(String),
        )
        .refine((r) => Object.keys(r).length <= 100, 'at most 100 hyperparameters'),
    ).default({ profile: 'full' }),
    /** Bump to start a fresh training job with unchanged inputs (e.g. after a failed job). */
    trainingRevision: int(0, 1_000_000).default(0),
    /**
     * Base image of the container (Docker build arg BASE_IMAGE); unset: the Dockerfile's default.
     * Pinned by digest, so an override is as reproducible as the default.
     */
    containerBaseImage: z
      .string()
      .regex(
        /^[^\s@]+@sha256:[0-9a-f]{64}$/,
        'expected an image pinned by digest: name[:tag]@sha256:<64 hex>',
      )
      .optional(),

    /**
     * The model registry's approval gate on the Testing evaluation: a model whose accuracy,
     * leak-free accuracy and every class recall reach these is Approved (and deployed); any other
     * is left PendingManualApproval.
     */
    approvalMinAccuracy: fraction.default(DEFAULT_APPROVAL_THRESHOLDS.accuracy),
    approvalMinLeakFreeAccuracy: fraction.default(DEFAULT_APPROVAL_THRESHOLDS.leakFreeAccuracy),
    approvalMinClassRecall: fraction.default(DEFAULT_APPROVAL_THRESHOLDS.classRecall),

    endpointInstanceType: instanceType.default('ml.c5.xlarge'),
    endpointMinInstances: int(1, 100).default(1),
    endpointMaxInstances: int(1, 100).default(2),
    /** Target-tracking set point: invocations per instance per minute. */
    endpointTargetInvocationsPerInstance: int(1, 100_000).default(100),
    /** Capture endpoint requests and responses to the bucket under `data-capture/`. */
    dataCapture: bool.default(false),
    dataCaptureSamplePercent: int(1, 100).default(100),

    /** `apiKey`: API key + usage plan; `iam`: SigV4-signed requests. Default `apiKey`; `strict` forces `iam`. */
    apiAuth: z.enum(['apiKey', 'iam']).optional(),
    apiRateLimit: z.coerce.number().positive().default(10),
    apiBurstLimit: int(0, 5000).default(20),
    apiQuotaPerDay: int(1, 100_000_000).default(10_000),
    apiIntegrationTimeoutSeconds: int(4, 29).default(29),
    /**
     * Origins allowed by CORS (JSON array or comma-separated). Default `*`; with `strict`, none
     * (no CORS headers) unless listed, and `*` is refused.
     */
    corsAllowOrigins: jsonOr(z.array(z.string().min(1)).min(1)).optional(),

    /** E-mail address subscribed to the alarm topic; none if unset. */
    alarmEmail: z.email().optional(),
    /** Alarm when the endpoint's p90 model latency exceeds this for 15 minutes. */
    modelLatencyAlarmMs: int(1, 600_000).default(2000),
    /** Alarm when the API's p90 latency (API Gateway `Latency`) exceeds this for 15 minutes. */
    apiLatencyAlarmMs: int(1, 60_000).default(5000),
    /** 5xx responses in 5 minutes that raise the API, predict-response and endpoint 5xx alarms. */
    serverErrorAlarmThreshold: int(1, 1_000_000).default(1),
    /** Alarm when endpoint CPU (average over the instance's vCPUs) stays above this for 15 minutes. */
    endpointCpuAlarmPercent: int(1, 100).default(90),
    /** Alarm when endpoint memory use stays above this for 15 minutes. */
    endpointMemoryAlarmPercent: int(1, 100).default(90),
    logRetentionDays: z.coerce
      .number()
      .refine((d) => RETENTION_DAYS.includes(d), `one of ${RETENTION_DAYS.join(', ')}`)
      .default(30),
    /**
     * `retain` keeps the data bucket on stack deletion; `destroy` empties and deletes it.
     * Default: removalPolicy.
     */
    bucketRemovalPolicy: z.enum(['retain', 'destroy']).optional(),
    /**
     * What `cdk destroy` does with what holds data: log groups (SageMaker's included), KMS keys
     * and, unless bucketRemovalPolicy says otherwise, the buckets. `destroy` is the dev setting:
     * nothing is left behind.
     */
    removalPolicy: z.enum(['retain', 'destroy']).default('retain'),
    /**
     * The HIPAA-minded configuration: customer-managed KMS keys (bucket, training volume and
     * output, endpoint storage, data capture, every log group), training and endpoint in an
     * isolated VPC with VPC endpoints, SigV4 auth, no `*` CORS, no prediction and no caller IP in
     * logs, and cdk-nag's HIPAA Security pack on synth. See docs/infrastructure.md.
     */
    strict: bool.default(false),
  })
  .superRefine((c, ctx) => {
    if (c.trainingUseSpot && c.trainingMaxWaitMinutes < c.trainingMaxRuntimeMinutes) {
      ctx.addIssue({
        code: 'custom',
        path: ['trainingMaxWaitMinutes'],
        message: `must be >= trainingMaxRuntimeMinutes (${c.trainingMaxRuntimeMinutes}) for spot training`,
      });
    }
    if (c.strict && c.apiAuth === 'apiKey') {
      ctx.addIssue({
        code: 'custom',
        path: ['apiAuth'],
        message: 'strict requires IAM (SigV4) auth: leave apiAuth unset or set it to iam',
      });
    }
    if (c.strict && c.corsAllowOrigins?.includes('*')) {
      ctx.addIssue({
        code: 'custom',
        path: ['corsAllowOrigins'],
        message: "strict refuses '*': list the allowed origins, or leave it unset for no CORS",
      });
    }
    if (c.endpointMaxInstances < c.endpointMinInstances) {
      ctx.addIssue({
        code: 'custom',
        path: ['endpointMaxInstances'],
        message: `must be >= endpointMinInstances (${c.endpointMinInstances})`,
      });
    }
  });

export type AppConfig = Omit<
  z.output<typeof ConfigSchema>,
  'bucketRemovalPolicy' | 'apiAuth' | 'corsAllowOrigins'
> & {
  /** The data bucket's removal policy: bucketRemovalPolicy when given, else removalPolicy. */
  bucketRemovalPolicy: 'retain' | 'destroy';
  /** apiAuth when given, else `iam` with strict and `apiKey` without. */
  apiAuth: 'apiKey' | 'iam';
  /** corsAllowOrigins when given, else `*`, or none (empty: no CORS headers) with strict. */
  corsAllowOrigins: string[];
  /** Absolute dataset folder. */
  datasetDir: string;
  /** True when datasetPath was not given (a missing default folder is a warning, not an error). */
  datasetIsDefault: boolean;
};

const KNOWN_KEYS = new Set(Object.keys(ConfigSchema.shape));

/**
 * Validates the app's context. CDK's own keys (feature flags `@aws-cdk/...`, `aws:cdk:...`,
 * cached lookups `a:b`) are ignored; any other unknown key is an error so a typo cannot silently
 * fall back to a default.
 */
export function parseConfig(context: Record<string, unknown>): AppConfig {
  const ours: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, value] of Object.entries(context)) {
    if (key.startsWith('@') || key.includes(':')) continue;
    if (KNOWN_KEYS.has(key)) ours[key] = value;
    else problems.push(`${key}: unknown context key (known keys: ${[...KNOWN_KEYS].join(', ')})`);
  }
  const parsed = ConfigSchema.safeParse(ours);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(`${issue.path.join('.') || '(context)'}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !parsed.success) {
    throw new Error(
      `invalid CDK context (cdk.json "context" or -c key=value):\n  - ${problems.join('\n  - ')}`,
    );
  }
  const datasetDir = path.resolve(REPO_ROOT, parsed.data.datasetPath ?? DEFAULT_DATASET_PATH);
  return {
    ...parsed.data,
    bucketRemovalPolicy: parsed.data.bucketRemovalPolicy ?? parsed.data.removalPolicy,
    apiAuth: parsed.data.apiAuth ?? (parsed.data.strict ? 'iam' : 'apiKey'),
    corsAllowOrigins: parsed.data.corsAllowOrigins ?? (parsed.data.strict ? [] : ['*']),
    datasetDir,
    datasetIsDefault: parsed.data.datasetPath === undefined,
  };
}

/** Whether the configured dataset folder exists (explicit paths that do not are an error). */
export function datasetExists(config: AppConfig): boolean {
  if (existsSync(config.datasetDir)) return true;
  if (!config.datasetIsDefault) throw new Error(`datasetPath ${config.datasetDir} does not exist`);
  return false;
}
