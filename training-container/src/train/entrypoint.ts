export async function train(): Promise<number> {
  throw new Error('train entrypoint: not implemented yet');
}
