// Causal grouped-query attention, forward and backward.
// Each exported function takes exactly the arguments of the Kernels method of the same name
// (src/engine/kernels.ts is the contract; src/engine/ts/attention.ts is the reference it is tested against).
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
#if defined(__FMA__)
#include <immintrin.h>
#endif

#include "args.h"
#include "kernels.h"
#include "parallel.h"

namespace {

using nuggets_native::Args;
using nuggets_native::kParallelWork;
using nuggets_native::prod;

// Every product of attention is a small GEMM per (batch, head): scores Q K^T, out P V, dP dout V^T,
// dq dS K, dv P^T dout, dk dS^T Q. They all run through one 4 x 16 register tile (tile4: 4 rows of
// A against 16 columns of a row-major B, one broadcast-FMA per element, no horizontal sums). To give
// it contiguous 16-column rows, K, V and dout are copied once into transposed panels [hd, T]
// (zero-padded to a multiple of 16), and, when hd is not a multiple of 16, K, V, Q and dout into
// row panels [T, hd rounded up to 16]. These copies are activation-sized, never weights.
// Work is split over (batch, head, tile of 4 query rows) forward and in backward pass 1, and over
// (batch, kv head, tile of 4 keys) in backward pass 2, so every output row has one writer.
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

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));  // unaligned loads/stores

inline v8 fmadd(v8 a, v8 b, v8 c) {
#if defined(__FMA__)
  return (v8)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
  return a * b + c;
#endif
}

constexpr int64_t kTile = 4, kCols = 16;

inline v8 bcast(float a) { return v8{a, a, a, a, a, a, a, a}; }

inline int64_t roundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

typedef int32_t v8i __attribute__((vector_size(32)));

// exp(x) for x <= 0 (softmax after max-subtraction) on 8 lanes; libm's expf does not vectorise
// without -ffast-math. Cephes' expf: range reduction by ln 2 split in two parts, degree-6
// polynomial, relative error below 1e-7 down to -87; x <= -88 (and -inf: masked keys) gives 0.
inline v8 expNonPositive(v8 x) {
  x = x < -88.0f ? bcast(-88.0f) : x;  // written so that NaN stays NaN
  const v8 t = x * 1.44269504088896341f + 0.5f;
  const v8i ti = __builtin_convertvector(t, v8i);            // truncation towards 0
  const v8 tt = __builtin_convertvector(ti, v8);
  const v8 fx = tt > t ? tt - 1.0f : tt;                      // floor(t)
  const v8 r = x - fx * 0.693359375f + fx * 2.12194440e-4f;
  v8 y = bcast(1.9875691500e-4f);
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const v8i e = (__builtin_convertvector(fx, v8i) + 127) << 23;  // 2^fx; fx = -127 gives +0
  return y * (v8)e;
}

// C[r][j] (+)= sum_{c < len} A[r][c] * Bm[c * ldb + j] for r < 4, 0 <= j < cols (a multiple of 16;
// Bm must be readable there). Unused row slots of A repeat a valid row; C has 4 rows of ldc.
void tile4(const float* const A[4], int64_t len, const float* Bm, int64_t ldb, int64_t cols, float* C, int64_t ldc,
           bool accumulate) {
  for (int64_t j = 0; j < cols; j += kCols) {
    v8 c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {};
    const float* b = Bm + j;
    for (int64_t c = 0; c < len; c++, b += ldb) {
      const v8 b0 = *reinterpret_cast<const v8u*>(b);
      const v8 b1 = *reinterpret_cast<const v8u*>(b + 8);
      const v8 x0 = bcast(A[0][c]), x1 = bcast(A[1][c]), x2 = bcast(A[2][c]), x3 = bcast(A[3][c]);
      c00 = fmadd(x0, b0, c00); c01 = fmadd(x0, b1, c01);
      c10 = fmadd(x1, b0, c10); c11 = fmadd(x1, b1, c11);
      c20 = fmadd(x2, b0, c20); c21 = fmadd(x2, b1, c21);
      c30 = fmadd(x3, b0, c30); c31 = fmadd(x3, b1, c31);
    }
    const v8 res[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
    for (int r = 0; r < 4; r++) {
      v8u* o = reinterpret_cast<v8u*>(C + r * ldc + j);
      if (accumulate) { o[0] += res[r][0]; o[1] += res[r][1]; }
      else { o[0] = res[r][0]; o[1] = res[r][1]; }
    }
  }
}

// The rows of x [B, T, H, hd] for one (b, h) as a matrix of T rows with leading dimension ld and at
// least `cols` readable columns: x itself when hd is a multiple of 16, else a zero-padded copy.
struct RowPanels {
  std::vector<float> copy;
  const float* x;
  int64_t T, H, hd, cols;
  RowPanels(const float* src, int64_t B, int64_t T_, int64_t H_, int64_t hd_, bool par)
      : x(src), T(T_), H(H_), hd(hd_), cols(roundUp(hd_, kCols)) {
    if (cols == hd) return;
    copy.assign(static_cast<size_t>(B * H * T * cols), 0.0f);
#pragma omp parallel for collapse(2) schedule(static) if (par)
    for (int64_t b = 0; b < B; b++)
      for (int64_t h = 0; h < H; h++)
        for (int64_t t = 0; t < T; t++)
          std::memcpy(&copy[static_cast<size_t>(((b * H + h) * T + t) * cols)], src + ((b * T + t) * H + h) * hd, sizeof(float) * hd);
  }
  const float* at(int64_t b, int64_t h) const {
    return copy.empty() ? x + (b * T * H + h) * hd : copy.data() + (b * H + h) * T * cols;
  }
  int64_t ld() const { return copy.empty() ? H * hd : cols; }
};

// panel[((b * H + h) * hd + c) * ld + t] = x[((b * T + t) * H + h) * hd + c], zero for t >= T.
std::vector<float> transposedPanels(const float* x, int64_t B, int64_t T, int64_t H, int64_t hd, int64_t ld, bool par) {
  std::vector<float> p(static_cast<size_t>(B * H * hd * ld), 0.0f);
#pragma omp parallel for collapse(2) schedule(static) if (par)
  for (int64_t b = 0; b < B; b++) {
    for (int64_t h = 0; h < H; h++) {
      float* dst = p.data() + (b * H + h) * hd * ld;
      for (int64_t t = 0; t < T; t++) {
        const float* src = x + ((b * T + t) * H + h) * hd;
        for (int64_t c = 0; c < hd; c++) dst[c * ld + t] = src[c];
      }
    }
  }
  return p;
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
  const int64_t ldk = roundUp(Tk, kCols);
  const float fscale = static_cast<float>(scale);
  const bool par = B * Hq * Tq * Tk * hd > kParallelWork;
  const std::vector<float> kt = transposedPanels(k, B, Tk, Hkv, hd, ldk, par);
  const RowPanels vr(v, B, Tk, Hkv, hd, par);
  const int64_t ntile = (Tq + kTile - 1) / kTile, hdp = vr.cols;
#pragma omp parallel if (par)
  {
    std::vector<float> S(kTile * ldk), O(kTile * hdp);
#pragma omp for collapse(3) schedule(dynamic, 1)
    for (int64_t b = 0; b < B; b++) {
      for (int64_t h = 0; h < Hq; h++) {
        for (int64_t tile = 0; tile < ntile; tile++) {
          const int64_t kh = h / group, i0 = tile * kTile, nr = std::min(kTile, Tq - i0);
          const int64_t lastMax = std::min(Tk - 1, shift + i0 + nr - 1);  // the tile's widest row
          const float* A[4];
          for (int64_t r = 0; r < kTile; r++) A[r] = q + ((b * Tq + i0 + std::min(r, nr - 1)) * Hq + h) * hd;
          if (lastMax >= 0) tile4(A, hd, kt.data() + (b * Hkv + kh) * hd * ldk, ldk, roundUp(lastMax + 1, kCols), S.data(), ldk, false);
          for (int64_t r = 0; r < nr; r++) {
            const int64_t i = i0 + r, last = std::min(Tk - 1, shift + i);
            float* s = S.data() + r * ldk;
            float* p = probs + ((b * Hq + h) * Tq + i) * Tk;
            float mx = -INFINITY;
            int64_t admissible = last + 1;
            const uint8_t* mrow = mask ? mask + b * Tk : nullptr;
            if (mrow) {
              admissible = 0;
              for (int64_t j = 0; j <= last; j++) {
                s[j] = mrow[j] ? s[j] * fscale : -INFINITY;
                admissible += mrow[j] != 0;
                mx = mx > s[j] ? mx : s[j];
              }
            } else {
              for (int64_t j = 0; j <= last; j++) {
                s[j] *= fscale;
                mx = mx > s[j] ? mx : s[j];
              }
            }
            if (admissible <= 0) {  // no admissible key: probs 0, out 0 (NaN scores stay NaN below)
              std::fill(p, p + Tk, 0.0f);
              std::fill(s, s + ldk, 0.0f);
              continue;
            }
            // Exponentials 8 at a time; lanes past `last` (inside the padded scratch row) count as -inf.
            const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
            v8 acc8 = {};
            for (int64_t j = 0; j <= last; j += 8) {
              v8u* sj = reinterpret_cast<v8u*>(s + j);
              const v8 x = (lane + static_cast<int32_t>(j)) <= static_cast<int32_t>(last) ? *sj - mx : bcast(-INFINITY);
              const v8 e = expNonPositive(x);
              *sj = e;
              acc8 += e;
            }
            float se = 0;  // at most Tk terms <= 1, one of them 1: float is plenty
            for (int l = 0; l < 8; l++) se += acc8[l];
            const float inv = 1.0f / se;
            for (int64_t j = 0; j <= last; j++) p[j] = s[j] *= inv;
            std::fill(p + last + 1, p + Tk, 0.0f);
            std::fill(s + last + 1, s + ldk, 0.0f);  // the P V product below runs every row to lastMax
          }
          if (lastMax >= 0) {
            const float* P[4];
            for (int64_t r = 0; r < kTile; r++) P[r] = S.data() + std::min(r, nr - 1) * ldk;
            tile4(P, lastMax + 1, vr.at(b, kh), vr.ld(), hdp, O.data(), hdp, false);
          } else {
            std::fill(O.begin(), O.end(), 0.0f);
          }
          for (int64_t r = 0; r < nr; r++) std::memcpy(out + ((b * Tq + i0 + r) * Hq + h) * hd, O.data() + r * hdp, sizeof(float) * hd);
        }
      }
    }
  }
  return a.env().Undefined();
}

// Backward in two race-free passes (no atomics, no per-thread copies of dk/dv):
//  1. per tile of query rows (b, h, i..i+3): dP = dout V^T, D_i = sum_j P_ij dP_ij,
//     dS = scale P (dP - D), dq = dS K;
//  2. per tile of keys (b, kv head, j..j+3), over the heads of its group: dP^T = V dout^T recomputed
//     (no [B,Hq,Tq,Tk] buffer), dv += P^T dout, dk += dS^T Q.
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionBackward");
  AttnShape sh;
  if (!attnShape(a, 8, sh)) return a.env().Undefined();
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
  const int64_t ldk = roundUp(Tk, kCols), ldq = roundUp(Tq, kCols), hdp = roundUp(hd, kCols);
  const float fscale = static_cast<float>(scale);
  const bool par = B * Hq * Tq * Tk * hd > kParallelWork;
  const std::vector<float> vt = transposedPanels(v, B, Tk, Hkv, hd, ldk, par);
  const std::vector<float> dot = transposedPanels(dout, B, Tq, Hq, hd, ldq, par);
  const RowPanels kr(k, B, Tk, Hkv, hd, par), qr(q, B, Tq, Hq, hd, par), dor(dout, B, Tq, Hq, hd, par);
  std::vector<float> D(static_cast<size_t>(B * Hq * Tq), 0.0f);
  const int64_t qtiles = (Tq + kTile - 1) / kTile, ktiles = (Tk + kTile - 1) / kTile;
#pragma omp parallel if (par)
  {
    std::vector<float> S(kTile * std::max(ldk, ldq)), PT(kTile * ldq), O(kTile * hdp), O2(kTile * hdp);
#pragma omp for collapse(3) schedule(dynamic, 1)
    for (int64_t b = 0; b < B; b++) {
      for (int64_t h = 0; h < Hq; h++) {
        for (int64_t tile = 0; tile < qtiles; tile++) {
          const int64_t kh = h / group, i0 = tile * kTile, nr = std::min(kTile, Tq - i0);
          const int64_t lastMax = std::min(Tk - 1, shift + i0 + nr - 1);
          if (lastMax < 0) {
            std::fill(O.begin(), O.end(), 0.0f);
          } else {
            const float* A[4];
            for (int64_t r = 0; r < kTile; r++) A[r] = dout + ((b * Tq + i0 + std::min(r, nr - 1)) * Hq + h) * hd;
            tile4(A, hd, vt.data() + (b * Hkv + kh) * hd * ldk, ldk, roundUp(lastMax + 1, kCols), S.data(), ldk, false);
            for (int64_t r = 0; r < nr; r++) {
              const int64_t i = i0 + r, last = std::min(Tk - 1, shift + i);
              const float* p = probs + ((b * Hq + h) * Tq + i) * Tk;
              float* s = S.data() + r * ldk;
              double dsum = 0;
              for (int64_t j = 0; j <= last; j++) dsum += static_cast<double>(p[j]) * s[j];
              const float Di = static_cast<float>(dsum);
              D[(b * Hq + h) * Tq + i] = Di;
              for (int64_t j = 0; j <= last; j++) s[j] = p[j] == 0.0f ? 0.0f : fscale * p[j] * (s[j] - Di);
              std::fill(s + std::max<int64_t>(last + 1, 0), s + lastMax + 1, 0.0f);
            }
            const float* P[4];
            for (int64_t r = 0; r < kTile; r++) P[r] = S.data() + std::min(r, nr - 1) * ldk;
            tile4(P, lastMax + 1, kr.at(b, kh), kr.ld(), hdp, O.data(), hdp, false);
          }
          for (int64_t r = 0; r < nr; r++) std::memcpy(dq + ((b * Tq + i0 + r) * Hq + h) * hd, O.data() + r * hdp, sizeof(float) * hd);
        }
      }
    }
    // (implicit barrier: D is complete)
#pragma omp for collapse(3) schedule(dynamic, 1)
    for (int64_t b = 0; b < B; b++) {
      for (int64_t kh = 0; kh < Hkv; kh++) {
        for (int64_t tile = 0; tile < ktiles; tile++) {
          const int64_t j0 = tile * kTile, nr = std::min(kTile, Tk - j0);
          std::fill(O.begin(), O.end(), 0.0f);   // dk tile
          std::fill(O2.begin(), O2.end(), 0.0f);  // dv tile
          // Query i sees key j only if j <= shift + i: rows before iFirst see none of the tile.
          const int64_t iFirst = std::max<int64_t>(0, j0 - shift);
          if (iFirst < Tq) {
            const int64_t i0 = iFirst / kCols * kCols, len = Tq - i0;  // panels start at a 16-column boundary
            const float* A[4];
            for (int64_t r = 0; r < kTile; r++) A[r] = v + ((b * Tk + j0 + std::min(r, nr - 1)) * Hkv + kh) * hd;
            const float* Pt[4];
            const float* Dt[4];
            for (int64_t r = 0; r < kTile; r++) {
              Pt[r] = PT.data() + std::min(r, nr - 1) * ldq;
              Dt[r] = S.data() + std::min(r, nr - 1) * ldq;
            }
            for (int64_t h = kh * group; h < (kh + 1) * group; h++) {
              tile4(A, hd, dot.data() + (b * Hq + h) * hd * ldq + i0, ldq, ldq - i0, S.data(), ldq, false);
              for (int64_t i = i0; i < Tq; i++) {
                const float* p = probs + ((b * Hq + h) * Tq + i) * Tk + j0;
                const float Di = D[(b * Hq + h) * Tq + i];
                for (int64_t r = 0; r < nr; r++) {
                  const float pj = p[r];
                  PT[r * ldq + (i - i0)] = pj;
                  S[r * ldq + (i - i0)] = pj == 0.0f ? 0.0f : fscale * pj * (S[r * ldq + (i - i0)] - Di);
                }
              }
              tile4(Pt, len, dor.at(b, h) + i0 * dor.ld(), dor.ld(), hdp, O2.data(), hdp, true);
              tile4(Dt, len, qr.at(b, h) + i0 * qr.ld(), qr.ld(), hdp, O.data(), hdp, true);
            }
          }
          for (int64_t r = 0; r < nr; r++) {
            const size_t o = static_cast<size_t>(((b * Tk + j0 + r) * Hkv + kh) * hd);
            std::memcpy(dk + o, O.data() + r * hdp, sizeof(float) * hd);
            std::memcpy(dv + o, O2.data() + r * hdp, sizeof(float) * hd);
          }
        }
      }
    }
  }
  return a.env().Undefined();
}

}  // namespace

void InitAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward, "attentionForward"));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward, "attentionBackward"));
}
