import { runTrainingJob } from './job.ts';

/**
 * `main.ts train`. SageMaker sends SIGTERM on stop and spot interruption and kills the container
 * 120 s later: the first SIGTERM makes the loop checkpoint after its current step (seconds) and
 * exit; before training has started there is nothing worth saving, so it exits at once.
 */
export async function train(): Promise<number> {
  let stopRequested = false;
  let training = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopRequested || !training) {
      console.log(`${signal}: exiting`);
      process.exit(143);
    }
    stopRequested = true;
    console.log(`${signal}: saving a checkpoint after the current step, then exiting`);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    return await runTrainingJob({
      shouldStop: () => {
        training = true;
        return stopRequested;
      },
    });
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
