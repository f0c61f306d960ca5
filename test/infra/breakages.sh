#!/bin/bash
# Breaks the CDK app one way at a time and runs the infra assertion tests with snapshot updates
# allowed: every line must print at least one failing test. Not part of `npm test` (it edits
# sources for a minute each); run it after changing lib/ or the assertions:
#   test/infra/breakages.sh          (then `npx vitest run -u test/infra/stack.test.ts` to restore the snapshot)
# Each `run` line: file, exact text to replace (first occurrence), replacement, what it breaks.
set -u
cd "$(dirname "$0")/../.."
BAK=$(mktemp)
run() {
  local file="$1" from="$2" to="$3" what="$4"
  cp "$file" "$BAK"
  python3 - "$file" "$from" "$to" <<'PY'
import sys,re
f,a,b=sys.argv[1:4]
s=open(f).read()
n=s.count(a)
if n==0: print("PATTERN NOT FOUND"); sys.exit(1)
open(f,'w').write(s.replace(a,b,1))
PY
  if [ $? -ne 0 ]; then echo "SKIP $what"; cp "$BAK" "$file"; return; fi
  out=$(timeout 600 npx vitest run -u test/infra/mlops.test.ts test/infra/stack.test.ts 2>&1)
  # A failing test prints ×; a synth that throws fails the whole file (FAIL ... [file]).
  fails=$(echo "$out" | grep -E "^\s+×|FAIL .*\]" | sed 's/^ *× //' | cut -c1-110 | tr '\n' ';')
  echo "BREAK: $what => ${fails:-NO FAILURE}"
  cp "$BAK" "$file"
}
run lib/sagemaker-role.ts "  image.repository.grantPull(role);" "" "no image pull grant for SageMaker roles"
run lib/training-pipeline.ts "export const TEST_CHANNEL = 'test';" "export const TEST_CHANNEL = 'testing';" "test channel renamed"
run lib/training-pipeline.ts "      time_limit_minutes: given.time_limit_minutes ?? String(trainerTimeLimitMinutes(maxRuntime.toMinutes()))," "" "trainer time limit not set from MaxRuntime"
run lib/training-pipeline.ts "    this.role.grantPassRole(stateMachine.role);" "" "state machine cannot pass the job role"
run lib/training-pipeline.ts "properties: { StateMachineArn: this.stateMachine.stateMachineArn, JobName: this.jobName }," "properties: { StateMachineArn: this.stateMachine.stateMachineArn, JobName: this.jobName, Image: props.image.imageUri }," "image URI in the training trigger"
run lib/model-deployment.ts "        RetainAllVariantProperties: true," "" "RetainAllVariantProperties dropped"
run lib/model-deployment.ts "          AutoRollbackConfiguration: { Alarms: this.rollbackAlarms.map((a) => ({ AlarmName: a.alarmName })) }," "" "no auto-rollback alarms"
run lib/model-deployment.ts "        .when(sfn.Condition.booleanEquals('\$.prepared.instanceTypeChanged', true), deregister)" "" "instance-type change without deregistering autoscaling"
run lib/model-registry.ts "        APPROVAL_THRESHOLDS: JSON.stringify(props.thresholds)," "        APPROVAL_THRESHOLDS: JSON.stringify({ accuracy: 0, leakFreeAccuracy: 0, classRecall: 0 })," "approval gate thresholds ignored"
run lib/model-deployment.ts "    modelRole.grantPassRole(prepareFn.grantPrincipal);" "" "Prepare cannot pass the model role"
run lib/node-function.ts "lambda.Runtime.NODEJS_22_X" "lambda.Runtime.NODEJS_20_X" "Lambda runtime back to Node 20"
run lib/predict-api.ts "timeout: Duration.seconds(Math.max(3, timeout.toSeconds() - 1))," "timeout: Duration.seconds(30)," "predict Lambda timeout above the API's 29 s"
echo DONE
