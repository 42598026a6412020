// One AdamW step (decoupled weight decay).
// Each exported function takes exactly the arguments of the Kernels method of the same name
// (src/engine/kernels.ts is the contract; src/engine/ts/adamw.ts is the reference it is tested against).
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

Napi::Value Adamw(const Napi::CallbackInfo& info) {
  Args a(info, "adamw");
  const int64_t n = a.size(4, "n");
  const double lr = a.num(5, "lr"), b1 = a.num(6, "beta1"), b2 = a.num(7, "beta2"), eps = a.num(8, "eps"),
               wd = a.num(9, "weightDecay"), step = a.num(10, "step");
  if (a.ok() && !(step >= 1 && step == std::floor(step))) a.fail("step must be an integer >= 1 (1-based), got " + std::to_string(step));
  float* p = a.f32(0, "param", n);
  const float* g = a.f32(1, "grad", n);
  float* m = a.f32(2, "m", n);
  float* v = a.f32(3, "v", n);
  if (!a.ok()) return a.env().Undefined();
  // torch.optim.AdamW (single-tensor path), scalars in double like torch's Python-side arithmetic.
  const double decay = 1.0 - lr * wd;
  const double stepSize = lr / (1.0 - std::pow(b1, step));
  const double bc2sqrt = std::sqrt(1.0 - std::pow(b2, step));
#pragma omp parallel for simd schedule(static) if (n > kParallelWork)
  for (int64_t i = 0; i < n; i++) {
    const double gi = g[i];
    const float mi = static_cast<float>(b1 * m[i] + (1.0 - b1) * gi);
    const float vi = static_cast<float>(b2 * v[i] + (1.0 - b2) * gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] = static_cast<float>(p[i] * decay - stepSize * (mi / (std::sqrt(static_cast<double>(vi)) / bc2sqrt + eps)));
  }
  return a.env().Undefined();
}

}  // namespace

void InitAdamw(Napi::Env env, Napi::Object exports) {
  exports.Set("adamw", Napi::Function::New(env, Adamw, "adamw"));
}
