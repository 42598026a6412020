// Sensitivity accumulation of docs/method.md step 1, S += |theta * grad|, and the float64 sums
// (whole, per row, per column) of steps 2-3. Each exported function takes exactly the arguments of
// the Kernels method of the same name (src/engine/kernels.ts); src/engine/ts/sensitivity.ts is the
// reference.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
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

Napi::Value SensAccumulate(const Napi::CallbackInfo& info) {
  Args a(info, "sensAccumulate");
  const int64_t n = a.size(3, "n");
  float* S = a.f32(0, "S", n);
  const float* theta = a.f32(1, "theta", n);
  const float* grad = a.f32(2, "grad", n);
  if (!a.ok()) return a.env().Undefined();
#pragma omp parallel for simd schedule(static) if (n > kParallelWork)
  for (int64_t i = 0; i < n; i++) S[i] += std::fabs(theta[i] * grad[i]);
  return a.env().Undefined();
}

// Fixed-size chunks summed in parallel, then the chunk sums in order: the result does not depend on
// the number of threads.
constexpr int64_t kChunk = 1 << 16;

double chunkedSum(const float* x, int64_t n) {
  const int64_t nch = (n + kChunk - 1) / kChunk;
  std::vector<double> part(nch, 0.0);
#pragma omp parallel for schedule(static) if (n > kParallelWork)
  for (int64_t ch = 0; ch < nch; ch++) {
    const int64_t lo = ch * kChunk, hi = std::min(n, lo + kChunk);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = lo; i < hi; i++) s += x[i];
    part[ch] = s;
  }
  double s = 0;
  for (double p : part) s += p;
  return s;
}

Napi::Value Sum(const Napi::CallbackInfo& info) {
  Args a(info, "sum");
  const int64_t n = a.size(1, "n");
  const float* x = a.f32(0, "x", n);
  if (!a.ok()) return a.env().Undefined();
  return Napi::Number::New(a.env(), chunkedSum(x, n));
}

Napi::Value RowSums(const Napi::CallbackInfo& info) {
  Args a(info, "rowSums");
  const int64_t rows = a.size(2, "rows"), cols = a.size(3, "cols");
  double* out = a.f64(0, "out", rows);
  const float* x = a.f32(1, "x", prod({rows, cols}));
  if (!a.ok()) return a.env().Undefined();
#pragma omp parallel for schedule(static) if (rows * cols > kParallelWork)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < cols; c++) s += xr[c];
    out[r] = s;
  }
  return a.env().Undefined();
}

Napi::Value ColSums(const Napi::CallbackInfo& info) {
  Args a(info, "colSums");
  const int64_t rows = a.size(2, "rows"), cols = a.size(3, "cols");
  double* out = a.f64(0, "out", cols);
  const float* x = a.f32(1, "x", prod({rows, cols}));
  if (!a.ok()) return a.env().Undefined();
  // Each thread owns a band of columns and walks every row: no shared accumulators.
#pragma omp parallel if (rows * cols > kParallelWork && cols >= 64)
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t c0 = cols * t / nt, c1 = cols * (t + 1) / nt;
    std::fill(out + c0, out + c1, 0.0);
    for (int64_t r = 0; r < rows; r++) {
      const float* xr = x + r * cols;
#pragma omp simd
      for (int64_t c = c0; c < c1; c++) out[c] += xr[c];
    }
  }
  return a.env().Undefined();
}

}  // namespace

void InitSensitivity(Napi::Env env, Napi::Object exports) {
  exports.Set("sensAccumulate", Napi::Function::New(env, SensAccumulate, "sensAccumulate"));
  exports.Set("sum", Napi::Function::New(env, Sum, "sum"));
  exports.Set("rowSums", Napi::Function::New(env, RowSums, "rowSums"));
  exports.Set("colSums", Napi::Function::New(env, ColSums, "colSums"));
}
