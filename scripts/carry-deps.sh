#!/usr/bin/env bash
# Downloads (here, where Debian's registry is reachable) the .deb files of the
# libraries the GPU machine's image lacks, into .carry/debs (git-ignored), for
# scripts/gpu-check.sh to unpack there. Only headers/.pc/.so links: the GPU
# image already has the runtime libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .carry/debs
cd .carry/debs
# cpp-httplib: its compiled library ships in the runtime package; its header
# includes OpenSSL, zlib and Brotli headers.
for p in libpcre2-dev libcpp-httplib-dev libcpp-httplib0.11 libssl-dev zlib1g-dev libbrotli-dev; do
  apt-get download "$p" >/dev/null
done
ls -1
