#include "model/config.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>
#include <optional>

#include "core/error.h"
#include "core/mapped_file.h"

namespace flint {
namespace {

using nlohmann::json;

// Bounds that keep every derived size (parameter counts, byte counts, int32
// token ids and positions) far from overflow. Real Llamas are orders of
// magnitude below them.
constexpr int64_t kMaxWidth = int64_t{1} << 20;  // hidden, ffn, heads, head_dim
constexpr int64_t kMaxLayers = int64_t{1} << 16;
constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();

// A JSON value shortened for an error message.
std::string show(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

std::string describe(const json& v) {
  if (v.is_number_float()) return fmt::format("the number {}", show(v));
  if (v.is_number()) return fmt::format("the integer {}", show(v));
  return fmt::format("{} {}", v.type_name(), show(v));
}

// Typed access to the fields of one JSON object, `prefix` naming it in errors
// ("rope_scaling" -> field 'rope_scaling.factor'). A JSON null reads as absent:
// transformers treats None as "use the default".
class FieldReader {
 public:
  FieldReader(const json& object, std::string prefix) : object_(object), prefix_(std::move(prefix)) {}

  std::string path(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : fmt::format("{}.{}", prefix_, key);
  }

  const json* find(std::string_view key) const {
    auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  [[noreturn]] void wrong_type(std::string_view key, const json& v, std::string_view expected) const {
    fail({.field = path(key)}, "expected {}, got {}", expected, describe(v));
  }

  std::optional<int64_t> integer(std::string_view key) const {
    const json* v = find(key);
    if (!v) return std::nullopt;
    if (v->is_number_integer() && !(v->is_number_unsigned() && v->get<uint64_t>() > uint64_t{INT64_MAX}))
      return v->get<int64_t>();
    wrong_type(key, *v, "an integer");
  }

  int64_t required_integer(std::string_view key) const {
    std::optional<int64_t> v = integer(key);
    if (!v) fail({.field = path(key)}, "missing (required)");
    return *v;
  }

  std::optional<double> number(std::string_view key) const {
    const json* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) wrong_type(key, *v, "a number");
    const double d = v->get<double>();
    if (!std::isfinite(d)) fail({.field = path(key)}, "must be finite, got {}", show(*v));
    return d;
  }

  std::optional<bool> boolean(std::string_view key) const {
    const json* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) wrong_type(key, *v, "true or false");
    return v->get<bool>();
  }

  std::optional<std::string> string(std::string_view key) const {
    const json* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) wrong_type(key, *v, "a string");
    return v->get<std::string>();
  }

 private:
  const json& object_;
  std::string prefix_;
};

// --- architecture ---------------------------------------------------------------

void check_architecture(const FieldReader& f) {
  const json* arch = f.find("architectures");
  if (arch) {
    if (!arch->is_array()) f.wrong_type("architectures", *arch, "a list of class names");
    bool llama = false;
    std::string names;
    for (const json& a : *arch) {
      if (!a.is_string()) f.wrong_type("architectures", a, "class names (strings)");
      llama = llama || a.get<std::string>() == "LlamaForCausalLM";
      names += fmt::format("{}{}", names.empty() ? "" : ", ", a.get<std::string>());
    }
    if (!llama) fail({.field = "architectures"}, "unsupported architecture [{}]: Flint runs LlamaForCausalLM", names);
  }
  const std::optional<std::string> model_type = f.string("model_type");
  if (model_type && *model_type != "llama")
    fail({.field = "model_type"}, "unsupported model type '{}': Flint runs 'llama'", *model_type);
  if (!arch && !model_type)
    fail({.field = "model_type"}, "missing, and no architectures either: cannot tell that this is a Llama");
  const std::string act = f.string("hidden_act").value_or("silu");
  if (act != "silu") fail({.field = "hidden_act"}, "unsupported activation '{}': Llama uses 'silu'", act);
  if (f.find("quantization_config"))
    fail({.field = "quantization_config"}, "quantized checkpoints are not supported yet");
}

// --- RoPE -----------------------------------------------------------------------

// What one RoPE object (`rope_scaling` or `rope_parameters`) says.
struct RopeObject {
  RopeScaling scaling;
  std::optional<double> theta;  // transformers 5 keeps rope_theta inside
};

void check_partial_rotary_factor(const FieldReader& f) {
  const std::optional<double> p = f.number("partial_rotary_factor");
  if (p && *p != 1.0)
    fail({.field = f.path("partial_rotary_factor")},
         "partial RoPE ({}) is not supported: Llama rotates all of head_dim", *p);
}

void check_rope_values(const RopeScaling& s, const std::string& prefix) {
  if (s.type == RopeType::default_) return;
  FLINT_CHECK(std::isfinite(s.factor) && s.factor > 0, ErrorContext{.field = prefix + ".factor"},
              "must be positive, got {}", s.factor);
  if (s.type != RopeType::llama3) return;
  FLINT_CHECK(std::isfinite(s.low_freq_factor) && s.low_freq_factor > 0,
              ErrorContext{.field = prefix + ".low_freq_factor"}, "must be positive, got {}", s.low_freq_factor);
  FLINT_CHECK(std::isfinite(s.high_freq_factor) && s.high_freq_factor > s.low_freq_factor,
              ErrorContext{.field = prefix + ".high_freq_factor"}, "must be greater than low_freq_factor ({}), got {}",
              s.low_freq_factor, s.high_freq_factor);
  FLINT_CHECK(s.original_max_position_embeddings > 0 && s.original_max_position_embeddings <= kMaxInt32,
              ErrorContext{.field = prefix + ".original_max_position_embeddings"}, "must be in [1, {}], got {}",
              kMaxInt32, s.original_max_position_embeddings);
}

RopeObject read_rope_object(const json& v, const std::string& name) {
  if (!v.is_object()) fail({.field = name}, "expected an object or null, got {}", describe(v));
  for (const auto& [key, value] : v.items())
    if (value.is_object())
      fail({.field = name + "." + key},
           "per-layer RoPE parameters are not supported: Llama has one RoPE for all layers");
  const FieldReader f(v, name);
  RopeObject out;
  // "type" is what configs written before transformers 4.42 call rope_type.
  const char* type_key = f.find("rope_type") ? "rope_type" : "type";
  const std::string type = f.string(type_key).value_or("default");
  RopeScaling& s = out.scaling;
  if (type == "default") {
    s.type = RopeType::default_;
  } else if (type == "linear") {
    s.type = RopeType::linear;
  } else if (type == "dynamic") {
    s.type = RopeType::dynamic;
  } else if (type == "llama3") {
    s.type = RopeType::llama3;
  } else {
    fail({.field = f.path(type_key)}, "unsupported RoPE type '{}' (supported: default, linear, dynamic, llama3)", type);
  }
  out.theta = f.number("rope_theta");
  check_partial_rotary_factor(f);

  auto required_number = [&](const char* key) {
    const std::optional<double> x = f.number(key);
    if (!x) fail({.field = f.path(key)}, "missing (required for RoPE type '{}')", type);
    return *x;
  };
  // Parameters a type does not use are ignored (transformers warns about them).
  if (s.type == RopeType::linear || s.type == RopeType::dynamic) s.factor = required_number("factor");
  if (s.type == RopeType::dynamic)
    s.original_max_position_embeddings = f.integer("original_max_position_embeddings").value_or(0);
  if (s.type == RopeType::llama3) {
    s.factor = required_number("factor");
    s.low_freq_factor = required_number("low_freq_factor");
    s.high_freq_factor = required_number("high_freq_factor");
    const std::optional<int64_t> orig = f.integer("original_max_position_embeddings");
    if (!orig) fail({.field = f.path("original_max_position_embeddings")}, "missing (required for RoPE type 'llama3')");
    s.original_max_position_embeddings = *orig;
  }
  check_rope_values(s, name);
  return out;
}

std::string describe_rope(const RopeScaling& s) {
  return fmt::format("{} x{} (low {}, high {}, original {})", rope_type_name(s.type), s.factor, s.low_freq_factor,
                     s.high_freq_factor, s.original_max_position_embeddings);
}

// transformers 4 reads top-level rope_theta + rope_scaling; transformers 5
// reads rope_parameters (or rope_scaling, renamed) with rope_theta inside, and
// only falls back to the top-level rope_theta. Where two of them disagree the
// two versions would run different models, so that is an error.
void read_rope(const FieldReader& f, LlamaConfig& c) {
  std::optional<RopeObject> classic, v5;
  if (const json* v = f.find("rope_scaling")) classic = read_rope_object(*v, "rope_scaling");
  if (const json* v = f.find("rope_parameters")) v5 = read_rope_object(*v, "rope_parameters");
  if (classic && v5 && classic->scaling != v5->scaling)
    fail({.field = "rope_parameters"}, "disagrees with rope_scaling: {} vs {}", describe_rope(v5->scaling),
         describe_rope(classic->scaling));
  if (v5)
    c.rope_scaling = v5->scaling;
  else if (classic)
    c.rope_scaling = classic->scaling;

  struct Theta {
    const char* field;
    double value;
  };
  std::vector<Theta> thetas;
  if (v5 && v5->theta) thetas.push_back({"rope_parameters.rope_theta", *v5->theta});
  if (classic && classic->theta) thetas.push_back({"rope_scaling.rope_theta", *classic->theta});
  if (std::optional<double> top = f.number("rope_theta")) thetas.push_back({"rope_theta", *top});
  for (const Theta& t : thetas)
    if (t.value != thetas.front().value)
      fail({.field = t.field}, "{} disagrees with {} = {}", t.value, thetas.front().field, thetas.front().value);
  c.rope_theta = thetas.empty() ? 10000.0 : thetas.front().value;
  check_partial_rotary_factor(f);
}

// --- everything else ------------------------------------------------------------

// bos_token_id / eos_token_id: an id, a list of ids, or null.
std::vector<int32_t> read_token_ids(const FieldReader& f, std::string_view key) {
  const json* v = f.find(key);
  if (!v) return {};
  auto one = [&](const json& id) -> int32_t {
    if (!id.is_number_integer()) f.wrong_type(key, id, "a token id (integer), a list of them, or null");
    const bool in_range = id.is_number_unsigned() ? id.get<uint64_t>() <= uint64_t{kMaxInt32}
                                                  : id.get<int64_t>() >= 0 && id.get<int64_t>() <= kMaxInt32;
    if (!in_range) fail({.field = f.path(key)}, "token id {} is out of range", show(id));
    return static_cast<int32_t>(id.get<int64_t>());
  };
  if (!v->is_array()) return {one(*v)};
  std::vector<int32_t> ids;
  for (const json& id : *v) ids.push_back(one(id));
  return ids;
}

DType read_dtype(const FieldReader& f) {
  // transformers 5 writes "dtype"; earlier versions "torch_dtype".
  const char* key = f.find("dtype") ? "dtype" : "torch_dtype";
  const std::optional<std::string> name = f.string(key);
  if (!name) return DType::f32;  // transformers' default when neither is given
  if (*name == "float32") return DType::f32;
  if (*name == "float16") return DType::f16;
  if (*name == "bfloat16") return DType::bf16;
  fail({.field = key}, "unsupported dtype '{}' (supported: float32, float16, bfloat16)", *name);
}

LlamaConfig config_from_json(const json& root) {
  if (!root.is_object()) fail("expected a JSON object at the top level, got {}", root.type_name());
  const FieldReader f(root, "");
  check_architecture(f);
  LlamaConfig c;
  c.vocab_size = f.integer("vocab_size").value_or(32000);
  c.hidden_size = f.required_integer("hidden_size");
  c.intermediate_size = f.required_integer("intermediate_size");
  c.num_hidden_layers = f.required_integer("num_hidden_layers");
  c.num_attention_heads = f.required_integer("num_attention_heads");
  FLINT_CHECK(c.num_attention_heads > 0, ErrorContext{.field = "num_attention_heads"}, "must be positive, got {}",
              c.num_attention_heads);
  c.num_key_value_heads = f.integer("num_key_value_heads").value_or(c.num_attention_heads);
  if (std::optional<int64_t> hd = f.integer("head_dim")) {
    c.head_dim = *hd;
  } else {
    FLINT_CHECK(c.hidden_size % c.num_attention_heads == 0, ErrorContext{.field = "head_dim"},
                "not given, and hidden_size {} is not a multiple of num_attention_heads {}", c.hidden_size,
                c.num_attention_heads);
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  c.max_position_embeddings = f.integer("max_position_embeddings").value_or(2048);
  c.rms_norm_eps = f.number("rms_norm_eps").value_or(1e-6);
  read_rope(f, c);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings").value_or(false);
  c.attention_bias = f.boolean("attention_bias").value_or(false);
  c.mlp_bias = f.boolean("mlp_bias").value_or(false);
  c.bos_token_ids = read_token_ids(f, "bos_token_id");
  c.eos_token_ids = read_token_ids(f, "eos_token_id");
  c.dtype = read_dtype(f);
  // pretraining_tp only split Llama 2's matmuls into slices in training; the
  // result is the same, so any value is accepted.
  return c;
}

// Parameter count, or nullopt past int64.
std::optional<int64_t> count_parameters(const LlamaConfig& c) {
  int64_t total = 0;
  bool overflow = false;
  auto add = [&](int64_t n) { overflow |= __builtin_add_overflow(total, n, &total); };
  auto mul = [&](std::initializer_list<int64_t> factors) {
    int64_t p = 1;
    for (int64_t x : factors) overflow |= __builtin_mul_overflow(p, x, &p);
    return p;
  };
  const int64_t H = c.hidden_size, F = c.intermediate_size;
  const int64_t q = mul({c.num_attention_heads, c.head_dim}), kv = mul({c.num_key_value_heads, c.head_dim});
  int64_t layer = 0;
  auto add_layer = [&](int64_t n) { overflow |= __builtin_add_overflow(layer, n, &layer); };
  add_layer(mul({2, H}));                           // the two RMSNorms
  add_layer(mul({q, H}));                           // q_proj
  add_layer(mul({2, kv, H}));                       // k_proj, v_proj
  add_layer(mul({H, q}));                           // o_proj
  add_layer(mul({3, F, H}));                        // gate, up, down
  if (c.attention_bias) add_layer(q + 2 * kv + H);  // widths are bounded: no overflow
  if (c.mlp_bias) add_layer(2 * F + H);
  add(mul({c.vocab_size, H}));  // embed_tokens
  add(mul({c.num_hidden_layers, layer}));
  add(H);                                                   // final norm
  if (!c.tie_word_embeddings) add(mul({c.vocab_size, H}));  // lm_head
  if (overflow) return std::nullopt;
  return total;
}

void check_range(int64_t value, int64_t max, const char* field) {
  FLINT_CHECK(value > 0 && value <= max, ErrorContext{.field = field}, "must be in [1, {}], got {}", max, value);
}

}  // namespace

std::string_view rope_type_name(RopeType t) {
  switch (t) {
    case RopeType::default_:
      return "default";
    case RopeType::linear:
      return "linear";
    case RopeType::dynamic:
      return "dynamic";
    case RopeType::llama3:
      return "llama3";
  }
  return "?";
}

int64_t LlamaConfig::num_parameters() const {
  const std::optional<int64_t> n = count_parameters(*this);
  FLINT_CHECK(n.has_value(), "the parameter count of this config overflows int64");
  return *n;
}

int64_t LlamaConfig::kv_bytes_per_token(DType kv_dtype) const {
  const auto per_layer = static_cast<uint64_t>(2 * num_key_value_heads * head_dim);
  return static_cast<int64_t>(dtype_bytes(kv_dtype, per_layer * static_cast<uint64_t>(num_hidden_layers)));
}

void LlamaConfig::validate() const {
  check_range(vocab_size, kMaxInt32, "vocab_size");
  check_range(hidden_size, kMaxWidth, "hidden_size");
  check_range(intermediate_size, kMaxWidth, "intermediate_size");
  check_range(num_hidden_layers, kMaxLayers, "num_hidden_layers");
  check_range(num_attention_heads, kMaxWidth, "num_attention_heads");
  check_range(num_key_value_heads, kMaxWidth, "num_key_value_heads");
  check_range(head_dim, kMaxWidth, "head_dim");
  check_range(max_position_embeddings, kMaxInt32, "max_position_embeddings");
  FLINT_CHECK(num_attention_heads % num_key_value_heads == 0, ErrorContext{.field = "num_key_value_heads"},
              "num_attention_heads {} is not a multiple of num_key_value_heads {}", num_attention_heads,
              num_key_value_heads);
  FLINT_CHECK(head_dim % 2 == 0, ErrorContext{.field = "head_dim"}, "must be even (RoPE rotates pairs), got {}",
              head_dim);
  FLINT_CHECK(rope_scaling.type != RopeType::dynamic || head_dim > 2, ErrorContext{.field = "head_dim"},
              "dynamic RoPE needs head_dim > 2 (it raises to d / (d - 2)), got {}", head_dim);
  FLINT_CHECK(std::isfinite(rms_norm_eps) && rms_norm_eps > 0, ErrorContext{.field = "rms_norm_eps"},
              "must be positive, got {}", rms_norm_eps);
  FLINT_CHECK(std::isfinite(rope_theta) && rope_theta > 0, ErrorContext{.field = "rope_theta"},
              "must be positive, got {}", rope_theta);
  check_rope_values(rope_scaling, "rope_scaling");
  for (const auto& [ids, field] :
       {std::pair{&bos_token_ids, "bos_token_id"}, std::pair{&eos_token_ids, "eos_token_id"}})
    for (int32_t id : *ids)
      FLINT_CHECK(id >= 0 && id < vocab_size, ErrorContext{.field = field},
                  "token id {} is outside the vocabulary [0, {})", id, vocab_size);
  FLINT_CHECK(dtype == DType::f32 || dtype == DType::f16 || dtype == DType::bf16, ErrorContext{.field = "dtype"},
              "must be f32, f16 or bf16, got {}", dtype_name(dtype));
  FLINT_CHECK(count_parameters(*this).has_value(), "the parameter count of this config overflows int64");
}

LlamaConfig parse_llama_config(std::string_view json_text, const std::string& source_name) {
  try {
    json root;
    try {
      root = json::parse(json_text.begin(), json_text.end());
    } catch (const json::exception& e) {
      fail("not valid JSON: {}", e.what());
    }
    LlamaConfig c = config_from_json(root);
    c.validate();
    return c;
  } catch (const Error& e) {
    throw e.with_file(source_name);
  }
}

LlamaConfig load_llama_config(const std::string& path) { return parse_llama_config(read_file(path), path); }

// --- RoPE frequencies -------------------------------------------------------------

namespace {

std::vector<double> default_inv_freq(double theta, int64_t head_dim) {
  std::vector<double> inv_freq(static_cast<size_t>(head_dim / 2));
  const auto d = static_cast<double>(head_dim);
  for (size_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / d);
  return inv_freq;
}

// Llama 3.1's scaling: wavelengths longer than the original context divided
// by low_freq_factor are slowed down by `factor`, those shorter than it divided
// by high_freq_factor are kept, and the band between is blended linearly in
// original_context / wavelength (transformers' _compute_llama3_parameters).
void rope_llama3_scaling(const RopeScaling& s, std::vector<double>& inv_freq) {
  const auto old_context = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / s.low_freq_factor;
  const double high_freq_wavelen = old_context / s.high_freq_factor;
  for (double& f : inv_freq) {
    const double wavelen = 2 * std::numbers::pi / f;
    if (wavelen > low_freq_wavelen) {
      f = f / s.factor;
    } else if (wavelen >= high_freq_wavelen) {
      const double smooth = (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      f = (1 - smooth) * f / s.factor + smooth * f;
    }
  }
}

}  // namespace

std::vector<double> rope_inv_freq(const LlamaConfig& c) {
  std::vector<double> inv_freq = default_inv_freq(c.rope_theta, c.head_dim);
  switch (c.rope_scaling.type) {
    case RopeType::default_:
    case RopeType::dynamic:
      break;
    case RopeType::linear:
      for (double& f : inv_freq) f /= c.rope_scaling.factor;
      break;
    case RopeType::llama3:
      rope_llama3_scaling(c.rope_scaling, inv_freq);
      break;
  }
  return inv_freq;
}

std::vector<double> rope_inv_freq_for_length(const LlamaConfig& c, int64_t seq_len) {
  if (c.rope_scaling.type != RopeType::dynamic || seq_len <= c.max_position_embeddings) return rope_inv_freq(c);
  const double factor = c.rope_scaling.factor;
  const auto d = static_cast<double>(c.head_dim);
  // Same order of operations as transformers: (factor * seq_len) / max_pos.
  const double scaled = factor * static_cast<double>(seq_len) / static_cast<double>(c.max_position_embeddings);
  const double base = c.rope_theta * std::pow(scaled - (factor - 1), d / (d - 2));
  return default_inv_freq(base, c.head_dim);
}

}  // namespace flint
