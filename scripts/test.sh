#!/usr/bin/env bash
# Sets up, builds and runs every test Flint has on this machine:
#   1. the release build (CUDA code compiled when nvcc is found) and all its
#      tests — GPU-labelled tests skip themselves, with the reason, without a GPU;
#   2. the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
# FLINT_CUDA_ARCHS narrows the CUDA targets to save build time (default: 90a).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

# OpenMP threads spin while waiting by default; on a loaded 2-core runner with
# two test processes that spinning starves the other process.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

cmake --preset release -DFLINT_CUDA_ARCHS="${FLINT_CUDA_ARCHS:-90a}"
cmake --build --preset release
ctest --preset release

# The sanitizer run takes the tests labelled "unit" (ctest preset asan), so it
# builds only their binaries.
cmake --preset asan
cmake --build --preset asan --target test_core test_io test_model test_tokenizer test_runtime test_ops
ctest --preset asan
