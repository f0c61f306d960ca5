// Where oneDNN's headers and library are, and which version they are. Used by install.cjs (to
// decide whether to build and to say why not) and by binding.gyp (`node dnnl-location.cjs include`
// / `libs`), so the two always agree. DNNL_PREFIX wins; then the system, then Homebrew's prefixes.
'use strict';
const { existsSync, readFileSync } = require('node:fs');
const path = require('node:path');

const HEADER = path.join('oneapi', 'dnnl', 'dnnl.hpp');
const SUPPORTED_MAJORS = [2, 3];

/** Prefixes searched in order; /usr needs no flags, the others -I/-L and an rpath. */
function candidatePrefixes(env = process.env) {
  if (env.DNNL_PREFIX) return [path.resolve(env.DNNL_PREFIX)];
  return ['/usr', '/usr/local', '/opt/homebrew/opt/onednn', '/usr/local/opt/onednn'];
}

/** Reads DNNL_VERSION_{MAJOR,MINOR,PATCH} from dnnl_version.h next to the header. */
function readVersion(includeDir) {
  try {
    const text = readFileSync(path.join(includeDir, 'oneapi', 'dnnl', 'dnnl_version.h'), 'utf8');
    const part = (name) => Number(new RegExp(`#define\\s+DNNL_VERSION_${name}\\s+(\\d+)`).exec(text)?.[1]);
    const v = { major: part('MAJOR'), minor: part('MINOR'), patch: part('PATCH') };
    return Number.isFinite(v.major) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** { prefix, includeDir, libDir, version, searched } or { searched } when no header is found. */
function locate(env = process.env) {
  const searched = candidatePrefixes(env);
  for (const prefix of searched) {
    const includeDir = path.join(prefix, 'include');
    if (!existsSync(path.join(includeDir, HEADER))) continue;
    return {
      prefix,
      includeDir,
      libDir: path.join(prefix, 'lib'),
      version: readVersion(includeDir),
      searched,
    };
  }
  return { searched };
}

/** Homebrew's libomp (keg-only): clang on macOS has OpenMP only through it. */
function libompPrefix() {
  if (process.platform !== 'darwin') return undefined;
  return ['/opt/homebrew/opt/libomp', '/usr/local/opt/libomp'].find((p) =>
    existsSync(path.join(p, 'include')),
  );
}

function gypFlags(kind, found = locate()) {
  const omp = libompPrefix();
  const system = !found.prefix || found.prefix === '/usr';
  if (kind === 'include') return [...(system ? [] : [found.includeDir]), ...(omp ? [`${omp}/include`] : [])];
  const libDirs = [...(system ? [] : [found.libDir]), ...(omp ? [`${omp}/lib`] : [])];
  return libDirs.flatMap((dir) => [`-L${dir}`, `-Wl,-rpath,${dir}`]);
}

module.exports = { locate, readVersion, gypFlags, SUPPORTED_MAJORS };

if (require.main === module) {
  const kind = process.argv[2];
  if (kind !== 'include' && kind !== 'libs') {
    console.error('usage: node dnnl-location.cjs include|libs');
    process.exit(2);
  }
  // gyp's <!@(...) splits on whitespace; these paths come from fixed prefixes or DNNL_PREFIX.
  console.log(gypFlags(kind).join(' '));
}
