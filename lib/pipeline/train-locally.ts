// Temporary: the trainer's local runner moves here from bin/commands/train.ts.
export { trainLocally } from '../../bin/commands/train.ts';
