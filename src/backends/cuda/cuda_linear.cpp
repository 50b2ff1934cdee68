#include "backends/cuda/cuda_linear.h"

#include <algorithm>
#include <cstdint>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_kernels.h"
#include "core/error.h"

#define FLINT_CUBLAS_CHECK(call)                                                                     \
  do {                                                                                               \
    const cublasStatus_t flint_status_ = (call);                                                     \
    if (flint_status_ != CUBLAS_STATUS_SUCCESS)                                                      \
      ::flint::fail("cuBLASLt error in {}: {} ({}:{})", #call, cublasLtGetStatusString(flint_status_), \
                    __FILE__, __LINE__);                                                             \
  } while (0)

namespace flint::cuda {
namespace {

// cuBLASLt's recommendation for Hopper.
constexpr size_t kWorkspaceBytes = size_t{32} << 20;

// The largest power of two (<= 256) that divides the address.
int alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int align = 256;
  while (align > 1 && a % static_cast<uintptr_t>(align) != 0) align /= 2;
  return align;
}

}  // namespace

LinearRunner::LinearRunner(cudaStream_t stream, int64_t gemv_max_rows)
    : stream_(stream), gemv_max_rows_(std::clamp<int64_t>(gemv_max_rows, 0, kSkinnyMaxRows)) {
  FLINT_CUBLAS_CHECK(cublasLtCreate(&handle_));
  workspace_ = std::make_unique<CudaStorage>(kWorkspaceBytes);
  tile_counters_ = std::make_unique<CudaStorage>(kTileCounters * 2 * sizeof(unsigned));
  FLINT_CUDA_CHECK(cudaMemset(tile_counters_->data(), 0, tile_counters_->size()));
}

unsigned* LinearRunner::next_tile_counter() {
  unsigned* c = reinterpret_cast<unsigned*>(tile_counters_->data()) + 2 * next_counter_;
  next_counter_ = (next_counter_ + 1) % kTileCounters;
  return c;
}

LinearRunner::~LinearRunner() {
  for (auto& [key, p] : plans_) {
    if (p.a) cublasLtMatrixLayoutDestroy(p.a);
    if (p.b) cublasLtMatrixLayoutDestroy(p.b);
    if (p.c) cublasLtMatrixLayoutDestroy(p.c);
    if (p.desc) cublasLtMatmulDescDestroy(p.desc);
  }
  cublasLtDestroy(handle_);
}

bool LinearRunner::streams(const void* x, int64_t n, const void* w, int64_t in_features) const {
  return n <= gemv_max_rows_ && skinny_gemm_supports(x, w, n, in_features);
}

void LinearRunner::run(const void* x, int64_t n, const void* w, const float* bias, void* out, DType out_dtype,
                       int64_t out_features, int64_t in_features, bool accumulate, bool claim_tiles) {
  if (n == 0 || out_features == 0) return;
  if (streams(x, n, w, in_features)) {
    launch_skinny_gemm({.x = x,
                        .n = n,
                        .w = w,
                        .bias = bias,
                        .out = out,
                        .out_dtype = out_dtype,
                        .out_features = out_features,
                        .in_features = in_features,
                        .epilogue = accumulate ? SkinnyEpilogue::accumulate : SkinnyEpilogue::store,
                        .tile_counter = claim_tiles ? next_tile_counter() : nullptr},
                       stream_);
    return;
  }
  if (run_cublaslt(x, n, w, out, out_dtype, out_features, in_features, accumulate)) {
    if (bias) launch_add_bias(out, out_dtype, bias, n, out_features, stream_);
    return;
  }
  launch_linear_fallback(x, n, w, bias, out, out_dtype, out_features, in_features, accumulate, stream_);
}

// Row-major y[n, out] = x[n, in] W[out, in]^T is, column-major, y^T = W^T' x^T:
// A = W stored as a column-major [in, out] matrix, transposed (the "TN" case,
// cuBLASLt's fastest on Hopper); B = x as column-major [in, n]; C = D = y as
// column-major [out, n]. beta = 0 (C never read), or 1 to accumulate: C = D
// in place, which cuBLASLt allows when the two layouts are the same.
const LinearRunner::Plan& LinearRunner::plan_for(const PlanKey& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  const auto [n, o, k, out_dtype, align_x, align_w, align_y] = key;
  Plan p;
  const cudaDataType_t out_type = out_dtype == DType::f32 ? CUDA_R_32F : CUDA_R_16BF;
  FLINT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  FLINT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  FLINT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  const auto uk = static_cast<uint64_t>(k), uo = static_cast<uint64_t>(o), un = static_cast<uint64_t>(n);
  FLINT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, uk, uo, k));
  FLINT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, uk, un, k));
  FLINT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, out_type, uo, un, o));

  cublasLtMatmulPreference_t pref = nullptr;
  FLINT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = kWorkspaceBytes;
  const uint32_t aa = static_cast<uint32_t>(align_w), ab = static_cast<uint32_t>(align_x),
                 ac = static_cast<uint32_t>(align_y);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status = [&] {
    cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                            sizeof ws);
    if (s == CUBLAS_STATUS_SUCCESS)
      s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof aa);
    if (s == CUBLAS_STATUS_SUCCESS)
      s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof ab);
    if (s == CUBLAS_STATUS_SUCCESS)
      s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof ac);
    if (s == CUBLAS_STATUS_SUCCESS)
      s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof ac);
    if (s == CUBLAS_STATUS_SUCCESS)
      s = cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
    return s;
  }();
  cublasLtMatmulPreferenceDestroy(pref);
  // "Not supported" (and, for leading dimensions no algorithm takes, "invalid
  // value") is an answer: the fallback kernel takes the operands. Anything else
  // is an error.
  if (status != CUBLAS_STATUS_NOT_SUPPORTED && status != CUBLAS_STATUS_INVALID_VALUE) FLINT_CUBLAS_CHECK(status);
  p.usable = status == CUBLAS_STATUS_SUCCESS && found > 0;
  if (p.usable) p.algo = result.algo;
  return plans_.emplace(key, p).first->second;
}

bool LinearRunner::run_cublaslt(const void* x, int64_t n, const void* w, void* out, DType out_dtype,
                                int64_t out_features, int64_t in_features, bool accumulate) {
  const Plan& p =
      plan_for({n, out_features, in_features, out_dtype, alignment_of(x), alignment_of(w), alignment_of(out)});
  if (!p.usable) return false;
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  FLINT_CUBLAS_CHECK(cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c, &p.algo,
                                    workspace_->data(), kWorkspaceBytes, stream_));
  return true;
}

}  // namespace flint::cuda
