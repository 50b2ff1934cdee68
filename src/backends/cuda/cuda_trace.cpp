#include "backends/cuda/cuda_trace.h"

#ifdef FLINT_CUDA_TRACE

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_trace.cuh"
#include "core/error.h"

namespace flint::cuda::trace {
namespace {

std::vector<void (*)(Buffer*)>& binders() {
  static std::vector<void (*)(Buffer*)> all;
  return all;
}

std::string kernel_name(uint32_t tag) {
  static const char* const epilogue[] = {"store", "accumulate", "swiglu", "rope_cache"};
  if (tag >= kGemvRegister && tag < kGemvRegister + 4) return std::string("gemv_register/") + epilogue[tag - kGemvRegister];
  if (tag >= kGemvPipelined && tag < kGemvPipelined + 4) return std::string("gemv_pipelined/") + epilogue[tag - kGemvPipelined];
  switch (tag) {
    case kEmbedding: return "embedding";
    case kRmsNorm: return "rms_norm";
    case kRopeTable: return "rope_table";
    case kRopeCache: return "rope_and_cache";
    case kAttention: return "attention";
    case kCombine: return "combine_splits";
    case kSampleStats: return "sample_stats";
    case kSampleRow: return "sample_row";
    case kConvert: return "convert";
    case kSwiglu: return "swiglu";
    case kBias: return "add_bias";
    case kFallbackLinear: return "linear_fallback";
    case kGatherRows: return "gather_rows";
    default: return "kernel_" + std::to_string(tag);
  }
}

struct Recorder {
  const char* path = std::getenv("FLINT_CUDA_TRACE_FILE");
  long first = 60, count = 8, step = 0;
  Buffer* device = nullptr;
  Record* records = nullptr;
  unsigned long long capacity = 1u << 20;
  bool done = false;

  Recorder() {
    if (const char* s = std::getenv("FLINT_CUDA_TRACE_STEPS")) {
      FLINT_CHECK(std::sscanf(s, "%ld:%ld", &first, &count) == 2 && first >= 0 && count > 0,
                  "FLINT_CUDA_TRACE_STEPS: expected FIRST:COUNT (e.g. 60:8), got '{}'", s);
    }
  }

  void set_capacity(unsigned long long c, cudaStream_t stream) {
    static unsigned long long value;  // outlives the asynchronous copy
    value = c;
    FLINT_CUDA_CHECK(cudaMemcpyAsync(&device->capacity, &value, sizeof value, cudaMemcpyHostToDevice, stream));
    FLINT_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  void on_step(cudaStream_t stream) {
    if (path == nullptr || done) return;
    if (device == nullptr) {
      FLINT_CUDA_CHECK(cudaMalloc(&device, sizeof(Buffer)));
      FLINT_CUDA_CHECK(cudaMalloc(&records, capacity * sizeof(Record)));
      const Buffer init{0, 0, records};
      FLINT_CUDA_CHECK(cudaMemcpy(device, &init, sizeof init, cudaMemcpyHostToDevice));
      for (auto bind : binders()) bind(device);
      FLINT_CUDA_CHECK(cudaGetLastError());
    }
    if (step == first) {
      FLINT_CUDA_CHECK(cudaMemsetAsync(&device->count, 0, sizeof device->count, stream));
      set_capacity(capacity, stream);
    }
    if (step == first + count) {
      set_capacity(0, stream);
      write();
      done = true;
    }
    ++step;
  }

  void write() {
    unsigned long long n = 0;
    FLINT_CUDA_CHECK(cudaMemcpy(&n, &device->count, sizeof n, cudaMemcpyDeviceToHost));
    if (n > capacity) {
      std::fprintf(stderr, "flint trace: %llu records, the first %llu kept\n", n, capacity);
      n = capacity;
    }
    std::vector<Record> host(n);
    FLINT_CUDA_CHECK(cudaMemcpy(host.data(), records, n * sizeof(Record), cudaMemcpyDeviceToHost));
    FILE* f = std::fopen(path, "w");
    FLINT_CHECK(f != nullptr, "FLINT_CUDA_TRACE_FILE: cannot write {}", path);
    std::fprintf(f, "kernel,block,grid,sm,entry,wait_begin,wait_end,exit\n");
    for (const Record& r : host)
      std::fprintf(f, "%s,%u,%u,%u,%llu,%llu,%llu,%llu\n", kernel_name(r.kernel).c_str(), r.block, r.grid, r.sm,
                   static_cast<unsigned long long>(r.entry), static_cast<unsigned long long>(r.wait_begin),
                   static_cast<unsigned long long>(r.wait_end), static_cast<unsigned long long>(r.exit));
    std::fclose(f);
    std::fprintf(stderr, "flint trace: %llu CTA records of steps %ld-%ld written to %s\n", n, first,
                 first + count - 1, path);
  }
};

}  // namespace

int register_binder(void (*bind)(Buffer*)) {
  binders().push_back(bind);
  return static_cast<int>(binders().size());
}

void on_step(cudaStream_t stream) {
  static Recorder recorder;
  recorder.on_step(stream);
}

}  // namespace flint::cuda::trace

#else

namespace flint::cuda::trace {
void on_step(cudaStream_t) {}
}  // namespace flint::cuda::trace

#endif
