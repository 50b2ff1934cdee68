// The CPU linear kernels (GEMV and GEMM, AVX2 and portable) against a
// double-precision reference, on sizes that are multiples of nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_kernels.h"
#include "core/error.h"
#include "op_test_util.h"

namespace flint {
namespace {

using testing::gamma_f32;
using testing::Random;

struct LinearInputs {
  int64_t n = 0, k = 0, total = 0;
  Tensor x;                   // f32 [n, k]
  std::vector<Tensor> parts;  // dtype [rows_i, k]
  Tensor bias;                // f32 [total] or undefined
  std::vector<double> ref;    // [n, total]
  std::vector<double> scale;  // [n, total]: sum_k |x w| + |b|, what the f32 error scales with
};

LinearInputs make_inputs(uint64_t seed, DType dtype, int64_t n, int64_t k, const std::vector<int64_t>& rows,
                         bool with_bias) {
  Random rng(seed);
  LinearInputs in;
  in.n = n;
  in.k = k;
  in.x = rng.tensor(DType::f32, {n, k});
  for (int64_t r : rows) {
    in.parts.push_back(rng.tensor(dtype, {r, k}));
    in.total += r;
  }
  if (with_bias) in.bias = rng.tensor(DType::f32, {in.total});
  in.ref.assign(static_cast<size_t>(n * in.total), 0.0);
  in.scale = in.ref;
  // Widen everything once so the reference loop is plain double arithmetic.
  std::vector<double> xd(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n * k; ++i) xd[static_cast<size_t>(i)] = testing::at(in.x, i);
  int64_t col = 0;
  for (const Tensor& part : in.parts) {
    const int64_t pr = part.size(0);
    std::vector<double> wd(static_cast<size_t>(pr * k));
    for (int64_t i = 0; i < pr * k; ++i) wd[static_cast<size_t>(i)] = testing::at(part, i);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t r = 0; r < pr; ++r) {
        double sum = 0, mag = 0;
        for (int64_t i = 0; i < k; ++i) {
          const double p = xd[static_cast<size_t>(t * k + i)] * wd[static_cast<size_t>(r * k + i)];
          sum += p;
          mag += std::fabs(p);
        }
        if (with_bias) {
          const double b = testing::at(in.bias, col + r);
          sum += b;
          mag += std::fabs(b);
        }
        in.ref[static_cast<size_t>(t * in.total + col + r)] = sum;
        in.scale[static_cast<size_t>(t * in.total + col + r)] = mag;
      }
    }
    col += pr;
  }
  return in;
}

std::vector<cpu::WeightRows> rows_of(const LinearInputs& in) {
  std::vector<cpu::WeightRows> out;
  for (const Tensor& p : in.parts) out.push_back({p.raw(), p.dtype(), p.size(0)});
  return out;
}

// Runs the kernel into an output with a wider row stride than needed, so that
// writes past the part columns would show.
std::vector<float> run_linear(const LinearInputs& in, cpu::LinearPath path) {
  const int64_t ldo = in.total + 3;
  std::vector<float> out(static_cast<size_t>(in.n * ldo), std::numeric_limits<float>::quiet_NaN());
  const auto parts = rows_of(in);
  cpu::linear(in.x.data<float>(), in.n, in.k, parts, in.bias.defined() ? in.bias.data<float>() : nullptr, out.data(),
              ldo, path);
  std::vector<float> packed(static_cast<size_t>(in.n * in.total));
  for (int64_t t = 0; t < in.n; ++t) {
    for (int64_t c = 0; c < in.total; ++c)
      packed[static_cast<size_t>(t * in.total + c)] = out[static_cast<size_t>(t * ldo + c)];
    for (int64_t c = in.total; c < ldo; ++c)
      EXPECT_TRUE(std::isnan(out[static_cast<size_t>(t * ldo + c)])) << "column " << c << " past the output written";
  }
  return packed;
}

// Any f32 summation of k products plus a bias is within gamma_{k+2} of the
// exact sum, relative to the sum of magnitudes; the inputs are exact in double.
void expect_close_to_reference(const LinearInputs& in, const std::vector<float>& got) {
  const double g = gamma_f32(in.k + 2);
  int failures = 0;
  for (size_t i = 0; i < got.size() && failures < 5; ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - in.ref[i]);
    if (!(err <= g * in.scale[i])) {
      ++failures;
      ADD_FAILURE() << "element " << i << " (token " << i / static_cast<size_t>(in.total) << ", column "
                    << i % static_cast<size_t>(in.total) << "): got " << got[i] << ", expected " << in.ref[i]
                    << ", error " << err << " > bound " << g * in.scale[i];
    }
  }
}

struct Shape2 {
  int64_t k;
  std::vector<int64_t> rows;
  bool bias;
};

TEST(CpuLinear, MatchesDoubleReferenceOnEveryPath) {
  // k = 37: shorter than a vector block plus a tail; k = 600 spans two
  // k-chunks of the GEMM (512), the second partial; 150 + 40 + 40 rows (q, k,
  // v) cross the GEMM's 32-row blocks and leave partial 4-row tiles.
  const std::vector<Shape2> shapes = {{37, {29}, false}, {600, {150, 40, 40}, true}, {8, {5, 3}, true}};
  uint64_t seed = 1000;
  for (DType dtype : {DType::f32, DType::bf16, DType::f16}) {
    for (int64_t n : {1, 3, 17, 100}) {
      for (const Shape2& s : shapes) {
        const LinearInputs in = make_inputs(++seed, dtype, n, s.k, s.rows, s.bias);
        for (cpu::Isa isa : testing::available_isas()) {
          testing::IsaScope scope(isa);
          for (cpu::LinearPath path : {cpu::LinearPath::automatic, cpu::LinearPath::gemv, cpu::LinearPath::gemm}) {
            SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " n=" << n << " k=" << s.k << " isa="
                                              << testing::isa_name(isa) << " path=" << static_cast<int>(path)
                                              << " seed=" << seed);
            expect_close_to_reference(in, run_linear(in, path));
          }
        }
      }
    }
  }
}

// Bit patterns, so that -0.0 vs 0.0 or two NaNs compare as what they are.
std::vector<uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<uint32_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  return out;
}

// Tokens [t0, t0 + n) of `in`, for run_linear (the reference is not sliced).
LinearInputs token_rows(const LinearInputs& in, int64_t t0, int64_t n) {
  LinearInputs out = in;
  out.n = n;
  out.x = Tensor::empty(DType::f32, {n, in.k});
  std::memcpy(out.x.raw(), in.x.data<float>() + t0 * in.k, static_cast<size_t>(n * in.k) * sizeof(float));
  return out;
}

TEST(CpuLinear, RowsDoNotDependOnTheBatch) {
  // The engine promises that a request's tokens and logprobs are the same
  // alone or among others (runtime/engine.h); that rests on every output row
  // being summed in one order whatever the number of rows of x and whichever
  // path runs them. k = 1031 spans three k-chunks of the GEMM with a tail
  // that is not a multiple of 8; 77 + 200 rows give partial row tiles and
  // several row blocks; 40 tokens leave a partial token group.
  uint64_t seed = 2000;
  for (DType dtype : {DType::bf16, DType::f16, DType::f32}) {
    const LinearInputs all = make_inputs(++seed, dtype, 40, 1031, {77, 200}, true);
    for (cpu::Isa isa : testing::available_isas()) {
      testing::IsaScope scope(isa);
      std::vector<std::vector<uint32_t>> alone;
      for (int64_t t = 0; t < all.n; ++t)
        alone.push_back(bits_of(run_linear(token_rows(all, t, 1), cpu::LinearPath::automatic)));
      for (int64_t n : {1, 2, 3, 5, 32, 33, 40}) {
        const LinearInputs in = token_rows(all, 0, n);
        for (cpu::LinearPath path : {cpu::LinearPath::automatic, cpu::LinearPath::gemv, cpu::LinearPath::gemm}) {
          const std::vector<uint32_t> got = bits_of(run_linear(in, path));
          for (int64_t t = 0; t < n; ++t) {
            const std::vector<uint32_t> row(got.begin() + t * all.total, got.begin() + (t + 1) * all.total);
            ASSERT_EQ(row, alone[static_cast<size_t>(t)])
                << dtype_name(dtype) << " isa=" << testing::isa_name(isa) << " n=" << n
                << " path=" << static_cast<int>(path) << ": token " << t << " differs from the same token alone";
          }
        }
      }
    }
  }
}

TEST(CpuLinear, LongPromptsRunInTokenChunks) {
  // 1700 tokens: the GEMM takes them in chunks of 512 (three full, one
  // partial), and every row still equals the GEMV's.
  const LinearInputs in = make_inputs(2500, DType::bf16, 1700, 24, {33, 7}, true);
  for (cpu::Isa isa : testing::available_isas()) {
    testing::IsaScope scope(isa);
    SCOPED_TRACE(testing::isa_name(isa));
    const std::vector<float> gemm = run_linear(in, cpu::LinearPath::automatic);
    expect_close_to_reference(in, gemm);
    EXPECT_EQ(bits_of(gemm), bits_of(run_linear(in, cpu::LinearPath::gemv)));
  }
}

TEST(CpuLinear, BackendKeepsWeightViewsAndAddsBias) {
  auto backend = make_cpu_backend();
  const LinearInputs in = make_inputs(3001, DType::bf16, 5, 70, {24, 8, 8}, true);
  const Linear lin = backend->prepare_linear(in.parts, in.bias, DType::bf16);
  ASSERT_EQ(lin.parts.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(lin.parts[i].raw(), in.parts[i].raw()) << "part " << i << " was copied";
  EXPECT_EQ(lin.in_features, 70);
  EXPECT_EQ(lin.out_features, 40);
  Tensor out = backend->empty(DType::f32, {5, 40});
  backend->linear(in.x, lin, out);
  expect_close_to_reference(in, std::vector<float>(out.data<float>(), out.data<float>() + out.numel()));
}

TEST(CpuLinear, RejectsBadArguments) {
  auto backend = make_cpu_backend();
  Random rng(3002);
  const Linear lin = backend->prepare_linear({rng.tensor(DType::bf16, {6, 10})}, Tensor(), DType::bf16);
  Tensor x = rng.tensor(DType::f32, {2, 11});
  Tensor out = backend->empty(DType::f32, {2, 6});
  EXPECT_THROW(backend->linear(x, lin, out), Error);  // in_features 11 vs 10
  Tensor x_ok = rng.tensor(DType::f32, {2, 10});
  Tensor out_bad = backend->empty(DType::f32, {2, 7});
  EXPECT_THROW(backend->linear(x_ok, lin, out_bad), Error);
  EXPECT_THROW(backend->prepare_weight(Tensor::empty(DType::i8, {4, 4}), DType::bf16), Error);
  const cpu::WeightRows int_rows[] = {{x_ok.raw(), DType::i32, 1}};
  EXPECT_THROW(cpu::linear(x_ok.data<float>(), 1, 10, int_rows, nullptr, out.data<float>(), 6), Error);
}

TEST(CpuLinear, ZeroTokensAndZeroInputs) {
  Random rng(3003);
  Tensor w = rng.tensor(DType::bf16, {3, 4});
  Tensor w_empty = Tensor::empty(DType::bf16, {3, 0});
  Tensor b = rng.tensor(DType::f32, {3});
  const cpu::WeightRows parts[] = {{w.raw(), DType::bf16, 3}};
  float out[3] = {7, 7, 7};
  cpu::linear(nullptr, 0, 4, parts, nullptr, out, 3);  // no tokens: nothing written
  EXPECT_EQ(out[0], 7.0f);
  const cpu::WeightRows empty_parts[] = {{w_empty.raw(), DType::bf16, 3}};
  cpu::linear(out, 1, 0, empty_parts, b.data<float>(), out, 3);  // empty dot products: the bias
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out[i], b.data<float>()[i]);
}

}  // namespace
}  // namespace flint
