// RMSNorm forward and backward.
// Each exported function takes exactly the arguments of the Kernels method of the same name
// (src/engine/kernels.ts is the contract; src/engine/ts/rmsnorm.ts is the reference it is tested against).
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

Napi::Value RmsnormForward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormForward");
  const int64_t rows = a.size(4, "rows"), dim = a.size(5, "dim");
  const double eps = a.num(6, "eps");
  float* out = a.f32(0, "out", prod({rows, dim}));
  float* rstd = a.f32(1, "rstd", rows);
  const float* x = a.f32(2, "x", prod({rows, dim}));
  const float* w = a.f32(3, "w", dim);
  if (!a.ok()) return a.env().Undefined();
#pragma omp parallel for schedule(static) if (rows * dim > kParallelWork)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    double ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < dim; c++) ss += static_cast<double>(xr[c]) * xr[c];
    const double s = 1.0 / std::sqrt(ss / static_cast<double>(dim) + eps);
    rstd[r] = static_cast<float>(s);
#pragma omp simd
    for (int64_t c = 0; c < dim; c++) o[c] = static_cast<float>(xr[c] * s * w[c]);
  }
  return a.env().Undefined();
}

Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormBackward");
  const int64_t rows = a.size(6, "rows"), dim = a.size(7, "dim");
  const uint64_t n = prod({rows, dim});
  float* dx = a.f32(0, "dx", n);
  float* dw = a.f32(1, "dw", dim, true);
  const float* dout = a.f32(2, "dout", n);
  const float* x = a.f32(3, "x", n);
  const float* w = a.f32(4, "w", dim);
  const float* rstd = a.f32(5, "rstd", rows);
  if (!a.ok()) return a.env().Undefined();
  const bool par = rows * dim > kParallelWork;
  const int nt = par ? omp_get_max_threads() : 1;
  // dw partial sums per thread, combined in thread order afterwards (deterministic).
  std::vector<double> part(dw ? static_cast<size_t>(nt) * dim : 0, 0.0);
#pragma omp parallel num_threads(nt) if (par)
  {
    double* my = dw ? part.data() + static_cast<size_t>(omp_get_thread_num()) * dim : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float* xr = x + r * dim;
      const float* dr = dout + r * dim;
      float* g = dx + r * dim;
      const double s = rstd[r];
      double dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t c = 0; c < dim; c++) dot += static_cast<double>(dr[c]) * w[c] * xr[c];
      const double k = s * s * s * dot / static_cast<double>(dim);
      if (my) {
#pragma omp simd
        for (int64_t c = 0; c < dim; c++) my[c] += static_cast<double>(dr[c]) * xr[c] * s;
      }
      // dx last: it may alias dout.
#pragma omp simd
      for (int64_t c = 0; c < dim; c++) g[c] = static_cast<float>(s * w[c] * dr[c] - k * xr[c]);
    }
  }
  if (dw) {
    for (int64_t c = 0; c < dim; c++) {
      double acc = 0;
      for (int t = 0; t < nt; t++) acc += part[static_cast<size_t>(t) * dim + c];
      dw[c] += static_cast<float>(acc);
    }
  }
  return a.env().Undefined();
}

}  // namespace

void InitRmsnorm(Napi::Env env, Napi::Object exports) {
  exports.Set("rmsnormForward", Napi::Function::New(env, RmsnormForward, "rmsnormForward"));
  exports.Set("rmsnormBackward", Napi::Function::New(env, RmsnormBackward, "rmsnormBackward"));
}
