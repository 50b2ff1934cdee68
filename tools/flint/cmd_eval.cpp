// flint eval compare | perplexity: check a model against reference logits, or
// measure perplexity on a text file.
#include <fmt/format.h>

#include "backends/backends.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "eval/logits_eval.h"
#include "io/safetensors.h"
#include "tools/flint/commands.h"
#include "tools/flint/model_options.h"

namespace flint::cli {
namespace {

struct CompareOptions {
  ModelOptions model;
  std::string reference;
  std::string mode = "prefill";
  std::string device = "cpu";
  double tol = 1e-4;
  double min_top1 = 1.0;
};

struct PerplexityOptions {
  ModelOptions model;
  std::string file;
  int32_t window = 512;
  std::string device = "cpu";
};

// The KV cache keeps the activation precision of the backend's reference path.
DType eval_kv_dtype(const Backend& backend) { return backend.activation_dtype(); }

void run_compare(const CompareOptions& o) {
  const EvalMode mode = parse_eval_mode(o.mode);
  auto ref_file = SafetensorsFile::open(o.reference);
  const SafetensorsEntry* ids_entry = ref_file->find("input_ids");
  const SafetensorsEntry* logits_entry = ref_file->find("logits");
  FLINT_CHECK(ids_entry && logits_entry, ErrorContext{.file = o.reference},
              "a reference needs tensors 'input_ids' (int64 [T]) and 'logits' (f32 [T, V])");
  FLINT_CHECK(ids_entry->dtype == DType::i64 && ids_entry->shape.size() == 1,
              ErrorContext{.file = o.reference, .tensor = "input_ids"}, "expected int64 [T], got {} {}",
              dtype_name(ids_entry->dtype), shape_to_string(ids_entry->shape));
  FLINT_CHECK(logits_entry->dtype == DType::f32 && logits_entry->shape.size() == 2 &&
                  logits_entry->shape[0] == ids_entry->shape[0],
              ErrorContext{.file = o.reference, .tensor = "logits"}, "expected f32 [{}, V], got {} {}",
              ids_entry->shape[0], dtype_name(logits_entry->dtype), shape_to_string(logits_entry->shape));
  const Tensor ids_t = ref_file->view(*ids_entry);
  std::vector<TokenId> ids;
  for (int64_t i = 0; i < ids_t.numel(); ++i) ids.push_back(static_cast<TokenId>(ids_t.data<int64_t>()[i]));
  const Tensor ref = ref_file->view(*logits_entry);

  const ModelSource source = open_model(o.model);
  FLINT_CHECK(ref.size(1) == source.config.vocab_size, ErrorContext{.file = o.reference, .tensor = "logits"},
              "vocabulary {} does not match the model's {}", ref.size(1), source.config.vocab_size);
  auto backend = make_backend(parse_device(o.device));
  LlamaModel model(source, *backend);
  const Tensor got = run_sequence_logits(model, ids, mode, eval_kv_dtype(*backend));
  const LogitsDiff d = compare_logits(got, ref);
  fmt::print("{} tokens, mode {}, device {}: relative error {:.3e}, max abs error {:.3e}, top-1 agreement {:.2f}%\n",
             d.rows, eval_mode_name(mode), backend->name(), d.relative_error, d.max_abs_error,
             100.0 * d.top1_agreement);
  FLINT_CHECK(d.relative_error <= o.tol, "relative error {:.3e} exceeds --tol {:.1e}", d.relative_error, o.tol);
  FLINT_CHECK(d.top1_agreement >= o.min_top1, "top-1 agreement {:.4f} is below --min-top1 {:.4f}", d.top1_agreement,
              o.min_top1);
}

void run_perplexity(const PerplexityOptions& o) {
  const ModelSource source = open_model(o.model);
  const auto tokenizer = open_tokenizer(source);
  const std::string text = read_file(o.file);
  const std::vector<TokenId> tokens = tokenizer->encode(text, {.add_special = false});
  auto backend = make_backend(parse_device(o.device));
  LlamaModel model(source, *backend);
  const PerplexityResult r = perplexity(model, tokens, o.window, eval_kv_dtype(*backend));
  fmt::print("perplexity {:.5f} over {} scored tokens ({} windows of {}; {} tokens in the file), {:.1f} tok/s\n",
             r.perplexity, r.scored_tokens, r.windows, o.window, tokens.size(),
             static_cast<double>(r.scored_tokens) / r.seconds);
}

void add_eval(CLI::App& app) {
  CLI::App* eval = app.add_subcommand("eval", "evaluate a model: logits against a reference, perplexity");
  eval->require_subcommand(1);

  auto c = std::make_shared<CompareOptions>();
  CLI::App* compare = eval->add_subcommand("compare", "compare logits with a reference (input_ids, logits)");
  add_model_options(*compare, c->model);
  compare->add_option("--reference", c->reference, "safetensors with input_ids int64 [T], logits f32 [T, V]")
      ->required();
  compare->add_option("--mode", c->mode, "prefill, decode or chunked:N")->capture_default_str();
  compare->add_option("--device", c->device, "cpu or cuda")->capture_default_str();
  compare->add_option("--tol", c->tol, "largest relative error that passes")->capture_default_str();
  compare->add_option("--min-top1", c->min_top1, "smallest top-1 agreement that passes")->capture_default_str();
  compare->callback([c] { run_compare(*c); });

  auto p = std::make_shared<PerplexityOptions>();
  CLI::App* ppl = eval->add_subcommand("perplexity", "perplexity of a text file (strided windows, no BOS)");
  add_model_options(*ppl, p->model);
  ppl->add_option("--file", p->file, "text file")->required();
  ppl->add_option("--window", p->window, "tokens per window")->capture_default_str();
  ppl->add_option("--device", p->device, "cpu or cuda")->capture_default_str();
  ppl->callback([p] { run_perplexity(*p); });
}

FLINT_REGISTER_COMMAND(add_eval);

}  // namespace
}  // namespace flint::cli
