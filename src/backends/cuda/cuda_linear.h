// backends/cuda/cuda_linear.h — y = x W^T + b on the GPU, choosing the kernel
// by the number of rows of x.
//
// Contract: x [n, in] bf16, W [out, in] bf16 row-major (as checkpoints store
// it), bias [out] f32 or null, y [n, out] bf16 or f32; f32 accumulation.
//   n <= gemv_max_rows (and in % 8 == 0, 16-byte aligned operands):
//       the weight-streaming tensor-core GEMV (cuda_gemv_kernels.cu), bias fused;
//   otherwise cuBLASLt (TN bf16 GEMM, f32 compute, 32 MiB workspace), with the
//       heuristic's algorithm cached per (shape, output dtype, alignments) and
//       the bias added by a second kernel;
// accumulate = true gives y += x W^T + b (the residual add): fused into the
// GEMV's epilogue, cuBLASLt's beta = 1 (y read as C, in place), the fallback's
// store; with one rounding of the sum, except that a bias after cuBLASLt is
// added (and rounded) by its own kernel.
//   where cuBLASLt offers no algorithm, a plain warp-per-output kernel.
// Everything is queued on the stream; nothing synchronises.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <tuple>

#include "backends/cuda/cuda_memory.h"
#include "core/dtype.h"

namespace flint::cuda {

class LinearRunner {
 public:
  LinearRunner(cudaStream_t stream, int64_t gemv_max_rows);
  ~LinearRunner();
  LinearRunner(const LinearRunner&) = delete;
  LinearRunner& operator=(const LinearRunner&) = delete;

  // claim_tiles: the weight-streaming GEMV's CTAs claim tiles so that they
  // end together (SkinnyGemm::tile_counter; the lm_head, the o projection).
  void run(const void* x, int64_t n, const void* w, const float* bias, void* out, DType out_dtype,
           int64_t out_features, int64_t in_features, bool accumulate = false, bool claim_tiles = false);
  // Whether run() takes the weight-streaming GEMV for these operands.
  bool streams(const void* x, int64_t n, const void* w, int64_t in_features) const;
  // Tile counters, handed out in turn (SkinnyGemm::tile_counter). One is in
  // use from its launch's first claim to its last, while that launch's CTAs
  // are on SMs; a launch that claims holds a whole SM per CTA and at least
  // half of the SMs, so it comes round again long after its last use.
  unsigned* next_tile_counter();

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool usable = false;  // the heuristic found an algorithm
  };
  // n, out, in, output dtype, alignments (bytes, <= 256) of x, W, y.
  using PlanKey = std::tuple<int64_t, int64_t, int64_t, DType, int, int, int>;

  const Plan& plan_for(const PlanKey& key);
  bool run_cublaslt(const void* x, int64_t n, const void* w, void* out, DType out_dtype, int64_t out_features,
                    int64_t in_features, bool accumulate);

  cudaStream_t stream_;
  int64_t gemv_max_rows_;
  cublasLtHandle_t handle_ = nullptr;
  std::unique_ptr<CudaStorage> workspace_;
  static constexpr int kTileCounters = 64;
  std::unique_ptr<CudaStorage> tile_counters_;  // kTileCounters x {claims, CTAs done}, zeroed
  int next_counter_ = 0;
  std::map<PlanKey, Plan> plans_;
};

}  // namespace flint::cuda
