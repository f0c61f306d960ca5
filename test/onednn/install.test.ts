import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The addon's install step must tell the truth in one line: why it did not build and the command
 * that fixes it. Run from a copy of the package, so the real build/ is never touched.
 */
const PACKAGE = path.resolve('training-container/native/onednn');

function copyPackage(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'onednn-install-'));
  for (const f of ['install.cjs', 'dnnl-location.cjs', 'report.cjs'])
    cpSync(path.join(PACKAGE, f), path.join(dir, f));
  return dir;
}

/** A fake oneDNN prefix whose dnnl_version.h says `major`. */
function fakePrefix(major: number): string {
  const prefix = mkdtempSync(path.join(os.tmpdir(), 'onednn-prefix-'));
  const inc = path.join(prefix, 'include', 'oneapi', 'dnnl');
  mkdirSync(inc, { recursive: true });
  writeFileSync(path.join(inc, 'dnnl.hpp'), '');
  writeFileSync(
    path.join(inc, 'dnnl_version.h'),
    `#define DNNL_VERSION_MAJOR ${major}\n#define DNNL_VERSION_MINOR 1\n#define DNNL_VERSION_PATCH 0\n`,
  );
  return prefix;
}

function install(dir: string, env: Record<string, string>) {
  const result = spawnSync(process.execPath, ['install.cjs'], {
    cwd: dir,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  const report = spawnSync(process.execPath, ['report.cjs'], { cwd: dir, encoding: 'utf8' });
  return {
    status: result.status,
    line: `${result.stdout}${result.stderr}`.trim(),
    report: `${report.stdout}${report.stderr}`.trim(),
    recorded: JSON.parse(readFileSync(path.join(dir, 'install-status.json'), 'utf8')),
  };
}

describe('the onednn install step', () => {
  it('without headers: one line with the reason and the fix, and the install still succeeds', () => {
    const dir = copyPackage();
    const missing = path.join(dir, 'no-such-prefix');
    const r = install(dir, { DNNL_PREFIX: missing });
    expect(r.status).toBe(0);
    expect(r.line.split('\n')).toHaveLength(1);
    expect(r.line).toContain(`oneDNN headers not found (looked for ${missing}/include/oneapi/dnnl/dnnl.hpp)`);
    expect(r.line).toMatch(/apt-get install -y libdnnl-dev.*brew install onednn libomp.*npm rebuild/);
    expect(r.recorded).toMatchObject({ built: false });
    expect(r.report).toMatch(/^onednn engine: NOT built, training falls back to wasm .*headers not found/);
  });

  it('refuses a oneDNN major version it was not written for', () => {
    const dir = copyPackage();
    const r = install(dir, { DNNL_PREFIX: fakePrefix(4) });
    expect(r.status).toBe(0);
    expect(r.line).toMatch(/oneDNN 4\.1\.0 in .* is not a supported version \(2\.x, 3\.x\)/);
  });

  it('points the compiler and linker at a DNNL_PREFIX, with an rpath so the addon finds it at run time', () => {
    const prefix = fakePrefix(3);
    const flags = (kind: string) =>
      spawnSync(process.execPath, [path.join(PACKAGE, 'dnnl-location.cjs'), kind], {
        env: { ...process.env, DNNL_PREFIX: prefix },
        encoding: 'utf8',
      }).stdout.trim();
    expect(flags('include')).toBe(path.join(prefix, 'include'));
    expect(flags('libs')).toBe(`-L${prefix}/lib -Wl,-rpath,${prefix}/lib`);
  });

  it('reads the version from dnnl_version.h', () => {
    const { readVersion } = createRequire(import.meta.url)(path.join(PACKAGE, 'dnnl-location.cjs')) as {
      readVersion: (includeDir: string) => unknown;
    };
    expect(readVersion(path.join(fakePrefix(3), 'include'))).toEqual({ major: 3, minor: 1, patch: 0 });
  });
});
