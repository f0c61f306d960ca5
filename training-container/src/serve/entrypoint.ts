export async function serve(): Promise<void> {
  throw new Error('serve entrypoint: not implemented yet');
}
