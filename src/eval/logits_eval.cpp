#include "eval/logits_eval.h"

#include <chrono>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "runtime/kv_blocks.h"

namespace flint {

EvalMode parse_eval_mode(const std::string& text) {
  if (text == "prefill") return {EvalMode::Kind::prefill, 0};
  if (text == "decode") return {EvalMode::Kind::decode, 1};
  if (text.rfind("chunked:", 0) == 0) {
    int32_t n = 0;
    try {
      size_t used = 0;
      n = std::stoi(text.substr(8), &used);
      if (used != text.size() - 8) n = 0;
    } catch (const std::exception&) {
      n = 0;
    }
    FLINT_CHECK(n > 0, ErrorContext{.field = "--mode"}, "chunk size in '{}' must be a positive integer", text);
    return {EvalMode::Kind::chunked, n};
  }
  fail({.field = "--mode"}, "unknown mode '{}' (prefill, decode or chunked:N)", text);
}

std::string eval_mode_name(const EvalMode& m) {
  switch (m.kind) {
    case EvalMode::Kind::prefill: return "prefill";
    case EvalMode::Kind::decode: return "decode";
    case EvalMode::Kind::chunked: return fmt::format("chunked:{}", m.chunk);
  }
  return "?";
}

namespace {

constexpr int32_t kBlockSize = 16;

// Runs `ids` from position 0 into `cache`, writing every row's logits to `out`.
void run_into(LlamaModel& model, KvCache& cache, const std::vector<int32_t>& blocks, const std::vector<TokenId>& ids,
              int32_t step, float* out) {
  Backend& backend = model.backend();
  const auto V = static_cast<size_t>(model.config().vocab_size);
  const auto T = static_cast<int32_t>(ids.size());
  for (int32_t begin = 0; begin < T; begin += step) {
    const int32_t end = std::min(T, begin + step);
    BatchBuilder builder(static_cast<int32_t>(blocks.size()));
    builder.add_sequence(std::vector<TokenId>(ids.begin() + begin, ids.begin() + end), begin, blocks, false, true);
    Tensor logits = backend.to_host(model.forward(builder.build(), cache));
    std::memcpy(out + static_cast<size_t>(begin) * V, logits.raw(), logits.nbytes());
  }
}

}  // namespace

Tensor run_sequence_logits(LlamaModel& model, const std::vector<TokenId>& ids, const EvalMode& mode, DType kv_dtype) {
  const auto T = static_cast<int32_t>(ids.size());
  FLINT_CHECK(T > 0, "no tokens to evaluate");
  FLINT_CHECK(T <= model.config().max_position_embeddings, "{} tokens exceed the model's context of {}", T,
              model.config().max_position_embeddings);
  for (TokenId t : ids)
    FLINT_CHECK(t >= 0 && t < model.config().vocab_size, ErrorContext{.field = "input_ids"},
                "token id {} outside [0, {})", t, model.config().vocab_size);
  KvBlockManager blocks(std::max(1, (T + kBlockSize - 1) / kBlockSize), kBlockSize);
  FLINT_ASSERT(blocks.ensure(0, T));
  KvCache cache = model.backend().create_kv_cache(model.kv_cache_shape(blocks.num_blocks(), kBlockSize, kv_dtype));
  const int32_t step = mode.kind == EvalMode::Kind::prefill ? T : mode.kind == EvalMode::Kind::decode ? 1 : mode.chunk;
  Tensor out = Tensor::empty(DType::f32, {T, model.config().vocab_size});
  run_into(model, cache, blocks.blocks(0), ids, step, out.data<float>());
  return out;
}

LogitsDiff compare_logits(const Tensor& got, const Tensor& ref) {
  FLINT_CHECK(got.shape() == ref.shape() && got.dim() == 2, "logits shapes differ: {} vs reference {}",
              shape_to_string(got.shape()), shape_to_string(ref.shape()));
  FLINT_CHECK(got.dtype() == DType::f32 && ref.dtype() == DType::f32, "logits must be f32");
  const int64_t rows = got.size(0), V = got.size(1);
  const float* g = got.data<float>();
  const float* r = ref.data<float>();
  double diff2 = 0, ref2 = 0, max_abs = 0;
  int64_t agree = 0;
  for (int64_t i = 0; i < rows; ++i) {
    int64_t g_arg = 0, r_arg = 0;
    for (int64_t j = 0; j < V; ++j) {
      const double gv = g[i * V + j], rv = r[i * V + j];
      const double d = gv - rv;
      diff2 += d * d;
      ref2 += rv * rv;
      max_abs = std::max(max_abs, std::fabs(d));
      if (std::isnan(gv)) max_abs = diff2 = NAN;  // NaN never passes
      if (gv > g[i * V + g_arg]) g_arg = j;
      if (rv > r[i * V + r_arg]) r_arg = j;
    }
    agree += g_arg == r_arg;
  }
  LogitsDiff d;
  d.relative_error = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  d.max_abs_error = max_abs;
  d.top1_agreement = rows ? static_cast<double>(agree) / static_cast<double>(rows) : 1.0;
  d.rows = rows;
  return d;
}

PerplexityResult perplexity(LlamaModel& model, const std::vector<TokenId>& tokens, int32_t window, DType kv_dtype) {
  FLINT_CHECK(window > 0, ErrorContext{.field = "--window"}, "must be positive, got {}", window);
  FLINT_CHECK(window <= model.config().max_position_embeddings, ErrorContext{.field = "--window"},
              "{} exceeds the model's context of {}", window, model.config().max_position_embeddings);
  const auto T = static_cast<int64_t>(tokens.size());
  FLINT_CHECK(T >= window + 1, ErrorContext{.field = "--window"}, "the text has {} tokens, fewer than window + 1 = {}",
              T, window + 1);
  const auto V = static_cast<size_t>(model.config().vocab_size);
  KvBlockManager blocks((window + kBlockSize - 1) / kBlockSize, kBlockSize);
  FLINT_ASSERT(blocks.ensure(0, window));
  KvCache cache = model.backend().create_kv_cache(model.kv_cache_shape(blocks.num_blocks(), kBlockSize, kv_dtype));
  std::vector<float> logits(static_cast<size_t>(window) * V);
  PerplexityResult res;
  double nll_sum = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t k = 0; k * window + window + 1 <= T; ++k) {
    const auto begin = tokens.begin() + k * window;
    std::vector<TokenId> input(begin, begin + window);
    run_into(model, cache, blocks.blocks(0), input, window, logits.data());
    for (int32_t i = 0; i < window; ++i) {
      const float* row = logits.data() + static_cast<size_t>(i) * V;
      const TokenId target = tokens[static_cast<size_t>(k * window + i + 1)];
      double max = row[0];
      for (size_t j = 1; j < V; ++j) max = std::max(max, static_cast<double>(row[j]));
      double sum = 0;
      for (size_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(row[j]) - max);
      nll_sum += std::log(sum) + max - row[target];
    }
    res.scored_tokens += window;
    ++res.windows;
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  res.mean_nll = nll_sum / static_cast<double>(res.scored_tokens);
  res.perplexity = std::exp(res.mean_nll);
  return res;
}

}  // namespace flint
