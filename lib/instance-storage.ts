/**
 * Families whose instances carry local NVMe instance storage although their name has no `d`
 * (`g4dn`, `p4d`, `c5d`, `m6id` ... are recognised by the `d`).
 */
const LOCAL_STORAGE_FAMILIES = new Set([
  'g5',
  'g6',
  'g6e',
  'gr6',
  'p5',
  'p5e',
  'p5en',
  'p6',
  'trn1',
  'trn1n',
  'trn2',
]);

/**
 * Whether a SageMaker instance type (`ml.<family>.<size>`) has local instance storage. SageMaker
 * then mounts that storage instead of an EBS volume and encrypts it with the instance's hardware
 * module, and it refuses a customer-managed key for it: `ResourceConfig.VolumeKmsKeyId`
 * (CreateTrainingJob) and the endpoint config's `KmsKeyId` (CreateEndpointConfig) must be left
 * out for such types. Families follow AWS's "Instance store volumes" list; a family not known
 * here is taken as EBS-only.
 */
export function hasInstanceStorage(instanceType: string): boolean {
  const family = instanceType.split('.')[1] ?? '';
  if (LOCAL_STORAGE_FAMILIES.has(family)) return true;
  // The attribute letters after the generation digit: `d` means local NVMe (g4dn, p3dn, c6id).
  const attributes = /^[a-z]+\d+([a-z-]*)$/.exec(family)?.[1] ?? '';
  return attributes.includes('d');
}
