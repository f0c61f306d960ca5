import path from 'node:path';

/**
 * The SageMaker container filesystem contract. On AWS the root is `/opt/ml`; local mode and tests
 * point `OPT_ML_ROOT` at a temporary folder. Nothing else differs between the two.
 */
export const OPT_ML_ENV = 'OPT_ML_ROOT';

/** The input channels the trainer reads: images to train on, and the optional evaluation set. */
export const CHANNELS = { train: 'train', test: 'test' } as const;

export interface OptMlPaths {
  root: string;
  hyperparameters: string;
  inputDataConfig: string;
  resourceConfig: string;
  /** Folder of one input channel, e.g. `channel('train')`. */
  channel: (name: string) => string;
  model: string;
  outputData: string;
  failure: string;
  checkpoints: string;
}

export function optMlPaths(root: string = process.env[OPT_ML_ENV] || '/opt/ml'): OptMlPaths {
  const abs = path.resolve(root);
  return {
    root: abs,
    hyperparameters: path.join(abs, 'input/config/hyperparameters.json'),
    inputDataConfig: path.join(abs, 'input/config/inputdataconfig.json'),
    resourceConfig: path.join(abs, 'input/config/resourceconfig.json'),
    channel: (name) => path.join(abs, 'input/data', name),
    model: path.join(abs, 'model'),
    outputData: path.join(abs, 'output/data'),
    failure: path.join(abs, 'output/failure'),
    checkpoints: path.join(abs, 'checkpoints'),
  };
}
