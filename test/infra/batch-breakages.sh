#!/bin/bash
# Breaks the batch transform (lib/batch-transform.ts, lambda/batch-transform/, lib/pipeline/batch-aws.ts)
# one way at a time and runs the tests that guard it: every line must print at least one failing
# test. Not part of `npm test` (it edits sources for a minute each); run it after changing the
# batch code or its assertions:   test/infra/batch-breakages.sh
# Each `run` line: tests (infra | unit), file, exact text to replace (first occurrence), replacement, what it breaks.
set -u
cd "$(dirname "$0")/../.."
BAK=$(mktemp)
run() {
  local tests="$1" file="$2" from="$3" to="$4" what="$5"
  cp "$file" "$BAK"
  python3 - "$file" "$from" "$to" <<'PY'
import sys
f,a,b=sys.argv[1:4]
s=open(f).read()
if s.count(a)==0: print("PATTERN NOT FOUND"); sys.exit(1)
open(f,'w').write(s.replace(a,b,1))
PY
  if [ $? -ne 0 ]; then echo "SKIP $what"; cp "$BAK" "$file"; return; fi
  if [ "$tests" = infra ]; then files=test/infra/batch-transform.test.ts; else files="test/mlops/batch-transform.test.ts test/mlops/batch-aws.test.ts"; fi
  out=$(timeout 900 npx vitest run $files 2>&1)
  # A failing test prints ×; a synth that throws (cdk-nag) fails a whole suite (FAIL ... > describe).
  fails=$(echo "$out" | grep -E "^\s+×|^ FAIL " | sed 's/^ *× //; s/^ FAIL  *//' | cut -c1-110 | sort -u | tr '\n' ';')
  echo "BREAK: $what => ${fails:-NO FAILURE}"
  cp "$BAK" "$file"
}
B=lib/batch-transform.ts
run infra $B "            ...(key ? { KmsKeyId: key.keyArn } : {})," "" "strict: transform output without the data key"
run infra $B "            ...(key && encryptVolume ? { VolumeKmsKeyId: key.keyArn } : {})," "" "strict: volume without the data key"
run infra $B "            ...(key && encryptVolume ? { VolumeKmsKeyId: key.keyArn } : {})," "            ...(key ? { VolumeKmsKeyId: key.keyArn } : {})," "strict: volume key on local-storage instance types too"
run infra $B "        resources: [props.bucket.arnForObjects(\`\${OUTPUT_ROOT}*/raw/*\`)]," "        resources: [props.bucket.arnForObjects('*')]," "model role may write anywhere in the bucket"
run infra $B "            resourceName: \`\${this.jobNamePrefix}*\`," "            resourceName: '*'," "state machine may create/stop any transform job"
run infra $B "  private grantTransformTask(props: BatchTransformProps, stack: Stack): void {" "  private grantTransformTask(props: BatchTransformProps, stack: Stack): void {"$'\n'"    props.deployment.modelRole.grantPassRole(this.stateMachine.role);" "state machine may pass the model role"
run infra $B "    if (props.encryptionKey) grantKeyForAwsResources(props.encryptionKey, this.stateMachine.role);" "" "strict: state machine cannot grant the key to SageMaker"
run infra $B "            AssembleWith: 'Line'," "            AssembleWith: 'None'," "answers not one per line"
run infra $B "          Environment: { SAGEMAKER_BATCH: 'true' }," "" "container not told it is in a transform job (a bad image would fail the job)"
run infra $B "        maxInputBytesPerBatch: MAX_BATCH_BYTES," "" "no byte cap on a collector's batch"
run infra $B "'s3:GetObject'], ['raw/*']" "'s3:GetObject'], ['*']" "collector may read every run folder"
run infra $B "        conditions: { StringLike: { 's3:prefix': [\`\${OUTPUT_ROOT}*\`] } }," "" "summary step may list the whole bucket"
run infra $B "        maxItemsPerBatch: props.itemsPerBatch ?? 1000," "        maxItemsPerBatch: props.itemsPerBatch ?? 10000," "batches of 10,000 (over 256 KiB)"
run infra $B "      maxConcurrencyPath: sfn.JsonPath.stringAt('\$.plan.collectConcurrency')," "" "unbounded collector concurrency"
run infra $B "        resources: [deployment.endpointArn]," "        resources: ['*']," "Plan may describe any endpoint"
run infra $B "      vpc,
    });
    this.grantObjects(collect" "    });
    this.grantObjects(collect" "strict: collector outside the VPC"
run infra $B "    if (props.encryptionKey) props.encryptionKey.grant(role, 'kms:Encrypt', 'kms:GenerateDataKey');" "" "strict: model role cannot encrypt the output"
run infra $B "      { errors: ['NoDeployedModel'], resultPath: '\$.error' }," "      { errors: ['States.ALL'], resultPath: '\$.error' }," "every Plan error reported as NoDeployedModel"
run infra lib/brain-tumor-stack.ts "      transformJobs: true," "" "no retention on /aws/sagemaker/TransformJobs"
I=lambda/batch-transform/input.ts
run infra $I "  images: { contentType: 'application/x-image', splitType: 'None' }," "  images: { contentType: 'application/x-image', splitType: 'Line' }," "images split by line"
run unit $I "  images: { contentType: 'application/x-image', splitType: 'None' }," "  images: { contentType: 'image/jpeg', splitType: 'None' }," "images sent as image/jpeg only"
run unit $I "  if (executionName.length <= room && JOB_NAME.test(plain)) return plain;" "  return plain.slice(0, MAX_JOB_NAME);" "job names not made valid"
run unit $I "    if ((input.format ?? 'images') === 'images' && input.batchStrategy === 'MultiRecord') {" "    if (false) {" "MultiRecord accepted for images"
C=lambda/batch-transform/collect.ts
run unit $C "  const below = key.startsWith(rawPrefix) ? key.slice(rawPrefix.length) : key;" "  const below = key;" "file names not relative to the input prefix"
run unit $C "  if (error && typeof error === 'object' && typeof error.code === 'string') {" "  if (false) {" "container error rows not counted by code"
run unit $C "      rows.push(errorRow(name, MALFORMED, \`line \${i + 1} is not JSON\`));
      continue;" "      throw new Error('not JSON');" "a malformed .out crashes the collector"
run unit $C "    if ((err as { name?: string }).name === 'NoSuchKey') return undefined;" "" "a vanished .out crashes the collector"
run unit $C "    if (this.size >= PartWriter.PART_BYTES) await this.flush();" "" "parts of any size held in memory"
P=lambda/batch-transform/plan.ts
run unit $P "    encryptVolume: env.ENCRYPT_VOLUME === 'true' && !hasInstanceStorage(plan.instanceType)," "    encryptVolume: env.ENCRYPT_VOLUME === 'true'," "strict: volume key on g4dn (SageMaker refuses it)"
run unit $P "    if (isNotFound(err)) {" "    if (false) {" "a missing endpoint is not NoDeployedModel"
run unit $P "  if (status !== 'InService' || !endpoint.EndpointConfigName) {" "  if (!endpoint.EndpointConfigName) {" "an endpoint mid-update is used"
run unit $P "  const modelName = config.ProductionVariants?.find((v) => v.VariantName === variantName)?.ModelName;" "  const modelName = config.ProductionVariants?.[0]?.ModelName;" "the first variant, not AllTraffic"
S=lambda/batch-transform/summarize.ts
run unit $S "    token = page.IsTruncated ? page.NextContinuationToken : undefined;" "    token = undefined;" "summary reads only the first 1,000 parts"
A=lib/pipeline/batch-aws.ts
run unit $A "  const parsed = BatchInputSchema.safeParse(JSON.parse(JSON.stringify(input)));" "  const parsed = { success: true as const, error: undefined as never };" "CLI sends inputs the state machine refuses"
run unit $A "    nextToken = page.nextToken;" "    nextToken = undefined;" "state machine looked up on the first page only"
echo DONE
