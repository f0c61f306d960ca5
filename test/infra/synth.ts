import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../../lib/app.ts';
import type { BrainTumorStack } from '../../lib/brain-tumor-stack.ts';
import { REPO_ROOT } from '../../lib/config.ts';

/**
 * A tiny image-folder dataset (2 splits x 2 classes x 1 file) with fixed bytes, so its content
 * hash, and with it every S3 prefix and the job name, is the same on every run. The files are
 * never decoded at synth time, so a few bytes stand in for images.
 */
export async function tinyDataset(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'btd-infra-data-'));
  for (const split of ['Training', 'Testing']) {
    for (const cls of ['glioma_tumor', 'no_tumor']) {
      await mkdir(path.join(dir, split, cls), { recursive: true });
      await writeFile(path.join(dir, split, cls, 'a.jpg'), `${split}/${cls}`);
    }
  }
  await writeFile(path.join(dir, 'README.md'), 'not part of the upload');
  return dir;
}

/** The feature flags and context of cdk.json, as the CLI passes them. */
export async function cdkJsonContext(): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path.join(REPO_ROOT, 'cdk.json'), 'utf8')).context;
}

export interface Synth {
  app: App;
  stack: BrainTumorStack;
  template: Template;
}

/** Builds the app as `cdk synth` would (cdk.json feature flags + extra context) and synthesizes it. */
export async function synth(context: Record<string, unknown>): Promise<Synth> {
  const outdir = await mkdtemp(path.join(tmpdir(), 'btd-infra-out-'));
  const app = new App({ outdir, context: { ...(await cdkJsonContext()), ...context } });
  const stack = await buildApp(app);
  return { app, stack, template: Template.fromStack(stack) };
}

/**
 * The template with everything that changes when code (not infrastructure) changes replaced:
 * asset hashes (Lambda bundles, the container image), the job-name digest (training code) and
 * the endpoint deployment's settings digest (the image's hash).
 */
export function stableTemplate(template: Template): unknown {
  const json = JSON.stringify(template.toJSON(), null, 1)
    .replace(/[0-9a-f]{64}/g, '<asset-hash>')
    .replace(/braintumordetection-[0-9a-f]{20}/g, 'braintumordetection-<job-digest>')
    // The endpoint deployment's trigger hashes the image asset hash too.
    .replace(/"Settings": "[0-9a-f]{20}"/g, '"Settings": "<settings-digest>"')
    // The web page (lib/web-page.ts) is inlined in its method, and the API's deployment id hashes
    // every method: editing web/ must not churn the snapshot (test/infra/web-page.test.ts checks it).
    .replace(/base64Decode\(\\"[A-Za-z0-9+/=]+\\"\)/g, 'base64Decode(\\"<web page>\\")')
    .replace(/(ApiDeployment[0-9A-F]{8})[0-9a-f]{32,40}/g, '$1<methods-digest>');
  return JSON.parse(json);
}

/** Joins a `Fn::Join` (or plain string) into text, writing every other token as `TOKEN`. */
export function joinTokens(value: unknown): string {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  return join ? join[1].map(joinTokens).join(join[0]) : 'TOKEN';
}

// biome-ignore lint/suspicious/noExplicitAny: templates are untyped JSON; tests index into them freely.
type CfnResource = { Properties: Record<string, any>; [key: string]: unknown };

/** The one resource of `type` whose logical id starts with `idPrefix`; fails the test otherwise. */
export function resource(template: Template, type: string, idPrefix = ''): [string, CfnResource] {
  const found = Object.entries(template.findResources(type)).filter(([id]) => id.startsWith(idPrefix));
  if (found.length !== 1) throw new Error(`expected one ${type} ${idPrefix}*, found ${found.length}`);
  return found[0] as [string, CfnResource];
}
