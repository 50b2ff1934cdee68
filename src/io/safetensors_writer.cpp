// Writing safetensors files and sharded checkpoints.
//
// Layout: the header lists tensors in the caller's order; the data section is
// packed back to back (the reference reader rejects gaps) with the widest
// element types first, so that every tensor starts at a multiple of its element
// size once the header is space-padded to a multiple of 8 — the same trick the
// reference writer uses. Files are written to a temporary name and renamed, so
// a crash never leaves a half-written file under the real name.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <set>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/strict_json.h"

namespace flint {
namespace {

namespace fs = std::filesystem;

// A file being written under a temporary name next to `path`.
class PendingFile {
 public:
  explicit PendingFile(std::string path) : path_(std::move(path)) {
    // O_EXCL with a fresh name rather than mkstemp: mkstemp makes 0600 files,
    // and a checkpoint should get the usual permissions (0666 less the umask).
    static std::atomic<uint64_t> counter{0};
    for (int attempt = 0; fd_ < 0; ++attempt) {
      temp_ = fmt::format("{}.tmp-{}-{}", path_, ::getpid(), counter++);
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && (errno != EEXIST || attempt > 100))
        fail({.file = path_}, "cannot create a file to write: {}", std::strerror(errno));
    }
  }
  ~PendingFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;

  void write(const void* data, size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t n = ::write(fd_, p, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail({.file = path_}, "write failed: {}", n < 0 ? std::strerror(errno) : "no progress");
      p += n;
      size -= static_cast<size_t>(n);
    }
  }

  void commit() {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail({.file = path_}, "write failed on close: {}", std::strerror(errno));
    if (::rename(temp_.c_str(), path_.c_str()) != 0) fail({.file = path_}, "cannot rename: {}", std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string path_;
  std::string temp_;
  int fd_ = -1;
  bool committed_ = false;
};

void check_utf8(const std::string& text, const ErrorContext& at, const char* what) {
  try {
    (void)nlohmann::json(text).dump();
  } catch (const nlohmann::json::exception&) {
    fail(at, "{} '{}' is not valid UTF-8", what, printable(text));
  }
}

uint64_t element_bytes(DType t) { return static_cast<uint64_t>(dtype_bits(t) / 8); }

// Fails, naming the tensor, on anything that cannot be stored.
void check_writable(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::set<std::string_view> names;
  for (const auto& [name, t] : tensors) {
    const ErrorContext at{.file = path, .tensor = printable(name)};
    FLINT_CHECK(name != "__metadata__", at, "this name is reserved for the file's metadata");
    FLINT_CHECK(names.insert(name).second, at, "given twice; tensor names must be unique");
    check_utf8(name, at, "name");
    FLINT_CHECK(t.defined(), at, "tensor has no data");
    FLINT_CHECK(t.device() == Device::cpu, at, "tensor is on {}; copy it to the host first", device_name(t.device()));
    FLINT_CHECK(dtype_safetensors_name(t.dtype()).has_value(), at,
                "dtype {} has no safetensors name; store packed 4-bit data as U8 or I32", dtype_name(t.dtype()));
  }
}

// Shards as huggingface_hub's split_state_dict_into_shards makes them: fill a
// shard until the next tensor would tip it over the limit; a tensor larger than
// the limit gets a shard of its own.
std::vector<std::vector<size_t>> plan_shards(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                             uint64_t max_shard_bytes) {
  std::vector<std::vector<size_t>> shards;
  std::vector<size_t> current;
  uint64_t current_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t bytes = tensors[i].second.nbytes();
    if (bytes > max_shard_bytes) {
      shards.push_back({i});
      continue;
    }
    if (current_bytes + bytes > max_shard_bytes) {
      shards.push_back(std::move(current));
      current = {};
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += bytes;
  }
  if (!current.empty()) shards.push_back(std::move(current));
  return shards;
}

bool is_shard_file_name(const std::string& name) {
  // model-00001-of-00003.safetensors
  if (name.size() != 32 || !name.starts_with("model-") || !name.ends_with(".safetensors")) return false;
  if (name.substr(11, 4) != "-of-") return false;
  for (size_t i : {6, 7, 8, 9, 10, 15, 16, 17, 18, 19})
    if (name[i] < '0' || name[i] > '9') return false;
  return true;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  check_writable(path, tensors);
  std::vector<Tensor> data;  // contiguous host copies where the input is strided
  for (const auto& [name, t] : tensors) data.push_back(t.is_contiguous() ? t : t.contiguous_copy());
  for (const auto& [key, value] : metadata) {
    check_utf8(key, ErrorContext{.file = path, .field = "__metadata__"}, "key");
    check_utf8(value, ErrorContext{.file = path, .field = "__metadata__"}, "value");
  }

  std::vector<size_t> order(data.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return element_bytes(data[a].dtype()) > element_bytes(data[b].dtype()); });
  std::vector<std::pair<uint64_t, uint64_t>> ranges(data.size());
  uint64_t offset = 0;
  for (size_t i : order) {
    ranges[i] = {offset, offset + data[i].nbytes()};
    offset = ranges[i].second;
  }

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (size_t i = 0; i < data.size(); ++i) {
    nlohmann::ordered_json entry;
    entry["dtype"] = *dtype_safetensors_name(data[i].dtype());
    entry["shape"] = data[i].shape();
    entry["data_offsets"] = {ranges[i].first, ranges[i].second};
    header[tensors[i].first] = std::move(entry);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  PendingFile out(path);
  unsigned char length[8];
  for (int b = 0; b < 8; ++b) length[b] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * b));
  out.write(length, sizeof length);
  out.write(text.data(), text.size());
  for (size_t i : order) out.write(data[i].raw(), static_cast<size_t>(data[i].nbytes()));
  out.commit();
}

void write_sharded_safetensors(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& tensors,
                               uint64_t max_shard_bytes) {
  FLINT_CHECK(max_shard_bytes > 0, ErrorContext{.file = dir}, "the maximum shard size must be positive");
  check_writable(dir, tensors);  // fail on a bad name before any file exists
  std::error_code ec;
  fs::create_directories(dir, ec);
  FLINT_CHECK(!ec, ErrorContext{.file = dir}, "cannot create directory: {}", ec.message());

  const std::vector<std::vector<size_t>> shards = plan_shards(tensors, max_shard_bytes);
  FLINT_CHECK(shards.size() <= 99999, ErrorContext{.file = dir}, "{} shards is more than 5-digit names allow",
              shards.size());
  nlohmann::json weight_map = nlohmann::json::object();
  std::set<std::string> written;
  uint64_t total_size = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name = fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards.size());
    std::vector<std::pair<std::string, Tensor>> shard;
    for (size_t i : shards[s]) {
      shard.push_back(tensors[i]);
      weight_map[tensors[i].first] = name;
      total_size += tensors[i].second.nbytes();
    }
    // transformers refuses safetensors files whose metadata lacks "format".
    write_safetensors((fs::path(dir) / name).string(), shard, {{"format", "pt"}});
    written.insert(name);
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
  // json.dumps(index, indent=2, sort_keys=True) + "\n", as save_pretrained writes it.
  const std::string text = index.dump(2, ' ', true) + "\n";
  const std::string index_path = (fs::path(dir) / "model.safetensors.index.json").string();
  PendingFile out(index_path);
  out.write(text.data(), text.size());
  out.commit();

  // Weights from an earlier save would shadow (model.safetensors is read before
  // the index) or clutter the new checkpoint; save_pretrained removes them too.
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if ((name == "model.safetensors" || is_shard_file_name(name)) && !written.contains(name)) {
      std::error_code ignored;
      fs::remove(it->path(), ignored);
    }
  }
}

}  // namespace flint
