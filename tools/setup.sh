#!/usr/bin/env bash
# Install every dependency on a fresh Debian/Ubuntu machine (apt-get), then build
# build/resnet_ddp. Safe to run again: apt-get skips what is installed, CMake
# rebuilds only what changed. Under CI (CI=true) warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin          # MPI
  libopenblas-dev libopenblas-openmp-dev  # BLAS (the OpenMP build is the one linked)
  libhdf5-dev hdf5-tools              # checkpoints and metrics (h5dump for tests)
  zlib1g-dev                          # .gz IDX files
  libinih-dev                         # INI config parser
  dataset-fashion-mnist               # the data set, /usr/share/datasets/fashion-mnist
  valgrind                            # memcheck test
)
bash tools/install_packages.sh "${packages[@]}"

werror=OFF
[ "${CI:-}" = "true" ] && werror=ON
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRESNET_DDP_WERROR="$werror"
cmake --build build -j "$(nproc)"
echo "built build/resnet_ddp"
