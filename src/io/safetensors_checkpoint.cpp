// A checkpoint directory: model.safetensors, or model.safetensors.index.json and
// the shards it names. Like transformers' from_pretrained, a single
// model.safetensors wins when both are present.
#include <filesystem>
#include <set>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/strict_json.h"

namespace flint {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

bool is_existing_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// A shard must be a file directly in the checkpoint directory: an index from
// the internet must not make us map /etc/passwd or ../../secret.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string_view("/\\\0", 3)) == std::string::npos;
}

// tensor -> shard file name, from the index's "weight_map".
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  const json index = parse_strict_json(read_file(index_path), ErrorContext{.file = index_path});
  FLINT_CHECK(index.is_object(), ErrorContext{.file = index_path}, "expected a JSON object, got {}",
              json_type_name(index));
  if (auto m = index.find("metadata"); m != index.end())
    FLINT_CHECK(m->is_object(), ErrorContext{.file = index_path, .field = "metadata"}, "expected an object, got {}",
                json_type_name(*m));
  auto wm = index.find("weight_map");
  FLINT_CHECK(wm != index.end(), ErrorContext{.file = index_path, .field = "weight_map"},
              "missing: the index must map each tensor to its shard file");
  FLINT_CHECK(wm->is_object(), ErrorContext{.file = index_path, .field = "weight_map"},
              "expected an object of tensor name -> shard file, got {}", json_type_name(*wm));
  std::map<std::string, std::string> out;
  for (const auto& [tensor, shard] : wm->items()) {
    const ErrorContext at{.file = index_path, .tensor = printable(tensor), .field = "weight_map"};
    FLINT_CHECK(shard.is_string(), at, "expected a shard file name, got {}", json_type_name(shard));
    const auto& name = shard.get_ref<const std::string&>();
    FLINT_CHECK(is_plain_file_name(name), at, "shard '{}' is not a plain file name in the checkpoint directory",
                printable(name));
    out.emplace(tensor, name);
  }
  return out;
}

}  // namespace

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& dir) {
  std::error_code ec;
  FLINT_CHECK(fs::is_directory(dir, ec), ErrorContext{.file = dir}, "not a checkpoint directory");
  SafetensorsCheckpoint c;
  c.dir_ = dir;
  const fs::path single = fs::path(dir) / kSingleFile;
  if (is_existing_file(single)) {
    c.files_.push_back(SafetensorsFile::open(single.string()));
    for (const SafetensorsEntry& e : c.files_[0]->entries()) c.tensors_.emplace(e.name, Located{c.files_[0].get(), &e});
    return c;
  }
  const fs::path index = fs::path(dir) / kIndexFile;
  FLINT_CHECK(is_existing_file(index), ErrorContext{.file = dir}, "no {} or {} in this directory", kSingleFile,
              kIndexFile);
  const std::string index_path = index.string();
  const std::map<std::string, std::string> weight_map = read_weight_map(index_path);

  std::set<std::string> shard_names;
  for (const auto& [tensor, shard] : weight_map) shard_names.insert(shard);
  for (const std::string& shard : shard_names) {
    const fs::path shard_path = fs::path(dir) / shard;
    FLINT_CHECK(is_existing_file(shard_path), ErrorContext{.file = index_path},
                "shard '{}' named in the weight_map is missing ({})", printable(shard), shard_path.string());
    c.files_.push_back(SafetensorsFile::open(shard_path.string()));
  }

  for (const auto& file : c.files_) {
    for (const SafetensorsEntry& e : file->entries()) {
      const ErrorContext at{.file = file->path(), .tensor = printable(e.name)};
      auto [it, inserted] = c.tensors_.emplace(e.name, Located{file.get(), &e});
      FLINT_CHECK(inserted, at, "also in shard {}; a tensor must be in one shard only", it->second.file->path());
      auto listed = weight_map.find(e.name);
      FLINT_CHECK(listed != weight_map.end(), at, "in this shard but not in the weight_map of {}", index_path);
      FLINT_CHECK(fs::path(file->path()).filename() == listed->second, at,
                  "in this shard but the weight_map of {} puts it in '{}'", index_path, printable(listed->second));
    }
  }
  for (const auto& [tensor, shard] : weight_map)
    FLINT_CHECK(c.tensors_.contains(tensor),
                ErrorContext{.file = (fs::path(dir) / shard).string(), .tensor = printable(tensor)},
                "listed in {} but not in this shard", index_path);
  return c;
}

SafetensorsCheckpoint::Located SafetensorsCheckpoint::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? Located{nullptr, nullptr} : it->second;
}

std::vector<SafetensorsCheckpoint::Located> SafetensorsCheckpoint::all() const {
  std::vector<Located> out;
  out.reserve(tensors_.size());
  for (const auto& [name, located] : tensors_) out.push_back(located);
  return out;
}

Tensor SafetensorsCheckpoint::view(const std::string& name) const {
  const Located located = find(name);
  FLINT_CHECK(located.file != nullptr, ErrorContext{.file = dir_, .tensor = printable(name)},
              "not in the checkpoint ({} tensors in {} file{})", tensors_.size(), files_.size(),
              files_.size() == 1 ? "" : "s");
  return located.file->view(*located.entry);
}

}  // namespace flint
