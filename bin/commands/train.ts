import { type Command, Option } from 'commander';
import { trainLocally } from '../../lib/pipeline/train-locally.ts';
import { PROFILES, type Profile } from '../../training-container/src/train/hyperparameters.ts';

function collectSetting(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new Error(`--set ${value}: expected key=value, e.g. --set epochs=3`);
  return { ...previous, [value.slice(0, eq).trim()]: value.slice(eq + 1).trim() };
}

export function register(program: Command): void {
  program
    .command('train')
    .description(
      "train the classifier locally: runs the container's train entrypoint on a temporary /opt/ml tree, then packs model.tar.gz as SageMaker does",
    )
    .requiredOption(
      '--data <dir>',
      'training images: one sub-folder per class (glioma or glioma_tumor style)',
    )
    .option('--test <dir>', 'test images (same layout): adds evaluation.json and charts to the output')
    .requiredOption('--out <dir>', 'output folder: model.tar.gz, model/, output/')
    .addOption(new Option('--profile <profile>', 'hyperparameter profile').choices(PROFILES).default('quick'))
    .option(
      '--set <key=value>',
      'override a hyperparameter (repeatable), e.g. --set epochs=3',
      collectSetting,
      {},
    )
    .action(
      async (opts: {
        data: string;
        test?: string;
        out: string;
        profile: Profile;
        set: Record<string, string>;
      }) => {
        const result = await trainLocally({
          data: opts.data,
          test: opts.test,
          out: opts.out,
          profile: opts.profile,
          hyperparameters: opts.set,
        });
        console.log(
          `model:  ${result.modelTarball}\n        ${result.modelDir}\noutput: ${result.outputDir}`,
        );
      },
    );
}
