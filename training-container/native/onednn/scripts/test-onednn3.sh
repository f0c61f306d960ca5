#!/usr/bin/env bash
# Build the addon against a oneDNN 3.x prefix (build-onednn3.sh) into a cache, leaving the
# repository's own build (the system's oneDNN) alone, and run the onednn tests on it:
#
#   training-container/native/onednn/scripts/test-onednn3.sh            # kernel + 20-step training tests
#   training-container/native/onednn/scripts/test-onednn3.sh --bench     # then npm run bench:train on it
#
# ONEDNN_EXPECT_MAJOR=3 makes test/onednn/engine.test.ts check the library actually loaded.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../../../.." && pwd)
CACHE=${ONEDNN3_CACHE:-$HOME/.cache/brain-tumor}
export DNNL_PREFIX=${DNNL_PREFIX:-$CACHE/onednn-3}
ADDON=$CACHE/onednn-addon-3
[ -e "$DNNL_PREFIX/include/oneapi/dnnl/dnnl.hpp" ] ||
  { echo "no oneDNN in $DNNL_PREFIX: run $(dirname "$0")/build-onednn3.sh first" >&2; exit 1; }

rm -rf "$ADDON" && mkdir -p "$ADDON"
PKG=$REPO/training-container/native/onednn
cp -r "$PKG/binding.gyp" "$PKG/src" "$PKG"/*.cjs "$PKG/index.js" "$PKG/package.json" "$ADDON/"
# The copy lives outside the repo: let binding.gyp's require('node-addon-api') find the repo's.
export NODE_PATH=$REPO/node_modules
export npm_config_node_gyp=${npm_config_node_gyp:-$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js}
nodedir=$(npm config get nodedir 2>/dev/null || true)
[ -n "$nodedir" ] && [ "$nodedir" != undefined ] && export npm_config_nodedir=$nodedir
(cd "$ADDON" && node install.cjs)
[ -e "$ADDON/build/Release/onednn.node" ] || exit 1

export ONEDNN_ADDON_PATH=$ADDON/build/Release/onednn.node ONEDNN_EXPECT_MAJOR=3
cd "$REPO"
node -e "const a = require(process.env.ONEDNN_ADDON_PATH).info(); console.log('addon info', JSON.stringify(a))"
npx vitest run test/onednn
if [ "${1:-}" = --bench ]; then npm run bench:train -- --engines onednn "${@:2}"; fi
