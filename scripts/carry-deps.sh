#!/usr/bin/env bash
# Downloads (here, where Debian's registry is reachable) the .deb files of the
# libraries the GPU machine's image lacks, into .carry/debs (git-ignored), for
# scripts/gpu-check.sh to unpack there. Only headers/.pc/.so links: the GPU
# image already has the runtime libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .carry/debs
cd .carry/debs
apt-get download libpcre2-dev >/dev/null
ls -1
