import type { AuditReport, PairKind } from './index.ts';

const KINDS: PairKind[] = ['exact', 're-encoded', 'mirrored'];

/** The human-readable summary the CLI prints. */
export function formatAuditSummary(report: AuditReport): string {
  const s = report.summary;
  const lines: string[] = [];
  lines.push(
    `${report.images} images in ${Object.keys(report.splits).join(', ')}; ` +
      `${s.clusters} clusters of copies hold ${s.imagesInClusters} images (${s.distinctScans} distinct scans)`,
  );
  lines.push('', `duplicate pairs (${KINDS.join(' / ')}):`);
  for (const [split, byLabel] of Object.entries(s.pairCounts).sort()) {
    for (const [label, counts] of Object.entries(byLabel).sort()) {
      const total = KINDS.reduce((n, k) => n + counts[k], 0);
      lines.push(
        `  ${split.padEnd(22)} ${label.padEnd(26)} ${String(total).padStart(5)}  (${KINDS.map((k) => counts[k]).join(' / ')})`,
      );
    }
  }
  if (report.trainSplit && report.testSplit) {
    const tests = s.imagesPerSplit[report.testSplit] ?? {};
    const totalTest = Object.values(tests).reduce((n, v) => n + (v ?? 0), 0);
    lines.push(
      '',
      `${report.testSplit} images with a copy in ${report.trainSplit}: ${report.leakyTest.length} of ${totalTest}`,
    );
    for (const [label, n] of Object.entries(tests).sort()) {
      const leaky = s.leakyTestPerLabel[label as keyof typeof s.leakyTestPerLabel] ?? 0;
      lines.push(`  ${label.padEnd(12)} ${String(leaky).padStart(4)} of ${n}`);
    }
  }
  lines.push('', `label conflicts: ${report.labelConflicts.length}`);
  for (const c of report.labelConflicts) {
    lines.push(`  ${c.paths.map((p, k) => `${p} (${c.labels[k]})`).join(', ')}`);
  }
  if (report.skipped.length > 0) {
    lines.push('', `skipped files: ${report.skipped.length}`);
    for (const f of report.skipped) lines.push(`  ${f.path}: ${f.reason}`);
  }
  const t = report.timing;
  lines.push(
    '',
    `took ${(t.totalMs / 1000).toFixed(1)} s (${t.decoded} decoded, ${t.thumbnailsFromCache} thumbnails from cache, ` +
      `${t.candidatePairs} candidate pairs${t.comparisonsFromCache ? ', comparisons from cache' : ''})`,
  );
  return lines.join('\n');
}
