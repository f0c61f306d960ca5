// Install hook: build the addon when oneDNN's headers are there, and never fail the install.
// Without the addon the trainer falls back to the wasm engine, 5-10x slower: so the outcome is
// written to install-status.json, and the root package's postinstall (report.cjs) prints it as one
// line, because npm hides a workspace's own install output unless the build fails.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync, mkdirSync, writeFileSync } = require('node:fs');
const path = require('node:path');
const { locate, SUPPORTED_MAJORS } = require('./dnnl-location.cjs');

const STATUS = path.join(__dirname, 'install-status.json');
const LOG = path.join(__dirname, 'build-install.log');
const REBUILD = 'npm rebuild @brain-tumor/onednn --foreground-scripts';
const FIX_ONEDNN =
  'Debian/Ubuntu: sudo apt-get install -y libdnnl-dev; macOS: brew install onednn libomp; ' +
  `or build one (training-container/native/onednn/scripts/build-onednn3.sh) and set DNNL_PREFIX; then ${REBUILD}`;
const FIX_TOOLCHAIN = `Debian/Ubuntu: sudo apt-get install -y g++ make python3; macOS: xcode-select --install; then ${REBUILD}`;

function report(status) {
  writeFileSync(STATUS, `${JSON.stringify({ ...status, at: new Date().toISOString() }, null, 2)}\n`);
  const line = status.built
    ? `@brain-tumor/onednn: built against oneDNN ${status.version} (${status.prefix})`
    : `@brain-tumor/onednn: not built: ${status.reason}. Fix: ${status.fix}`;
  (status.built ? console.log : console.warn)(line);
}

function has(command) {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0;
}

function build() {
  if (process.env.ONEDNN_SKIP_BUILD === '1')
    return { built: false, reason: 'ONEDNN_SKIP_BUILD=1', fix: 'unset it' };
  const found = locate();
  if (!found.prefix) {
    const looked = found.searched.map((p) => path.join(p, 'include/oneapi/dnnl/dnnl.hpp')).join(', ');
    return { built: false, reason: `oneDNN headers not found (looked for ${looked})`, fix: FIX_ONEDNN };
  }
  const v = found.version;
  const version = v ? `${v.major}.${v.minor}.${v.patch}` : 'unknown';
  if (!v || !SUPPORTED_MAJORS.includes(v.major)) {
    return {
      built: false,
      reason: `oneDNN ${version} in ${found.prefix} is not a supported version (${SUPPORTED_MAJORS.map((m) => `${m}.x`).join(', ')})`,
      fix: FIX_ONEDNN,
    };
  }
  const compiler = process.env.CXX || (process.platform === 'darwin' ? 'clang++' : 'g++');
  const missing = [compiler, 'make', 'python3'].filter((tool) => !has(tool));
  if (missing.length > 0) {
    return {
      built: false,
      reason: `${missing.join(', ')} not found (node-gyp needs them)`,
      fix: FIX_TOOLCHAIN,
    };
  }
  // npm puts its bundled node-gyp on PATH for lifecycle scripts; npm_config_node_gyp names it too.
  const gypJs = process.env.npm_config_node_gyp;
  const [cmd, args] = gypJs ? [process.execPath, [gypJs, 'rebuild']] : ['node-gyp', ['rebuild']];
  const result = spawnSync(cmd, args, { cwd: __dirname, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  writeFileSync(LOG, `${result.stdout ?? ''}${result.stderr ?? ''}`);
  const binary = path.join(__dirname, 'build', 'Release', 'onednn.node');
  if (result.status !== 0 || !existsSync(binary)) {
    const log = `${result.stdout ?? ''}\n${result.stderr ?? ''}`;
    if (
      /GET https:\/\/nodejs\.org\/download/.test(log) &&
      /network|ENOTFOUND|EAI_AGAIN|ECONNREFUSED/i.test(log)
    ) {
      return {
        built: false,
        reason: "node-gyp could not download Node's headers (no network?)",
        fix: `point it at installed headers: npm config set nodedir /usr (Debian's nodejs ships /usr/include/node); then ${REBUILD}`,
      };
    }
    const firstError =
      /^.*\berror:.*$/m.exec(log)?.[0] ??
      /gyp ERR! stack Error: (.*)$/m.exec(log)?.[1] ??
      result.error?.message;
    return {
      built: false,
      reason: `compiling against oneDNN ${version} (${found.prefix}) failed: ${firstError?.trim() ?? `exit ${result.status}`} (full log: ${LOG})`,
      fix: `${FIX_TOOLCHAIN}; if it persists, please report the log`,
    };
  }
  return { built: true, version, prefix: found.prefix };
}

mkdirSync(__dirname, { recursive: true });
report(build());
