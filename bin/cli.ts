import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';

/**
 * Each file in bin/commands exports `register(program)` that adds one subcommand; the
 * commands themselves are thin: they parse options and call code in lib/ or training-container/.
 */
export interface CommandModule {
  register: (program: Command) => void;
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('brain-tumor')
    .description('Train, evaluate and serve the brain-tumor MRI classifier, locally or on AWS.')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'commands');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.ts') && !f.startsWith('_')).sort();
  for (const file of files) {
    const mod = (await import(path.join(dir, file))) as CommandModule;
    mod.register(program);
  }
  await program.parseAsync(argv);
}

// The AWS SDK warns on every start that its 2027 releases need Node 22; say it once in the README
// instead of in front of every command's output. Other warnings print as usual.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (!w.message.includes('NodeVersionSupportWarning')) console.error(`${w.name}: ${w.message}`);
});

try {
  await main(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version exit 0; usage errors were already printed by commander.
    process.exit(err.exitCode);
  }
  const message = err instanceof Error ? err.message : String(err);
  console.error(`brain-tumor: error: ${message}`);
  if (process.env.BRAIN_TUMOR_DEBUG && err instanceof Error) console.error(err.stack);
  process.exit(1);
}
