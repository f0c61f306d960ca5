/**
 * The container entrypoint. SageMaker runs the image as `docker run IMAGE train` for training
 * jobs and `docker run IMAGE serve` for endpoints; local mode runs this same file as a process.
 */
const mode = process.argv[2];

if (mode === 'train') {
  const { train } = await import('./train/entrypoint.ts');
  process.exitCode = await train();
} else if (mode === 'serve') {
  const { serve } = await import('./serve/entrypoint.ts');
  await serve();
} else {
  console.error(`usage: main (train|serve): unknown mode ${JSON.stringify(mode ?? '')}`);
  process.exitCode = 2;
}
