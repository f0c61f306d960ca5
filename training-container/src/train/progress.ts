import cliProgress from 'cli-progress';

/**
 * A per-epoch progress bar, only when stdout is a terminal: in SageMaker and CloudWatch the
 * per-epoch log lines are the progress, and bar redraws would only add noise.
 */
export interface Progress {
  start(title: string, total: number, startAt: number): void;
  update(step: number, loss: number): void;
  /** Prints a log line without tearing the bar. */
  log(line: string, print: (line: string) => void): void;
  stop(): void;
}

export function createProgress(enabled = Boolean(process.stdout.isTTY)): Progress {
  if (!enabled) {
    return { start() {}, update() {}, log: (line, print) => print(line), stop() {} };
  }
  let bar: cliProgress.SingleBar | undefined;
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  return {
    start(title, total, startAt) {
      stop();
      bar = new cliProgress.SingleBar(
        {
          format: `${title} [{bar}] {value}/{total} steps | loss {loss} | eta {eta_formatted}`,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, startAt, { loss: '-' });
    },
    update(step, loss) {
      bar?.update(step, { loss: loss.toFixed(4) });
    },
    log(line, print) {
      stop();
      print(line);
    },
    stop,
  };
}
