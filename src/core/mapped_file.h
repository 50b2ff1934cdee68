// core/mapped_file.h — a whole file mapped read-only into memory.
//
// Contract: open() maps the file (empty files give an empty span, no mapping)
// or throws flint::Error naming the path. The mapping lives as long as the last
// shared_ptr to it; it is also a Storage, so tensors can view it directly.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "core/tensor.h"

namespace flint {

class MappedFile final : public Storage {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile() override;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }

  std::byte* data() override { return data_; }
  size_t size() const override { return size_; }
  Device device() const override { return Device::cpu; }

 private:
  MappedFile(std::string path, std::byte* data, size_t size) : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  std::byte* data_;
  size_t size_;
};

// Reads a whole (small) file into a string; throws flint::Error naming the path.
std::string read_file(const std::string& path);

}  // namespace flint
