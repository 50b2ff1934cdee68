#!/usr/bin/env bash
# One call on the GPU machine: build with CUDA, run every test (the GPU-labelled
# ones included), optionally regenerate the reference fixtures with
# transformers, run the benchmarks, and print one short table last.
#
#   scripts/gpu-check.sh [--fixtures] [--bench] [--profile] [--serve] [--timeline] [--skip-tests]
#
# --profile: per-kernel GPU times of one decode step and of the 8B prefill of
# 2048 tokens (Nsight Compute), by scripts/kernel-times.py, beside the step
# time flint bench measures.
# --timeline: a second build with -DFLINT_CUDA_TRACE=ON records when each CTA
# of b1 decode steps starts, waits and ends; scripts/kernel-timeline.py says
# where a layer's time goes (timeline-*.txt). With --skip-tests and nothing
# else, the main build is skipped.
#
# Logs and JSON go to $OUT (the device tool brings that folder back). Debian
# packages the GPU image lacks travel as .deb files in .carry/debs (made here
# by scripts/carry-deps.sh) and are unpacked into a private prefix.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/flint-gpu-check}
mkdir -p "$OUT"
fixtures=0
bench=0
serve=0
profile=0
timeline=0
tests=1
for arg in "$@"; do
  case "$arg" in
    --skip-tests) tests=0 ;;
    --fixtures) fixtures=1 ;;
    --bench) bench=1 ;;
    --serve) serve=1 ;;
    --profile) profile=1 ;;
    --timeline) timeline=1 ;;
    *) echo "unknown argument $arg" >&2; exit 2 ;;
  esac
done
declare -a table

# Headers and pkg-config files of carried -dev packages go under /usr/local,
# linked against the runtime libraries the image already has.
if compgen -G ".carry/debs/*.deb" >/dev/null; then
  for f in .carry/debs/*.deb; do dpkg -x "$f" /tmp/flint-deps; done
  # Header files and folders the image lacks (never shadow one it has).
  for h in /tmp/flint-deps/usr/include/*; do
    [[ -e "/usr/include/$(basename "$h")" ]] || cp -rn "$h" /usr/local/include/
  done
  mkdir -p /usr/local/lib/pkgconfig
  for pc in /tmp/flint-deps/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc; do
    sed 's|^prefix=.*|prefix=/usr/local|; s|^libdir=.*|libdir=/usr/local/lib|; s|^includedir=.*|includedir=/usr/local/include|' \
      "$pc" >"/usr/local/lib/pkgconfig/$(basename "$pc")"
  done
  # Link-time names point at the image's runtime library, or at the carried one.
  for so in /tmp/flint-deps/usr/lib/x86_64-linux-gnu/*.so; do
    name=$(basename "$so")
    runtime=$(ls /usr/lib/x86_64-linux-gnu/"$name".* 2>/dev/null | head -1)
    if [[ -z "$runtime" ]]; then
      carried=$(ls /tmp/flint-deps/usr/lib/x86_64-linux-gnu/"$name".* 2>/dev/null | head -1)
      [[ -n "$carried" ]] && cp "$carried" /usr/local/lib/ && runtime="/usr/local/lib/$(basename "$carried")"
    fi
    [[ -n "$runtime" ]] && ln -sf "$runtime" "/usr/local/lib/$name"
  done
  ldconfig 2>/dev/null
  export PKG_CONFIG_PATH=/usr/local/lib/pkgconfig:${PKG_CONFIG_PATH:-}
fi

if ((fixtures)); then
  export PYTHONUNBUFFERED=1
  python3 tests/golden/make_golden.py --out "$OUT/fixtures/golden" >"$OUT/golden.log" 2>&1 &&
    table+=("golden fixtures|ok") || table+=("golden fixtures|FAILED (golden.log)")
  # .carry/tokenizers is a copy of ../shared/assets/tokenizers (it does not travel by itself).
  python3 tests/tokenizer/fixtures/make_tokenizer_fixtures.py .carry/tokenizers "$OUT/fixtures/tokenizer" \
    >"$OUT/tokenizer-fixtures.log" 2>&1 &&
    table+=("tokenizer fixtures|ok") || table+=("tokenizer fixtures|FAILED (tokenizer-fixtures.log)")
  python3 tests/tokenizer/fixtures/make_chat_fixtures.py .carry/tokenizers "$OUT/fixtures/tokenizer" \
    >"$OUT/chat-fixtures.log" 2>&1 &&
    table+=("chat fixtures|ok") || table+=("chat fixtures|FAILED (chat-fixtures.log)")
  # The tests below run on the fresh golden fixtures (commit them if they pass).
  [[ -d "$OUT/fixtures/golden" ]] && cp -r "$OUT/fixtures/golden/." tests/golden/fixtures/
  (cd "$OUT" && tar czf fixtures.tgz fixtures && rm -rf fixtures)
fi

# -k 0: one broken target must not hide the results of the others.
build_ok=0
if ((!tests && !bench && !profile && !serve && !fixtures)); then
  :  # --timeline alone: only its own build below
elif cmake --preset cuda -DFLINT_BUILD_BENCHMARKS=ON >"$OUT/configure.log" 2>&1; then
  build_ok=1
  if cmake --build --preset cuda -j 16 -- -k 0 >"$OUT/build.log" 2>&1; then
    table+=("build (cuda, sm_90a)|ok")
  else
    table+=("build (cuda, sm_90a)|FAILED ($(grep -c FAILED: "$OUT/build.log") targets, build.log)")
    grep -A5 "FAILED:" "$OUT/build.log" | grep -E "error" | head -20
  fi
else
  table+=("configure (cuda)|FAILED")
  tail -30 "$OUT/configure.log"
fi

if ((build_ok)); then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt"
fi
if ((build_ok && tests)); then
  ctest --test-dir build/cuda -L gpu --output-on-failure >"$OUT/gpu-tests.log" 2>&1
  table+=("GPU tests|$(grep -E 'tests passed|tests failed' "$OUT/gpu-tests.log" | tail -1)")
  # The models label (real-model perplexity, minutes on the CPU) runs in CI, not here.
  ctest --test-dir build/cuda -LE "gpu|models" -j 16 --output-on-failure >"$OUT/cpu-tests.log" 2>&1
  table+=("CPU tests on the GPU machine|$(grep -E 'tests passed|tests failed' "$OUT/cpu-tests.log" | tail -1)")
  grep -A3 "CeilingsArePlausible" "$OUT/gpu-tests.log" | grep -o "copy .*" | head -1 | sed 's/^/ceilings|/' >>"$OUT/ceilings.txt"
  [[ -s "$OUT/ceilings.txt" ]] && table+=("$(cat "$OUT/ceilings.txt")")
fi
if ((build_ok)); then
  if ((bench)); then
    bench_args=(--device cuda --batch 1,16,64 --input-len 128 --output-len 128)
    for m in llama-3.2-1b llama-3.1-8b; do
      timeout 200 build/cuda/bin/flint bench --model dummy:$m "${bench_args[@]}" --json "$OUT/bench-$m.json" \
        >"$OUT/bench-$m.log" 2>&1
      table+=("bench $m b1,16,64 128+128|rc $? (bench-$m.log)")
    done
    # The same decode with sampling on the GPU (top-k, top-p, temperature).
    timeout 200 build/cuda/bin/flint bench --model dummy:llama-3.1-8b "${bench_args[@]}" --temperature 0.8 \
      --top-k 50 --top-p 0.95 --json "$OUT/bench-8b-sampled.json" >"$OUT/bench-8b-sampled.log" 2>&1
    table+=("bench 8b sampled b1,16,64|rc $? (bench-8b-sampled.log)")
    # Prefill: the median of 5 runs (one run spreads by ~5% on this machine),
    # and the same on the mma.sync attention kernel for comparison.
    timeout 120 build/cuda/bin/flint bench --model dummy:llama-3.1-8b --device cuda --batch 1 --input-len 2048 \
      --output-len 4 --repeat 5 --json "$OUT/bench-8b-prefill.json" >"$OUT/bench-8b-prefill.log" 2>&1
    table+=("bench 8b prefill 2048 x5|rc $? (bench-8b-prefill.log)")
    FLINT_CUDA_ATTENTION=mma timeout 120 build/cuda/bin/flint bench --model dummy:llama-3.1-8b --device cuda \
      --batch 1 --input-len 2048 --output-len 4 --repeat 5 >"$OUT/bench-8b-prefill-mma.log" 2>&1
    table+=("bench 8b prefill x5, mma.sync|rc $? (bench-8b-prefill-mma.log)")
    # Decode with each step queued only after the last one's tokens reach the
    # host, for comparison (FLINT_CUDA_PDL=0 does the same for programmatic
    # dependent launch).
    for m in llama-3.2-1b llama-3.1-8b; do
      timeout 100 build/cuda/bin/flint bench --model dummy:$m --device cuda --batch 1,16 --input-len 128 \
        --output-len 128 --no-overlap --json "$OUT/bench-$m-nooverlap.json" >"$OUT/bench-$m-nooverlap.log" 2>&1
      table+=("bench $m b1,16 --no-overlap|rc $? (bench-$m-nooverlap.log)")
    done
    if [[ -x build/cuda/bench/bench_cuda_ops ]]; then
      timeout 120 build/cuda/bench/bench_cuda_ops --benchmark_filter='Linear|Attention' >"$OUT/bench-cuda-ops.log" 2>&1
      table+=("bench_cuda_ops Linear, Attention|rc $? (bench-cuda-ops.log)")
      FLINT_CUDA_ATTENTION=mma timeout 60 build/cuda/bench/bench_cuda_ops --benchmark_filter=Attention \
        >"$OUT/bench-cuda-ops-mma.log" 2>&1
      table+=("bench_cuda_ops Attention, mma.sync|rc $? (bench-cuda-ops-mma.log)")
    fi
  fi
fi

# One decode step kernel by kernel: Nsight Compute times each kernel alone
# (graphs off, so each is its own launch; the ceilings' copy and GEMM skipped).
if ((build_ok && profile)); then
  for m in llama-3.2-1b llama-3.1-8b; do
    FLINT_CUDA_GRAPHS=0 timeout 200 ncu --clock-control none --cache-control none --csv --page raw --print-units base \
      --metrics gpu__time_duration.sum --kernel-name regex:'^(?!copy16|nvjet|sm90|cutlass|Kernel).*' \
      build/cuda/bin/flint bench --model dummy:$m --device cuda --batch 1 --input-len 16 --output-len 3 \
      >"$OUT/ncu-$m.csv" 2>"$OUT/ncu-$m.log"
    table+=("ncu $m b1 decode step|rc $? (kernel-times.txt)")
  done
  python3 scripts/kernel-times.py "$OUT"/ncu-llama-*.csv >"$OUT/kernel-times.txt" 2>&1
  # The 8B prefill of 2048 tokens, cuBLASLt's kernels included.
  FLINT_CUDA_GRAPHS=0 timeout 200 ncu --clock-control none --cache-control none --csv --page raw --print-units base \
    --metrics gpu__time_duration.sum --kernel-name regex:'^(?!copy16).*' \
    build/cuda/bin/flint bench --model dummy:llama-3.1-8b --device cuda --batch 1 --input-len 2048 --output-len 2 \
    >"$OUT/ncu-prefill-8b.csv" 2>"$OUT/ncu-prefill-8b.log"
  table+=("ncu 8b prefill 2048|rc $? (kernel-times-prefill.txt)")
  python3 scripts/kernel-times.py --prefill "$OUT/ncu-prefill-8b.csv" >"$OUT/kernel-times-prefill.txt" 2>&1
fi

# Where a b1 decode step's time goes between kernels (src/backends/cuda/cuda_trace.h).
if ((timeline)); then
  if cmake -S . -B build/trace -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLINT_CUDA=ON -DFLINT_CUDA_ARCHS=90a \
    -DFLINT_CUDA_TRACE=ON -DFLINT_BUILD_TESTS=OFF -DFLINT_BUILD_BENCHMARKS=OFF >"$OUT/trace-build.log" 2>&1 &&
    cmake --build build/trace --target flint -j 16 >>"$OUT/trace-build.log" 2>&1; then
    for m in llama-3.2-1b llama-3.1-8b; do
      FLINT_CUDA_TRACE_FILE="$OUT/trace-$m.csv" FLINT_CUDA_TRACE_STEPS=60:8 timeout 200 build/trace/bin/flint bench --model dummy:$m \
        --device cuda --batch 1 --input-len 128 --output-len 128 >"$OUT/trace-bench-$m.log" 2>&1
      python3 scripts/kernel-timeline.py "$OUT/trace-$m.csv" --steps-detail 1 >"$OUT/timeline-$m.txt" 2>&1
      table+=("timeline $m b1|rc $? (timeline-$m.txt)")
      gzip -f "$OUT/trace-$m.csv"
    done
  else
    table+=("timeline build|FAILED (trace-build.log)")
    tail -20 "$OUT/trace-build.log"
  fi
fi

# Serving: flint serve on the 8B shape, driven by flint bench serve (issue #6).
if ((build_ok && serve)); then
  build/cuda/bin/flint serve --model dummy:llama-3.1-8b --device cuda --port 18080 --max-num-seqs 64 \
    --gpu-memory-fraction 0.9 >"$OUT/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 120); do curl -sf http://127.0.0.1:18080/health >/dev/null 2>&1 && break; sleep 1; done
  for c in 1 16 64; do
    n=$((c == 1 ? 16 : 4 * c))
    timeout 150 build/cuda/bin/flint bench serve --url http://127.0.0.1:18080 --concurrency $c --num-requests $n \
      --input-len 128 --output-len 128 --json "$OUT/serve-c$c.json" >"$OUT/serve-c$c.log" 2>&1
    table+=("bench serve 8B c$c 128+128|rc $? (serve-c$c.log)")
  done
  kill -TERM $server; wait $server
  table+=("flint serve exit|$?")
fi

echo
echo "== flint gpu-check: $(cat "$OUT/gpu.txt" 2>/dev/null) =="
for row in "${table[@]}"; do printf '%-32s %s\n' "${row%%|*}" "${row#*|}"; done
