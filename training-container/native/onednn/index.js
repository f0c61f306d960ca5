// Loader: returns the addon, or undefined (with the reason in loadError()) when the .node file
// was not built (no libdnnl-dev at install time) or cannot be loaded (libdnnl missing at run time).
'use strict';
const path = require('node:path');

// ONEDNN_ADDON_PATH points elsewhere (tests use a missing path to exercise the fallback).
const BINARY = process.env.ONEDNN_ADDON_PATH || path.join(__dirname, 'build', 'Release', 'onednn.node');
let addon;
let error;
let tried = false;

function load() {
  if (!tried) {
    tried = true;
    try {
      addon = require(BINARY);
    } catch (e) {
      error = e && e.code === 'MODULE_NOT_FOUND' ? new Error(`${BINARY} is not built: ${whyNotBuilt()}`) : e;
    }
  }
  return addon;
}

// install.cjs records why it did not build the addon, and what fixes that.
function whyNotBuilt() {
  try {
    const status = JSON.parse(
      require('node:fs').readFileSync(path.join(__dirname, 'install-status.json'), 'utf8'),
    );
    if (!status.built) return `${status.reason}. Fix: ${status.fix}`;
  } catch {}
  return 'install libdnnl-dev (Debian/Ubuntu) or onednn + libomp (Homebrew), then npm rebuild @brain-tumor/onednn';
}

function loadError() {
  load();
  return error;
}

function requireAddon() {
  const a = load();
  if (!a) throw new Error(`@brain-tumor/onednn unavailable: ${error.message}`);
  return a;
}

module.exports = { load, loadError, requireAddon, BINARY };
