// What every OpenMP-parallel kernel file shares.
#pragma once
#include <cstdint>

namespace nuggets_native {

// Below this much work a parallel region costs more than it saves (decode steps, tiny tests).
constexpr int64_t kParallelWork = 1 << 15;

}  // namespace nuggets_native
