// Token cross-entropy with its gradient over the logits.
// Each exported function takes exactly the arguments of the Kernels method of the same name
// (src/engine/kernels.ts is the contract; src/engine/ts/crossentropy.ts is the reference it is tested against).
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

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Args a(info, "crossEntropy");
  const int64_t rows = a.size(2, "rows"), V = a.size(3, "V");
  const double dscale = a.num(5, "dscale");
  const uint64_t n = prod({rows, V});
  const float* logits = a.f32(0, "logits", n);
  const int32_t* targets = a.i32(1, "targets", rows);
  float* dlogits = a.f32(4, "dlogits", n, true);
  float* rowLoss = a.f32(6, "rowLoss", rows, true);
  if (!a.ok()) return a.env().Undefined();
  for (int64_t r = 0; r < rows; r++) {
    if (targets[r] >= V) {
      a.fail("targets[" + std::to_string(r) + "] = " + std::to_string(targets[r]) + " is not below the vocabulary size " +
             std::to_string(V));
      return a.env().Undefined();
    }
  }
  std::vector<double> loss(rows, 0.0);
  const float fscale = static_cast<float>(dscale);
#pragma omp parallel for schedule(static) if (n > kParallelWork)
  for (int64_t r = 0; r < rows; r++) {
    const float* x = logits + r * V;
    float* d = dlogits ? dlogits + r * V : nullptr;
    const int32_t t = targets[r];
    if (t < 0) {
      if (d) std::fill(d, d + V, 0.0f);
      continue;
    }
    const float xt = x[t];  // read before d (which may alias x) overwrites the row
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t c = 0; c < V; c++) mx = std::max(mx, x[c]);
    double se = 0;
    if (d) {
      // Exponentials stored once and rescaled: one exp per logit.
      for (int64_t c = 0; c < V; c++) {
        const float e = std::exp(x[c] - mx);
        d[c] = e;
        se += e;
      }
      const float f = static_cast<float>(dscale / se);
#pragma omp simd
      for (int64_t c = 0; c < V; c++) d[c] *= f;
      d[t] -= fscale;
    } else {
      for (int64_t c = 0; c < V; c++) se += std::exp(x[c] - mx);
    }
    loss[r] = static_cast<double>(mx) + std::log(se) - static_cast<double>(xt);
  }
  double total = 0;
  for (int64_t r = 0; r < rows; r++) {
    if (rowLoss) rowLoss[r] = static_cast<float>(loss[r]);
    total += loss[r];
  }
  return Napi::Number::New(a.env(), total);
}

}  // namespace

void InitCrossEntropy(Napi::Env env, Napi::Object exports) {
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy, "crossEntropy"));
}
