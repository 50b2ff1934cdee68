// io/safetensors.h — reading and writing the safetensors format.
//
// Format: u64 little-endian header length N, then N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {"k": "v"}}, then the data section; offsets are relative to it.
//
// Contract:
// - open() maps the file and validates everything before any use: header length
//   against the file size, well-formed JSON object, every entry's fields and
//   types, known dtype, shape x dtype size == end - begin, every range inside
//   the data section, no two ranges overlapping. A violation throws flint::Error
//   naming the file and, where there is one, the tensor. Nothing reads out of
//   bounds on any input.
//   As the reference reader (huggingface/safetensors) does, the header is at
//   most 100 MB, starts with '{' and is padded only with spaces, and the ranges
//   tile the data section exactly: no gaps, no bytes after the last tensor.
//   Also rejected: a key repeated in one JSON object, unknown keys in an entry,
//   dtypes Flint has no kernels for (F64, BOOL, U16, ...), __metadata__ values
//   that are not strings. Allowed: scalars (shape []), zero-sized tensors, an
//   empty tensor name, a null __metadata__, header order unlike data order.
// - entries() are in header order (the order the writer was given).
// - view() returns a Tensor that views the mapping (no copy) and keeps it alive.
//   A hostile file can place a tensor at an address that is not a multiple of
//   its element size; x86 reads such views fine, files Flint writes never do it.
//   The file must not be truncated while mapped (that would be SIGBUS).
// - A checkpoint is a directory with model.safetensors, or with
//   model.safetensors.index.json whose "weight_map" names the shard of each
//   tensor; every shard must exist and hold exactly the tensors the index says.
//   Shard names must be plain file names in the directory (no '/', no '..').
//   When both exist, model.safetensors wins, as in transformers' from_pretrained.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace flint {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  uint64_t begin = 0;  // byte offsets in the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  static std::shared_ptr<const SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // in file order
  const SafetensorsEntry* find(const std::string& name) const;               // nullptr if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t data_offset() const { return data_offset_; }  // 8 + header length

  Tensor view(const SafetensorsEntry& entry) const;
  Tensor view(const std::string& name) const;  // throws naming the tensor if absent

 private:
  SafetensorsFile() = default;
  std::shared_ptr<MappedFile> file_;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  uint64_t data_offset_ = 0;
};

class SafetensorsCheckpoint {
 public:
  // `dir` holds model.safetensors or model.safetensors.index.json + shards.
  static SafetensorsCheckpoint open(const std::string& dir);

  struct Located {
    const SafetensorsFile* file;
    const SafetensorsEntry* entry;
  };
  // nullopt-like: file/entry null when absent.
  Located find(const std::string& name) const;
  std::vector<Located> all() const;  // every tensor, sorted by name
  Tensor view(const std::string& name) const;  // throws naming the tensor if absent
  const std::vector<std::shared_ptr<const SafetensorsFile>>& files() const { return files_; }

 private:
  std::string dir_;
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::map<std::string, Located> tensors_;
};

// Writes tensors (host, any strides) with header entries in the given order;
// the data section is packed back to back, widest element types first, after a
// header space-padded to a multiple of 8, so every tensor is naturally aligned.
// Metadata goes to "__metadata__" as given (transformers wants "format": "pt"
// in it when it is present). The file appears atomically (temp file + rename).
// Throws flint::Error naming the path on I/O failure or a duplicate name.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes model-0000i-of-0000n.safetensors shards of at most ~max_shard_bytes
// each (a tensor is never split) plus model.safetensors.index.json, as
// transformers' save_pretrained does: huggingface_hub's split (a tensor larger
// than the limit gets a shard of its own), {"format": "pt"} in each shard, the
// index as json.dumps(indent=2, sort_keys=True), and earlier model.safetensors
// or model-*-of-*.safetensors files in `dir` removed. Unlike save_pretrained,
// a single shard is still written as a shard with an index.
void write_sharded_safetensors(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& tensors,
                               uint64_t max_shard_bytes);

}  // namespace flint
