import { type App, Validations } from 'aws-cdk-lib';
import cdkNag from 'cdk-nag';
import { BrainTumorStack } from './brain-tumor-stack.ts';
import { datasetExists, parseConfig } from './config.ts';
import { inspectDataset } from './dataset-delivery.ts';

/**
 * Builds the whole app from its context: validated config, dataset hash (streamed once), the
 * stack, and cdk-nag's AWS Solutions checks, plus its HIPAA Security checks for the strict
 * configuration (synth fails on any unacknowledged finding). bin/app.ts and the tests both call this.
 */
export async function buildApp(app: App): Promise<BrainTumorStack> {
  const config = parseConfig(app.node.getAllContext());
  const dataset = datasetExists(config)
    ? await inspectDataset(config.datasetDir, [config.datasetTrainDir, config.datasetTestDir])
    : undefined;
  const stack = new BrainTumorStack(app, config.stackName, { config, dataset });
  Validations.of(app).addPlugins(
    new cdkNag.AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }),
  );
  if (config.strict) {
    Validations.of(app).addPlugins(
      new cdkNag.HIPAASecurityChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }),
    );
  }
  return stack;
}
