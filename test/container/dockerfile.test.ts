import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig, REPO_ROOT } from '../../lib/config.ts';
import { LAMBDA_RUNTIME } from '../../lib/node-function.ts';

/**
 * The image is built only by `cdk deploy` (Docker, network), never in tests: these checks read
 * the Dockerfile so that what makes a rebuild reproducible cannot slip away unnoticed.
 */
const DIR = path.join(REPO_ROOT, 'training-container');

interface Instruction {
  op: string;
  args: string;
}

/** Instructions with continuation lines joined and comments dropped. */
function instructions(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [op, ...rest] = line.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(' ') };
    });
}

const dockerfile = instructions(readFileSync(path.join(DIR, 'Dockerfile'), 'utf8'));
const runs = dockerfile.filter((i) => i.op === 'RUN').map((i) => i.args);

/** The default of a global or stage ARG. */
function argDefault(name: string): string | undefined {
  for (const { op, args } of dockerfile) {
    const match = op === 'ARG' ? new RegExp(`^${name}=(\\S+)$`).exec(args) : null;
    if (match) return match[1];
  }
  return undefined;
}

describe('training-container/Dockerfile', () => {
  it('installs dependencies with npm ci from its own lockfile, never npm install', () => {
    expect(dockerfile).toContainEqual({ op: 'COPY', args: 'package.json package-lock.json ./' });
    expect(runs.some((r) => /\bnpm ci\b/.test(r))).toBe(true);
    for (const run of runs) expect(run).not.toMatch(/\bnpm (install|i|add)\b/);
  });

  it('takes its base image by digest, through the BASE_IMAGE build arg', () => {
    const base = argDefault('BASE_IMAGE');
    expect(base).toMatch(/^nvidia\/cuda:[\w.-]+@sha256:[0-9a-f]{64}$/);
    const stages = new Set<string>();
    for (const { op, args } of dockerfile.filter((i) => i.op === 'FROM')) {
      const [image, as, name] = args.split(/\s+/);
      // Every stage starts from the pinned base or from an earlier stage.
      expect(/^\$\{BASE_IMAGE\}$/.test(image) || stages.has(image), `${op} ${args}`).toBe(true);
      if (as?.toUpperCase() === 'AS') stages.add(name);
    }
  });

  it('runs the Node major the Lambdas run, 22', () => {
    const major = Number(argDefault('NODE_VERSION')?.split('.')[0]);
    expect(major).toBe(22);
    expect(LAMBDA_RUNTIME.name).toBe(`nodejs${major}.x`);
  });

  it("checks libtensorflow's SHA-256 instead of letting tfjs-node-gpu's install script fetch it", () => {
    expect(runs.some((r) => r.includes('--ignore-scripts') && /\bnpm ci\b/.test(r))).toBe(true);
    expect(argDefault('LIBTENSORFLOW_SHA256')).toMatch(/^[0-9a-f]{64}$/);
    expect(argDefault('LIBTENSORFLOW_URL')).toMatch(/libtensorflow-gpu-linux-x86_64-2\.9\.1\.tar\.gz$/);
    expect(runs.some((r) => /"\$\{LIBTENSORFLOW_SHA256\}/.test(r) && r.includes('sha256sum -c'))).toBe(true);
  });

  it('has a lockfile for exactly package.json plus what the image adds (npm ci would refuse otherwise)', () => {
    const pkg = JSON.parse(readFileSync(path.join(DIR, 'package.json'), 'utf8'));
    const lock = JSON.parse(readFileSync(path.join(DIR, 'package-lock.json'), 'utf8'));
    const added: Record<string, string> = {};
    for (const run of runs) {
      for (const m of run.matchAll(/"dependencies\.([^=]+)=([^"]+)"/g)) added[m[1]] = m[2];
    }
    expect(Object.keys(added).sort()).toEqual(['@tensorflow/tfjs-node-gpu', 'tsx']);
    expect(lock.packages[''].dependencies).toEqual({ ...pkg.dependencies, ...added });
    for (const [name, version] of Object.entries(added)) {
      expect(lock.packages[`node_modules/${name}`]?.version).toBe(version);
    }
  });
});

describe('containerBaseImage (CDK context)', () => {
  it('accepts an image pinned by digest and refuses a bare tag', () => {
    const digest = `nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04@sha256:${'a'.repeat(64)}`;
    expect(parseConfig({ containerBaseImage: digest }).containerBaseImage).toBe(digest);
    expect(parseConfig({}).containerBaseImage).toBeUndefined();
    expect(() =>
      parseConfig({ containerBaseImage: 'nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04' }),
    ).toThrow(/containerBaseImage/);
  });
});
