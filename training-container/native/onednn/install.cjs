// Install hook: build the addon when oneDNN's headers are there, and never fail the install.
// Without libdnnl-dev the trainer simply falls back to the wasm engine.
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

const HEADER = '/usr/include/oneapi/dnnl/dnnl.hpp';
const warn = (why) =>
  console.warn(
    `@brain-tumor/onednn: native addon not built (${why}); the onednn engine is unavailable. ` +
      'To enable it on Debian/Ubuntu: apt-get install -y libdnnl-dev && npm rebuild @brain-tumor/onednn',
  );

if (process.env.ONEDNN_SKIP_BUILD === '1') {
  warn('ONEDNN_SKIP_BUILD=1');
} else if (!existsSync(HEADER) && !process.env.DNNL_INCLUDE_DIR) {
  warn(`${HEADER} not found`);
} else {
  // npm puts its bundled node-gyp on PATH for lifecycle scripts; npm_config_node_gyp names it too.
  const gypJs = process.env.npm_config_node_gyp;
  const [cmd, args] = gypJs ? [process.execPath, [gypJs, 'rebuild']] : ['node-gyp', ['rebuild']];
  const result = spawnSync(cmd, args, { cwd: __dirname, stdio: 'inherit' });
  if (result.status !== 0)
    warn(`node-gyp rebuild failed: ${result.error?.message ?? `exit ${result.status}`}`);
  else if (!existsSync(path.join(__dirname, 'build', 'Release', 'onednn.node')))
    warn('no build/Release/onednn.node');
}
