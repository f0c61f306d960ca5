#!/usr/bin/env bash
# Build oneDNN 3.x from Debian trixie's source package into a cache outside the repository, so the
# addon can be compiled and tested against the 3.x API on a machine whose distribution ships 2.x.
#
#   training-container/native/onednn/scripts/build-onednn3.sh            # -> ~/.cache/brain-tumor/onednn-3
#   DNNL_PREFIX=~/.cache/brain-tumor/onednn-3 npm rebuild @brain-tumor/onednn
#
# Only apt's source download leaves the machine (deb.debian.org); apt's state lives in the cache
# directory, so the system's sources and package lists are not touched. The build matches Debian's
# own (debian/rules: no -march flags, OpenMP runtime) except that only the primitives the addon
# uses are registered (convolution, reorder) and the graph API, tests and examples are off: the same
# kernels. Still about 70 CPU-minutes (66 min wall on the project's 2 cores, other work beside it).
set -euo pipefail

# Debian's +ds source uses the system spdlog instead of a bundled copy; cmake and a C++ compiler too.
for need in cmake:cmake g++:g++ dpkg-source:dpkg-dev; do
  command -v "${need%%:*}" >/dev/null || { echo "missing ${need%%:*}: apt-get install -y ${need#*:}" >&2; exit 1; }
done
[ -e /usr/include/spdlog/spdlog.h ] || { echo "missing spdlog headers: apt-get install -y libspdlog-dev" >&2; exit 1; }

CACHE=${ONEDNN3_CACHE:-$HOME/.cache/brain-tumor}
PREFIX=${DNNL_PREFIX:-$CACHE/onednn-3}
SUITE=${ONEDNN3_SUITE:-trixie}
JOBS=${JOBS:-$(nproc)}
WORK=$CACHE/onednn-3-build

mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/src"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $SUITE main" \
  >"$WORK/apt/sources.list"
APT=(-o "Dir::Etc::SourceList=$WORK/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$WORK/apt/lists" -o "Dir::Cache=$WORK/apt/cache" -o APT::Sandbox::User=root)

apt-get "${APT[@]}" -qq update
cd "$WORK/src"
apt-get "${APT[@]}" -qq source --download-only onednn
DSC=$(ls -t onednn_*.dsc | head -1)
VERSION=${DSC#onednn_}; VERSION=${VERSION%%+*}; VERSION=${VERSION%.dsc}
rm -rf "onednn-$VERSION" && dpkg-source -q -x "$DSC" "onednn-$VERSION"

cmake -S "onednn-$VERSION" -B "onednn-$VERSION/build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \
  -DONEDNN_ARCH_OPT_FLAGS="" -DONEDNN_CPU_RUNTIME=OMP \
  -DONEDNN_BUILD_TESTS=OFF -DONEDNN_BUILD_EXAMPLES=OFF -DONEDNN_BUILD_DOC=OFF -DONEDNN_BUILD_GRAPH=OFF \
  -DONEDNN_ENABLE_PRIMITIVE="CONVOLUTION;REORDER"
cmake --build "onednn-$VERSION/build" -j "$JOBS"
cmake --install "onednn-$VERSION/build" >/dev/null
echo "oneDNN $VERSION installed in $PREFIX"
echo "build the addon against it: DNNL_PREFIX=$PREFIX npm rebuild @brain-tumor/onednn"
