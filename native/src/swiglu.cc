// SwiGLU (silu(gate) * up), forward and backward.
// Each exported function takes exactly the arguments of the Kernels method of the same name
// (src/engine/kernels.ts is the contract; src/engine/ts/swiglu.ts is the reference it is tested against).
//
// Loops are split with OpenMP; reductions that decide something run in double, and results never
// depend on the thread count (per-thread partial sums are combined in a fixed order).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <omp.h>

#include "args.h"
#include "kernels.h"
#include "parallel.h"

namespace {

using nuggets_native::Args;
using nuggets_native::kParallelWork;
using nuggets_native::prod;

Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  Args a(info, "swigluForward");
  const int64_t n = a.size(3, "n");
  float* out = a.f32(0, "out", n);
  const float* gate = a.f32(1, "gate", n);
  const float* up = a.f32(2, "up", n);
  if (!a.ok()) return a.env().Undefined();
#pragma omp parallel for simd schedule(static) if (n > kParallelWork)
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
  return a.env().Undefined();
}

Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  Args a(info, "swigluBackward");
  const int64_t n = a.size(5, "n");
  float* dgate = a.f32(0, "dgate", n);
  float* dup = a.f32(1, "dup", n);
  const float* dout = a.f32(2, "dout", n);
  const float* gate = a.f32(3, "gate", n);
  const float* up = a.f32(4, "up", n);
  if (!a.ok()) return a.env().Undefined();
#pragma omp parallel for simd schedule(static) if (n > kParallelWork)
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i], d = dout[i], u = up[i];
    const float sig = 1.0f / (1.0f + std::exp(-g));
    dup[i] = d * g * sig;
    dgate[i] = d * u * sig * (1.0f + g * (1.0f - sig));
  }
  return a.env().Undefined();
}

}  // namespace

void InitSwiglu(Napi::Env env, Napi::Object exports) {
  exports.Set("swigluForward", Napi::Function::New(env, SwigluForward, "swigluForward"));
  exports.Set("swigluBackward", Napi::Function::New(env, SwigluBackward, "swigluBackward"));
}
