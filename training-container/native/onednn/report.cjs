// Run by the root package's postinstall: prints the addon's install outcome as one line, since npm
// shows a root script's output but not a workspace's. Never fails the install.
'use strict';
const { readFileSync } = require('node:fs');
const path = require('node:path');

try {
  const s = JSON.parse(readFileSync(path.join(__dirname, 'install-status.json'), 'utf8'));
  if (s.built) console.log(`onednn engine: built against oneDNN ${s.version} (${s.prefix})`);
  else
    console.warn(
      `onednn engine: NOT built, training falls back to wasm (5-10x slower): ${s.reason}. Fix: ${s.fix}`,
    );
} catch {
  console.warn('onednn engine: no install status (its install script did not run; npm --ignore-scripts?)');
}
