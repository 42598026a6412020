// Rotary position embedding (RoPE), forward and its inverse rotation.
// Each exported function takes exactly the arguments of the Kernels method of the same name
// (src/engine/kernels.ts is the contract; src/engine/ts/rope.ts is the reference it is tested against).
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

Napi::Value Rope(const Napi::CallbackInfo& info) {
  Args a(info, "rope");
  const int64_t rows = a.size(2, "rows"), nHeads = a.size(3, "nHeads"), headDim = a.size(4, "headDim");
  const std::string style = a.str(6, "style");
  const bool inverse = a.flag(7, "inverse");
  if (a.ok() && (headDim < 2 || headDim % 2 != 0)) a.fail("headDim must be even and >= 2, got " + std::to_string(headDim));
  if (a.ok() && style != "half" && style != "pairs") a.fail("style must be \"half\" or \"pairs\", got \"" + style + "\"");
  float* x = a.f32(0, "x", prod({rows, nHeads, headDim}));
  const int32_t* pos = a.i32(1, "pos", rows);
  const float* invFreq = a.f32(5, "invFreq", headDim / 2);
  if (!a.ok()) return a.env().Undefined();
  const int64_t half = headDim / 2;
  // Members of pair i: (i, i + half) for rotate_half, (2i, 2i + 1) for llama2.c.
  const int64_t stepA = style == "half" ? 1 : 2, offB = style == "half" ? half : 1;
  const double sign = inverse ? -1.0 : 1.0;
#pragma omp parallel if (rows * nHeads * headDim > kParallelWork)
  {
    std::vector<double> cs(half), sn(half);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float p = static_cast<float>(pos[r]);
      for (int64_t i = 0; i < half; i++) {
        const float angle = p * invFreq[i];  // float32 product, as HF computes freqs
        cs[i] = std::cos(static_cast<double>(angle));
        sn[i] = sign * std::sin(static_cast<double>(angle));
      }
      for (int64_t h = 0; h < nHeads; h++) {
        float* xh = x + (r * nHeads + h) * headDim;
        for (int64_t i = 0; i < half; i++) {
          float* pa = xh + stepA * i;
          float* pb = pa + offB;
          const double xa = *pa, xb = *pb;
          *pa = static_cast<float>(xa * cs[i] - xb * sn[i]);
          *pb = static_cast<float>(xb * cs[i] + xa * sn[i]);
        }
      }
    }
  }
  return a.env().Undefined();
}

}  // namespace

void InitRope(Napi::Env env, Napi::Object exports) {
  exports.Set("rope", Napi::Function::New(env, Rope, "rope"));
}
