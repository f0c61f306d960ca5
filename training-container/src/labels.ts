/** The four classes, in the model's output order. Every artifact and API uses this order. */
export const LABELS = ['glioma', 'meningioma', 'notumor', 'pituitary'] as const;
export type Label = (typeof LABELS)[number];

/** Human-readable names for reports and the CLI. */
export const DISPLAY_NAMES: Record<Label, string> = {
  glioma: 'glioma',
  meningioma: 'meningioma',
  notumor: 'no tumor',
  pituitary: 'pituitary',
};

const FOLDER_ALIASES: Record<string, Label> = {
  glioma: 'glioma',
  glioma_tumor: 'glioma',
  meningioma: 'meningioma',
  meningioma_tumor: 'meningioma',
  notumor: 'notumor',
  no_tumor: 'notumor',
  'no tumor': 'notumor',
  pituitary: 'pituitary',
  pituitary_tumor: 'pituitary',
};

/**
 * Maps a class folder name to its label. Both the short (`glioma`) and the
 * SARTAJ style (`glioma_tumor`) names are accepted; returns undefined for anything else.
 */
export function labelFromFolder(name: string): Label | undefined {
  return FOLDER_ALIASES[name.trim().toLowerCase().replace(/-/g, '_')];
}
