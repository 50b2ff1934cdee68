// Which instruction set the CPU kernels run with, decided once per process.
#include <atomic>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_simd.h"
#include "core/error.h"

namespace flint::cpu {
namespace {

// -1: no override; otherwise the Isa value. Atomic because OpenMP workers read it.
std::atomic<int> g_override{-1};

}  // namespace

Isa detected_isa() {
#if FLINT_CPU_HAVE_AVX2_KERNELS
  static const Isa isa = [] {
    __builtin_cpu_init();
    const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return ok ? Isa::avx2 : Isa::generic;
  }();
  return isa;
#else
  return Isa::generic;
#endif
}

Isa active_isa() {
  const int o = g_override.load(std::memory_order_relaxed);
  return o < 0 ? detected_isa() : static_cast<Isa>(o);
}

void set_isa_override(std::optional<Isa> isa) {
  FLINT_CHECK(!isa || *isa != Isa::avx2 || detected_isa() == Isa::avx2,
              "this CPU lacks AVX2/FMA/F16C; the avx2 kernels cannot run");
  g_override.store(isa ? static_cast<int>(*isa) : -1, std::memory_order_relaxed);
}

}  // namespace flint::cpu
