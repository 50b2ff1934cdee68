// Ceilings of the host: memcpy bandwidth and OpenBLAS sgemm rate.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "backends/backends.h"
#include "core/error.h"
#ifdef FLINT_HAVE_CUDA
#include "backends/cuda/cuda_backend.h"
#endif

namespace flint {
namespace {

using Clock = std::chrono::steady_clock;

template <typename F>
double best_seconds(int reps, F&& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

DeviceCeilings measure_host_ceilings() {
  DeviceCeilings c;
  // 512 MiB each way: far beyond any cache. Threads copy disjoint halves, as the
  // GEMV kernels stream weights.
  const size_t bytes = size_t{512} << 20;
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  const double copy_s = best_seconds(3, [&] {
#pragma omp parallel
    {
      const size_t n = static_cast<size_t>(omp_get_num_threads());
      const size_t t = static_cast<size_t>(omp_get_thread_num());
      const size_t chunk = bytes / n;
      std::memcpy(dst.data() + t * chunk, src.data() + t * chunk, t + 1 == n ? bytes - t * chunk : chunk);
    }
  });
  c.copy_bytes_per_s = 2.0 * static_cast<double>(bytes) / copy_s;
  c.copy_method = fmt::format("memcpy 512 MiB, {} threads", omp_get_max_threads());

  const int n = 2048;
  std::vector<float> a(static_cast<size_t>(n) * n, 0.5f), b(a), out(a.size());
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 7) * 0.1f;
  const double gemm_s = best_seconds(3, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, out.data(),
                n);
  });
  c.gemm_flops_per_s = 2.0 * n * static_cast<double>(n) * n / gemm_s;
  c.gemm_method = "OpenBLAS sgemm 2048^3";
  return c;
}

}  // namespace

DeviceCeilings measure_ceilings(Device device) {
#ifdef FLINT_HAVE_CUDA
  if (device == Device::cuda) return measure_cuda_ceilings();
#endif
  FLINT_CHECK(device == Device::cpu, ErrorContext{.field = "--device"}, "no CUDA backend in this build");
  return measure_host_ceilings();
}

}  // namespace flint
