// Fused kernels of the transformer forward/backward and the optimiser: RMSNorm, RoPE, attention,
// SwiGLU, embedding, cross-entropy, AdamW. Each exported function takes exactly the arguments of the
// Kernels method of the same name (src/engine/kernels.ts is the contract; the TypeScript versions in
// src/engine/ts/ are the reference these are tested against).
//
// Loops are split over rows or (batch, head, row) with OpenMP so both cores work. Reductions that
// decide something (sums of squares, softmax denominators, loss sums) run in double. Results never
// depend on the thread count: per-thread partial sums are combined in a fixed order.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <omp.h>

#include "kernels.h"

namespace {

// ------------------------------------------------------------------ argument checking
// Every buffer length is checked against what the kernel will touch: a wrong size from JavaScript
// must be an exception, never a write past the end of a typed array.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn) : info_(info), env_(info.Env()), fn_(fn) {}

  bool ok() const { return !failed_; }
  Napi::Env env() const { return env_; }

  void fail(const std::string& msg, bool typeError = false) {
    if (failed_) return;  // one exception per call
    failed_ = true;
    const std::string m = std::string(fn_) + ": " + msg;
    if (typeError) Napi::TypeError::New(env_, m).ThrowAsJavaScriptException();
    else Napi::RangeError::New(env_, m).ThrowAsJavaScriptException();
  }

  // A non-negative integer (a size), below 2^31.
  int64_t size(size_t i, const char* name) {
    if (failed_) return 0;
    if (i >= info_.Length() || !info_[i].IsNumber()) { fail(std::string(name) + " must be a number", true); return 0; }
    const double d = info_[i].As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d) || d > 2147483647.0) {
      fail(std::string(name) + " must be a non-negative integer below 2^31, got " + std::to_string(d));
      return 0;
    }
    return static_cast<int64_t>(d);
  }

  double num(size_t i, const char* name) {
    if (failed_) return 0;
    if (i >= info_.Length() || !info_[i].IsNumber()) { fail(std::string(name) + " must be a number", true); return 0; }
    return info_[i].As<Napi::Number>().DoubleValue();
  }

  bool flag(size_t i, const char* name) {
    if (failed_) return false;
    if (i >= info_.Length() || !info_[i].IsBoolean()) { fail(std::string(name) + " must be a boolean", true); return false; }
    return info_[i].As<Napi::Boolean>().Value();
  }

  std::string str(size_t i, const char* name) {
    if (failed_) return "";
    if (i >= info_.Length() || !info_[i].IsString()) { fail(std::string(name) + " must be a string", true); return ""; }
    return info_[i].As<Napi::String>().Utf8Value();
  }

  bool isNull(size_t i) const { return i >= info_.Length() || info_[i].IsNull() || info_[i].IsUndefined(); }

  // A typed array of the given type holding at least `need` elements (null allowed when nullable).
  template <typename T>
  T* array(size_t i, const char* name, napi_typedarray_type type, const char* typeName, uint64_t need, bool nullable) {
    if (failed_) return nullptr;
    if (nullable && isNull(i)) return nullptr;
    if (i >= info_.Length() || !info_[i].IsTypedArray() || info_[i].As<Napi::TypedArray>().TypedArrayType() != type) {
      fail(std::string(name) + " must be a " + typeName + (nullable ? " or null" : ""), true);
      return nullptr;
    }
    Napi::TypedArrayOf<T> a = info_[i].As<Napi::TypedArrayOf<T>>();
    if (static_cast<uint64_t>(a.ElementLength()) < need) {
      fail(std::string(name) + " has " + std::to_string(a.ElementLength()) + " elements, the sizes given need " +
           std::to_string(need));
      return nullptr;
    }
    return a.Data();
  }
  float* f32(size_t i, const char* name, uint64_t need, bool nullable = false) {
    return array<float>(i, name, napi_float32_array, "Float32Array", need, nullable);
  }
  int32_t* i32(size_t i, const char* name, uint64_t need) {
    return array<int32_t>(i, name, napi_int32_array, "Int32Array", need, false);
  }
  uint8_t* u8(size_t i, const char* name, uint64_t need, bool nullable) {
    return array<uint8_t>(i, name, napi_uint8_array, "Uint8Array", need, nullable);
  }

 private:
  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  const char* fn_;
  bool failed_ = false;
};

// Product of sizes, saturating instead of wrapping (a saturated need always fails the length check).
uint64_t prod(std::initializer_list<int64_t> xs) {
  uint64_t p = 1;
  for (int64_t x : xs) {
    if (__builtin_mul_overflow(p, static_cast<uint64_t>(x), &p)) return UINT64_MAX;
  }
  return p;
}

// Below this much work a parallel region costs more than it saves (decode steps, tiny tests).
constexpr int64_t kParallelWork = 1 << 15;

// ------------------------------------------------------------------ RMSNorm
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

// ------------------------------------------------------------------ RoPE
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

// ------------------------------------------------------------------ attention
struct AttnShape {
  int64_t B, Tq, Tk, Hq, Hkv, hd;
};

bool attnShape(Args& a, size_t first, AttnShape& s) {
  s.B = a.size(first, "B");
  s.Tq = a.size(first + 1, "Tq");
  s.Tk = a.size(first + 2, "Tk");
  s.Hq = a.size(first + 3, "Hq");
  s.Hkv = a.size(first + 4, "Hkv");
  s.hd = a.size(first + 5, "hd");
  if (!a.ok()) return false;
  if (s.B < 1 || s.Tq < 1 || s.Tk < 1 || s.Hq < 1 || s.Hkv < 1 || s.hd < 1) a.fail("every size must be >= 1");
  else if (s.Hq % s.Hkv != 0) a.fail("Hq (" + std::to_string(s.Hq) + ") must be a multiple of Hkv (" + std::to_string(s.Hkv) + ")");
  return a.ok();
}

inline float dotf(const float* a, const float* b, int64_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < n; c++) s += a[c] * b[c];
  return s;
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionForward");
  AttnShape sh;
  if (!attnShape(a, 6, sh)) return a.env().Undefined();
  // Plain copies (OpenMP clauses cannot name structured bindings).
  const int64_t B = sh.B, Tq = sh.Tq, Tk = sh.Tk, Hq = sh.Hq, Hkv = sh.Hkv, hd = sh.hd;
  const double scale = a.num(12, "scale");
  float* out = a.f32(0, "out", prod({B, Tq, Hq, hd}));
  float* probs = a.f32(1, "probs", prod({B, Hq, Tq, Tk}));
  const float* q = a.f32(2, "q", prod({B, Tq, Hq, hd}));
  const float* k = a.f32(3, "k", prod({B, Tk, Hkv, hd}));
  const float* v = a.f32(4, "v", prod({B, Tk, Hkv, hd}));
  const uint8_t* mask = a.u8(5, "keyMask", prod({B, Tk}), true);
  if (!a.ok()) return a.env().Undefined();
  const int64_t group = Hq / Hkv, shift = Tk - Tq;
  const float fscale = static_cast<float>(scale);
#pragma omp parallel if (B * Hq * Tq * Tk * hd > kParallelWork)
  {
    std::vector<float> acc(hd);
    // Rows are interleaved across threads (dynamic chunks): causal rows grow in cost with i.
#pragma omp for collapse(3) schedule(dynamic, 4)
    for (int64_t b = 0; b < B; b++) {
      for (int64_t h = 0; h < Hq; h++) {
        for (int64_t i = 0; i < Tq; i++) {
          const int64_t kh = h / group;
          const float* qi = q + ((b * Tq + i) * Hq + h) * hd;
          float* p = probs + ((b * Hq + h) * Tq + i) * Tk;
          float* o = out + ((b * Tq + i) * Hq + h) * hd;
          const int64_t last = std::min(Tk - 1, shift + i);
          float mx = -INFINITY;
          bool any = false;
          for (int64_t j = 0; j <= last; j++) {
            if (mask && mask[b * Tk + j] == 0) continue;
            const float s = fscale * dotf(qi, k + ((b * Tk + j) * Hkv + kh) * hd, hd);
            p[j] = s;
            any = true;
            if (s > mx) mx = s;
          }
          if (!any) {
            std::fill(p, p + Tk, 0.0f);
            std::fill(o, o + hd, 0.0f);
            continue;
          }
          double se = 0;
          for (int64_t j = 0; j <= last; j++) {
            if (mask && mask[b * Tk + j] == 0) { p[j] = 0.0f; continue; }
            const float e = std::exp(p[j] - mx);
            p[j] = e;
            se += e;
          }
          if (last + 1 < Tk) std::fill(p + std::max<int64_t>(last + 1, 0), p + Tk, 0.0f);
          const float inv = static_cast<float>(1.0 / se);
          std::fill(acc.begin(), acc.end(), 0.0f);
          float* ac = acc.data();
          for (int64_t j = 0; j <= last; j++) {
            if (p[j] == 0.0f) continue;
            const float pj = p[j] * inv;
            p[j] = pj;
            const float* vj = v + ((b * Tk + j) * Hkv + kh) * hd;
#pragma omp simd
            for (int64_t c = 0; c < hd; c++) ac[c] += pj * vj[c];
          }
          std::memcpy(o, ac, sizeof(float) * hd);
        }
      }
    }
  }
  return a.env().Undefined();
}

// Backward in two race-free passes (no atomics, no per-thread copies of dk/dv):
//  1. per query row (b, h, i): dP_ij = dout_i . v_j, D_i = sum_j P_ij dP_ij, dq_i = scale sum_j P_ij (dP_ij - D_i) k_j;
//  2. per block of keys (b, kv head, j..j+7): dv_j = sum_{h in group, i} P_ij dout_i and
//     dk_j = scale sum P_ij (dout_i . v_j - D_i) q_i (dP recomputed rather than stored: no [B,Hq,Tq,Tk] buffer).
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionBackward");
  AttnShape sh;
  if (!attnShape(a, 8, sh)) return a.env().Undefined();
  // Plain copies (OpenMP clauses cannot name structured bindings).
  const int64_t B = sh.B, Tq = sh.Tq, Tk = sh.Tk, Hq = sh.Hq, Hkv = sh.Hkv, hd = sh.hd;
  const double scale = a.num(14, "scale");
  const uint64_t nq = prod({B, Tq, Hq, hd}), nk = prod({B, Tk, Hkv, hd});
  float* dq = a.f32(0, "dq", nq);
  float* dk = a.f32(1, "dk", nk);
  float* dv = a.f32(2, "dv", nk);
  const float* dout = a.f32(3, "dout", nq);
  const float* q = a.f32(4, "q", nq);
  const float* k = a.f32(5, "k", nk);
  const float* v = a.f32(6, "v", nk);
  const float* probs = a.f32(7, "probs", prod({B, Hq, Tq, Tk}));
  if (!a.ok()) return a.env().Undefined();
  const int64_t group = Hq / Hkv, shift = Tk - Tq;
  const float fscale = static_cast<float>(scale);
  std::vector<float> D(static_cast<size_t>(B * Hq * Tq));
  const bool par = B * Hq * Tq * Tk * hd > kParallelWork;
#pragma omp parallel if (par)
  {
    std::vector<float> dp(Tk), acc(hd);
#pragma omp for collapse(3) schedule(dynamic, 4)
    for (int64_t b = 0; b < B; b++) {
      for (int64_t h = 0; h < Hq; h++) {
        for (int64_t i = 0; i < Tq; i++) {
          const int64_t kh = h / group;
          const float* p = probs + ((b * Hq + h) * Tq + i) * Tk;
          const float* doi = dout + ((b * Tq + i) * Hq + h) * hd;
          const int64_t last = std::min(Tk - 1, shift + i);
          double dsum = 0;
          for (int64_t j = 0; j <= last; j++) {
            if (p[j] == 0.0f) { dp[j] = 0.0f; continue; }
            dp[j] = dotf(doi, v + ((b * Tk + j) * Hkv + kh) * hd, hd);
            dsum += static_cast<double>(p[j]) * dp[j];
          }
          const float Di = static_cast<float>(dsum);
          D[(b * Hq + h) * Tq + i] = Di;
          float* ac = acc.data();
          std::fill(acc.begin(), acc.end(), 0.0f);
          for (int64_t j = 0; j <= last; j++) {
            if (p[j] == 0.0f) continue;
            const float ds = fscale * p[j] * (dp[j] - Di);
            const float* kj = k + ((b * Tk + j) * Hkv + kh) * hd;
#pragma omp simd
            for (int64_t c = 0; c < hd; c++) ac[c] += ds * kj[c];
          }
          std::memcpy(dq + ((b * Tq + i) * Hq + h) * hd, ac, sizeof(float) * hd);
        }
      }
    }
    // (implicit barrier: D is complete)
    constexpr int64_t JB = 8;
    const int64_t nblk = (Tk + JB - 1) / JB;
    std::vector<float> adk(JB * hd), adv(JB * hd);
#pragma omp for collapse(3) schedule(dynamic, 1)
    for (int64_t b = 0; b < B; b++) {
      for (int64_t kh = 0; kh < Hkv; kh++) {
        for (int64_t blk = 0; blk < nblk; blk++) {
          const int64_t j0 = blk * JB, j1 = std::min(Tk, j0 + JB);
          std::fill(adk.begin(), adk.end(), 0.0f);
          std::fill(adv.begin(), adv.end(), 0.0f);
          for (int64_t h = kh * group; h < (kh + 1) * group; h++) {
            // Query i sees key j only if j <= shift + i.
            for (int64_t i = std::max<int64_t>(0, j0 - shift); i < Tq; i++) {
              const float* p = probs + ((b * Hq + h) * Tq + i) * Tk;
              const float* doi = dout + ((b * Tq + i) * Hq + h) * hd;
              const float* qi = q + ((b * Tq + i) * Hq + h) * hd;
              const float Di = D[(b * Hq + h) * Tq + i];
              for (int64_t j = j0; j < j1; j++) {
                const float pj = p[j];
                if (pj == 0.0f) continue;
                const float* vj = v + ((b * Tk + j) * Hkv + kh) * hd;
                const float ds = fscale * pj * (dotf(doi, vj, hd) - Di);
                float* gk = adk.data() + (j - j0) * hd;
                float* gv = adv.data() + (j - j0) * hd;
#pragma omp simd
                for (int64_t c = 0; c < hd; c++) {
                  gv[c] += pj * doi[c];
                  gk[c] += ds * qi[c];
                }
              }
            }
          }
          for (int64_t j = j0; j < j1; j++) {
            const size_t o = static_cast<size_t>(((b * Tk + j) * Hkv + kh) * hd);
            std::memcpy(dk + o, adk.data() + (j - j0) * hd, sizeof(float) * hd);
            std::memcpy(dv + o, adv.data() + (j - j0) * hd, sizeof(float) * hd);
          }
        }
      }
    }
  }
  return a.env().Undefined();
}

// ------------------------------------------------------------------ SwiGLU
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

// ------------------------------------------------------------------ embedding
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

// ------------------------------------------------------------------ cross-entropy
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

// ------------------------------------------------------------------ AdamW
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

void InitFused(Napi::Env env, Napi::Object exports) {
  exports.Set("rmsnormForward", Napi::Function::New(env, RmsnormForward, "rmsnormForward"));
  exports.Set("rmsnormBackward", Napi::Function::New(env, RmsnormBackward, "rmsnormBackward"));
  exports.Set("rope", Napi::Function::New(env, Rope, "rope"));
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward, "attentionForward"));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward, "attentionBackward"));
  exports.Set("swigluForward", Napi::Function::New(env, SwigluForward, "swigluForward"));
  exports.Set("swigluBackward", Napi::Function::New(env, SwigluBackward, "swigluBackward"));
  exports.Set("embeddingForward", Napi::Function::New(env, EmbeddingForward, "embeddingForward"));
  exports.Set("embeddingBackward", Napi::Function::New(env, EmbeddingBackward, "embeddingBackward"));
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy, "crossEntropy"));
  exports.Set("adamw", Napi::Function::New(env, Adamw, "adamw"));
}
