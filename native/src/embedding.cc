// Token embedding lookup, forward and backward (scatter-add into the table gradient).
// Each exported function takes exactly the arguments of the Kernels method of the same name
// (src/engine/kernels.ts is the contract; src/engine/ts/embedding.ts is the reference it is tested against).
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

bool checkIds(Args& a, const int32_t* ids, int64_t n, int64_t vocab) {
  for (int64_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      a.fail("ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is outside the table's " +
             std::to_string(vocab) + " rows");
      return false;
    }
  }
  return true;
}

int64_t tableRows(const Napi::CallbackInfo& info, size_t i, int64_t dim) {
  if (dim <= 0 || !info[i].IsTypedArray()) return 0;
  return static_cast<int64_t>(info[i].As<Napi::TypedArray>().ElementLength()) / dim;
}

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingForward");
  const int64_t n = a.size(3, "n"), dim = a.size(4, "dim");
  float* out = a.f32(0, "out", prod({n, dim}));
  const int32_t* ids = a.i32(1, "ids", n);
  const float* table = a.f32(2, "table", 0);
  if (!a.ok() || !checkIds(a, ids, n, tableRows(info, 2, dim))) return a.env().Undefined();
#pragma omp parallel for schedule(static) if (n * dim > kParallelWork)
  for (int64_t i = 0; i < n; i++) std::memcpy(out + i * dim, table + static_cast<int64_t>(ids[i]) * dim, sizeof(float) * dim);
  return a.env().Undefined();
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingBackward");
  const int64_t n = a.size(3, "n"), dim = a.size(4, "dim");
  float* dtable = a.f32(0, "dtable", 0);
  const float* dout = a.f32(1, "dout", prod({n, dim}));
  const int32_t* ids = a.i32(2, "ids", n);
  if (!a.ok() || !checkIds(a, ids, n, tableRows(info, 0, dim))) return a.env().Undefined();
  // Split over columns, not ids: repeated ids then never race, and each column is summed in id order.
#pragma omp parallel if (n * dim > kParallelWork && dim >= 32)
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t c0 = dim * t / nt, c1 = dim * (t + 1) / nt;
    for (int64_t i = 0; i < n; i++) {
      float* dst = dtable + static_cast<int64_t>(ids[i]) * dim;
      const float* src = dout + i * dim;
#pragma omp simd
      for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
  }
  return a.env().Undefined();
}

}  // namespace

void InitEmbedding(Napi::Env env, Napi::Object exports) {
  exports.Set("embeddingForward", Napi::Function::New(env, EmbeddingForward, "embeddingForward"));
  exports.Set("embeddingBackward", Napi::Function::New(env, EmbeddingBackward, "embeddingBackward"));
}
