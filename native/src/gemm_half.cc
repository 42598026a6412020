// Products with half-precision weights (bf16 / f16 bits of a frozen weight kept in its file dtype),
// float32 accumulation. TypeScript reference: src/engine/ts/gemm-half.ts.
//
// gemmHalf picks one of three routes:
// - bf16 weights, computeBf16, forward (transB), at least kDpMinRows rows and a CPU with AVX512-BF16:
//   A is rounded to bf16 and a register-tiled vdpbf16ps kernel (8 rows x 32 columns, B packed as
//   k-pairs) takes both sides as bf16 pairs.
// - few rows of A (decoding, M <= kDirectRows) and transB: dot products with B widened in registers
//   (bf16 -> f32 is a 16-bit shift, f16 -> f32 is vcvtph2ps), memory-bound like the weight read.
// - otherwise blocked conversion: a panel of B rows is widened into a thread-local float32 scratch and
//   OpenBLAS sgemm reads it, so memory stays at one panel and speed stays near sgemm.
// computeBf16 otherwise (f16 weights, few rows, no bf16 instruction) rounds A to bf16 and takes the
// float32 routes: the same inputs, no speed gained.
// GCC 12 warns inside its own _mm512_reduce_add_ps (an "uninitialized" undefined vector): noise.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "args.h"
#include "kernels.h"

namespace {

using nuggets_native::Args;
using nuggets_native::prod;

enum class Half { BF16, F16 };

inline int Int(Args& a, size_t i, const char* name) { return static_cast<int>(a.size(i, name)); }

inline uint64_t Span(int rows, int cols, int ld) {
  return rows == 0 || cols == 0 ? 0 : (uint64_t)(rows - 1) * ld + cols;
}

uint16_t* U16(Args& a, size_t i, const char* name) {
  return a.array<uint16_t>(i, name, napi_uint16_array, "Uint16Array", 0, false);
}

bool ParseHalf(Args& a, size_t i, Half* out) {
  const std::string s = a.str(i, "dtype");
  if (!a.ok()) return false;
  if (s == "bf16") *out = Half::BF16;
  else if (s == "f16") *out = Half::F16;
  else return a.fail("dtype must be \"bf16\" or \"f16\", got \"" + s + "\""), false;
  return true;
}

// ------------------------------------------------------------------ scalar conversions

inline float Bf16ToF32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float F16ToF32(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  float f;
  if (exp == 0) {
    f = (float)frac * (1.0f / 16777216.0f);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u |= sign;
    std::memcpy(&f, &u, 4);
    return f;
  }
  uint32_t u = exp == 0x1f ? (sign | 0x7f800000u | (frac << 13)) : (sign | ((exp + 112) << 23) | (frac << 13));
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// float32 -> bf16 bits, nearest even (NaN stays NaN), as f32ToBf16 in src/engine/dtype.ts.
inline uint16_t F32ToBf16(float v) {
  uint32_t x;
  std::memcpy(&x, &v, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// ------------------------------------------------------------------ vector conversions

// dst[0..n) = widen(src[0..n)).
void WidenRow(const uint16_t* src, float* dst, int n, Half dt) {
  int i = 0;
#if defined(__AVX512F__)
  if (dt == Half::BF16) {
    for (; i + 16 <= n; i += 16) {
      __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(src + i)));
      _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
  } else {
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(src + i))));
  }
#elif defined(__AVX2__)
  if (dt == Half::BF16) {
    for (; i + 8 <= n; i += 8) {
      __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)(src + i)));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
  }
#if defined(__F16C__)
  else {
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(src + i))));
  }
#endif
#endif
  if (dt == Half::BF16) for (; i < n; i++) dst[i] = Bf16ToF32(src[i]);
  else for (; i < n; i++) dst[i] = F16ToF32(src[i]);
}

// ------------------------------------------------------------------ route 1: blocked conversion + sgemm

// Floats of one widened panel (4 MiB): big enough that sgemm runs near its speed, small next to a weight.
constexpr int64_t kPanelFloats = 1 << 20;

std::vector<float>& Scratch() {
  thread_local std::vector<float> s;
  return s;
}

void ScaleC(int M, int N, float beta, float* C, int ldc) {
  for (int i = 0; i < M; i++) {
    float* c = C + (size_t)i * ldc;
    if (beta == 0.0f) for (int j = 0; j < N; j++) c[j] = 0.0f;
    else if (beta != 1.0f) for (int j = 0; j < N; j++) c[j] *= beta;
  }
}

void PanelGemm(bool tb, int M, int N, int K, float alpha, const float* A, int lda, const uint16_t* B, int ldb,
               Half dt, float beta, float* C, int ldc) {
  const int cols = tb ? K : N, total = tb ? N : K;
  int step = (int)std::min<int64_t>(total, std::max<int64_t>(16, kPanelFloats / cols));
  std::vector<float>& panel = Scratch();
  if (panel.size() < (size_t)step * cols) panel.resize((size_t)step * cols);
  float* P = panel.data();
  for (int r0 = 0; r0 < total; r0 += step) {
    const int rows = std::min(step, total - r0);
#pragma omp parallel for schedule(static) if ((int64_t)rows * cols > 65536)
    for (int r = 0; r < rows; r++) WidenRow(B + (size_t)(r0 + r) * ldb, P + (size_t)r * cols, cols, dt);
    if (tb) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, rows, K, alpha, A, lda, P, cols, beta, C + r0, ldc);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, rows, alpha, A + r0, lda, P, cols,
                  r0 == 0 ? beta : 1.0f, C, ldc);
    }
  }
}

// ------------------------------------------------------------------ route 2: few rows, widen in registers

constexpr int kDirectRows = 4;

#if defined(__AVX512F__) && defined(__AVX512BW__)
inline __m512 Widen16(const uint16_t* p, __mmask16 m, Half dt) {
  __m256i h = _mm256_maskz_loadu_epi16(m, p);
  if (dt == Half::BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}
#endif

// C[i, j0 + jj] = alpha * dot(A_i, B_{j0+jj}) + beta C[..] for the MR rows of A and NR rows of B
// ([N, ldb]). MR and NR are template arguments so the MR x NR accumulators live in registers and
// give the FMA units independent chains.
template <int MR, int NR>
inline void DirectTile(int K, float alpha, const float* A, int lda, const uint16_t* b, int ldb, Half dt, float beta,
                       float* C, int ldc) {
  float acc[MR][NR];
#if defined(__AVX512F__) && defined(__AVX512BW__)
  __m512 v[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int jj = 0; jj < NR; jj++) v[i][jj] = _mm512_setzero_ps();
  for (int p = 0; p < K; p += 16) {
    const __mmask16 m = K - p >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - p)) - 1);
    __m512 w[NR];
    for (int jj = 0; jj < NR; jj++) w[jj] = Widen16(b + (size_t)jj * ldb + p, m, dt);
    for (int i = 0; i < MR; i++) {
      const __m512 x = _mm512_maskz_loadu_ps(m, A + (size_t)i * lda + p);
      for (int jj = 0; jj < NR; jj++) v[i][jj] = _mm512_fmadd_ps(x, w[jj], v[i][jj]);
    }
  }
  for (int i = 0; i < MR; i++)
    for (int jj = 0; jj < NR; jj++) acc[i][jj] = _mm512_reduce_add_ps(v[i][jj]);
#else
  for (int i = 0; i < MR; i++)
    for (int jj = 0; jj < NR; jj++) acc[i][jj] = 0.0f;
  for (int p = 0; p < K; p++)
    for (int jj = 0; jj < NR; jj++) {
      const uint16_t h = b[(size_t)jj * ldb + p];
      const float w = dt == Half::BF16 ? Bf16ToF32(h) : F16ToF32(h);
      for (int i = 0; i < MR; i++) acc[i][jj] += A[(size_t)i * lda + p] * w;
    }
#endif
  for (int i = 0; i < MR; i++)
    for (int jj = 0; jj < NR; jj++) {
      float* c = C + (size_t)i * ldc + jj;
      *c = alpha * acc[i][jj] + (beta == 0.0f ? 0.0f : beta * *c);
    }
}

template <int MR>
void DirectRows(int N, int K, float alpha, const float* A, int lda, const uint16_t* B, int ldb, Half dt, float beta,
                float* C, int ldc) {
  const int quads = N / 4;
#pragma omp parallel for schedule(static) if ((int64_t)N * K > 65536)
  for (int q = 0; q < quads; q++)
    DirectTile<MR, 4>(K, alpha, A, lda, B + (size_t)q * 4 * ldb, ldb, dt, beta, C + q * 4, ldc);
  for (int j = quads * 4; j < N; j++) DirectTile<MR, 1>(K, alpha, A, lda, B + (size_t)j * ldb, ldb, dt, beta, C + j, ldc);
}

void DirectGemm(int M, int N, int K, float alpha, const float* A, int lda, const uint16_t* B, int ldb, Half dt,
                float beta, float* C, int ldc) {
  switch (M) {
    case 1: return DirectRows<1>(N, K, alpha, A, lda, B, ldb, dt, beta, C, ldc);
    case 2: return DirectRows<2>(N, K, alpha, A, lda, B, ldb, dt, beta, C, ldc);
    case 3: return DirectRows<3>(N, K, alpha, A, lda, B, ldb, dt, beta, C, ldc);
    default: return DirectRows<4>(N, K, alpha, A, lda, B, ldb, dt, beta, C, ldc);
  }
}

// ------------------------------------------------------------------ route 3: vdpbf16ps, both sides bf16

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
constexpr bool kHaveDpBf16 = true;

// A rounded to bf16, rows padded with a zero to an even length (whole k-pairs).
std::vector<uint16_t>& BfScratch() {
  thread_local std::vector<uint16_t> s;
  return s;
}

// Outer-product form: 32 output columns (two vectors of 16) by MR rows of A per micro-tile. B's block
// of 32 weight rows is packed as k-pairs, Bp[kp][j][2], so one vector holds 16 columns x 2 k values;
// a pair of A values is broadcast and vdpbf16ps accumulates straight into the output lanes (no
// horizontal reductions).
constexpr int kCols = 32;
// Below this many rows packing B costs more than the bf16 products save: the few-row route runs.
constexpr int kDpMinRows = 16;

// Packs weight rows j0..j0+cols (cols <= 32, the rest zero) over K (padded to ka, even) into Bp: a
// transpose of 32-bit k-pairs, read along each weight row.
void PackB(const uint16_t* B, int ldb, int j0, int cols, int K, int ka, uint16_t* Bp) {
  const int pairs = ka / 2, full = K / 2;
  uint32_t* d = reinterpret_cast<uint32_t*>(Bp);
  for (int j = 0; j < kCols; j++) {
    if (j >= cols) {
      for (int kp = 0; kp < pairs; kp++) d[(size_t)kp * kCols + j] = 0;
      continue;
    }
    const uint16_t* b = B + (size_t)(j0 + j) * ldb;
    for (int kp = 0; kp < full; kp++) {
      uint32_t v;
      std::memcpy(&v, b + 2 * kp, 4);
      d[(size_t)kp * kCols + j] = v;
    }
    if (full < pairs) d[(size_t)full * kCols + j] = b[K - 1];  // odd K: the last value and a zero
  }
}

template <int MR>
inline void DpTile(const uint16_t* A, int ka, const uint16_t* Bp, float alpha, float beta, float* C, int ldc,
                   __mmask16 m0, __mmask16 m1) {
  __m512 acc0[MR], acc1[MR];
  for (int i = 0; i < MR; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int kp = 0; kp < ka / 2; kp++) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(Bp + (size_t)kp * kCols * 2);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(Bp + (size_t)kp * kCols * 2 + 32);
    for (int i = 0; i < MR; i++) {
      int32_t pair;
      std::memcpy(&pair, A + (size_t)i * ka + 2 * kp, 4);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
      acc0[i] = _mm512_dpbf16_ps(acc0[i], a, b0);
      acc1[i] = _mm512_dpbf16_ps(acc1[i], a, b1);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int i = 0; i < MR; i++) {
    float* c = C + (size_t)i * ldc;
    __m512 r0 = _mm512_mul_ps(va, acc0[i]), r1 = _mm512_mul_ps(va, acc1[i]);
    if (beta != 0.0f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + 16), r1);
    }
    _mm512_mask_storeu_ps(c, m0, r0);
    _mm512_mask_storeu_ps(c + 16, m1, r1);
  }
}

void DpBf16Gemm(int M, int N, int K, float alpha, const float* A, int lda, const uint16_t* B, int ldb, float beta,
                float* C, int ldc) {
  const int ka = (K + 1) / 2 * 2;
  std::vector<uint16_t>& s = BfScratch();
  if (s.size() < (size_t)M * ka) s.resize((size_t)M * ka);
  uint16_t* Ab = s.data();
#pragma omp parallel for schedule(static) if ((int64_t)M * K > 65536)
  for (int i = 0; i < M; i++) {
    uint16_t* d = Ab + (size_t)i * ka;
    const float* a = A + (size_t)i * lda;
    for (int p = 0; p < K; p++) d[p] = F32ToBf16(a[p]);
    for (int p = K; p < ka; p++) d[p] = 0;
  }
  const int blocks = (N + kCols - 1) / kCols;
#pragma omp parallel if ((double)M * N * K > 262144.0)
  {
    std::vector<uint16_t> packed((size_t)ka * kCols);
#pragma omp for schedule(static)
    for (int bi = 0; bi < blocks; bi++) {
      const int j0 = bi * kCols, cols = std::min(kCols, N - j0);
      PackB(B, ldb, j0, cols, K, ka, packed.data());
      const __mmask16 m0 = cols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1);
      const __mmask16 m1 = cols >= 32 ? (__mmask16)0xffff : cols <= 16 ? (__mmask16)0 : (__mmask16)((1u << (cols - 16)) - 1);
      float* c = C + j0;
      int i = 0;
      for (; i + 8 <= M; i += 8) DpTile<8>(Ab + (size_t)i * ka, ka, packed.data(), alpha, beta, c + (size_t)i * ldc, ldc, m0, m1);
      for (; i < M; i++) DpTile<1>(Ab + (size_t)i * ka, ka, packed.data(), alpha, beta, c + (size_t)i * ldc, ldc, m0, m1);
    }
  }
}
#else
constexpr bool kHaveDpBf16 = false;
constexpr int kDpMinRows = 0;
void DpBf16Gemm(int, int, int, float, const float*, int, const uint16_t*, int, float, float*, int) {}
#endif

// A copy of A rounded to bf16 and widened back (computeBf16 on the float32 routes).
const float* RoundedA(int M, int K, const float* A, int lda, std::vector<float>& keep) {
  keep.resize((size_t)M * K);
#pragma omp parallel for schedule(static) if ((int64_t)M * K > 65536)
  for (int i = 0; i < M; i++)
    for (int p = 0; p < K; p++) keep[(size_t)i * K + p] = Bf16ToF32(F32ToBf16(A[(size_t)i * lda + p]));
  return keep.data();
}

// gemmHalf(transB, M, N, K, alpha, A, lda, B, ldb, dtype, beta, C, ldc, computeBf16)
Napi::Value GemmHalf(const Napi::CallbackInfo& info) {
  Args a(info, "gemmHalf");
  const bool tb = a.flag(0, "transB");
  const int M = Int(a, 1, "M"), N = Int(a, 2, "N"), K = Int(a, 3, "K");
  const float alpha = (float)a.num(4, "alpha");
  const float* A = a.f32(5, "A", 0);
  const uint64_t lenA = a.length(5);
  const int lda = Int(a, 6, "lda");
  const uint16_t* B = U16(a, 7, "B");
  const uint64_t lenB = a.length(7);
  const int ldb = Int(a, 8, "ldb");
  Half dt = Half::BF16;
  if (!ParseHalf(a, 9, &dt)) return a.env().Undefined();
  const float beta = (float)a.num(10, "beta");
  float* C = a.f32(11, "C", 0);
  const uint64_t lenC = a.length(11);
  const int ldc = Int(a, 12, "ldc");
  const bool bf16 = a.flag(13, "computeBf16");
  if (!a.ok()) return a.env().Undefined();
  const int bRows = tb ? N : K, bCols = tb ? K : N;
  if (lda < K) return a.fail("lda = " + std::to_string(lda) + " < K = " + std::to_string(K)), a.env().Undefined();
  if (ldb < bCols)
    return a.fail("ldb = " + std::to_string(ldb) + " < " + std::to_string(bCols) + " (columns of B as stored)"),
           a.env().Undefined();
  if (ldc < N) return a.fail("ldc = " + std::to_string(ldc) + " < N = " + std::to_string(N)), a.env().Undefined();
  if (M == 0 || N == 0) return a.env().Undefined();
  if (Span(M, N, ldc) > lenC)
    return a.fail("C needs " + std::to_string(Span(M, N, ldc)) + " elements, has " + std::to_string(lenC)),
           a.env().Undefined();
  if (K == 0 || alpha == 0.0f) {
    ScaleC(M, N, beta, C, ldc);
    return a.env().Undefined();
  }
  if (Span(M, K, lda) > lenA)
    return a.fail("A needs " + std::to_string(Span(M, K, lda)) + " elements, has " + std::to_string(lenA)),
           a.env().Undefined();
  if (Span(bRows, bCols, ldb) > lenB)
    return a.fail("B needs " + std::to_string(Span(bRows, bCols, ldb)) + " elements, has " + std::to_string(lenB)),
           a.env().Undefined();
  if (bf16 && tb && dt == Half::BF16 && kHaveDpBf16 && M >= kDpMinRows) {
    DpBf16Gemm(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return a.env().Undefined();
  }
  std::vector<float> rounded;
  const float* X = A;
  int ldx = lda;
  if (bf16) {
    X = RoundedA(M, K, A, lda, rounded);
    ldx = K;
  }
  if (tb && M <= kDirectRows) DirectGemm(M, N, K, alpha, X, ldx, B, ldb, dt, beta, C, ldc);
  else PanelGemm(tb, M, N, K, alpha, X, ldx, B, ldb, dt, beta, C, ldc);
  return a.env().Undefined();
}

// embeddingForwardHalf(out, ids, table, dtype, n, dim)
Napi::Value EmbeddingForwardHalf(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingForwardHalf");
  const int64_t n = a.size(4, "n"), dim = a.size(5, "dim");
  float* out = a.f32(0, "out", prod({n, dim}));
  const int32_t* ids = a.i32(1, "ids", (uint64_t)n);
  const uint16_t* table = U16(a, 2, "table");
  const uint64_t lenT = a.length(2);
  Half dt = Half::BF16;
  if (!ParseHalf(a, 3, &dt)) return a.env().Undefined();
  if (!a.ok()) return a.env().Undefined();
  const int64_t vocab = dim == 0 ? 0 : (int64_t)(lenT / (uint64_t)dim);
  for (int64_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      Napi::RangeError::New(a.env(), "embedding: ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                                          " is outside the table's " + std::to_string(vocab) + " rows")
          .ThrowAsJavaScriptException();
      return a.env().Undefined();
    }
  }
  for (int64_t i = 0; i < n; i++) WidenRow(table + (size_t)ids[i] * dim, out + (size_t)i * dim, (int)dim, dt);
  return a.env().Undefined();
}

// sensAccumulateHalf(S, theta, dtype, grad, n)
Napi::Value SensAccumulateHalf(const Napi::CallbackInfo& info) {
  Args a(info, "sensAccumulateHalf");
  const int64_t n = a.size(4, "n");
  float* S = a.f32(0, "S", (uint64_t)n);
  const uint16_t* theta = a.array<uint16_t>(1, "theta", napi_uint16_array, "Uint16Array", (uint64_t)n, false);
  Half dt = Half::BF16;
  if (!ParseHalf(a, 2, &dt)) return a.env().Undefined();
  const float* g = a.f32(3, "grad", (uint64_t)n);
  if (!a.ok()) return a.env().Undefined();
  constexpr int64_t kChunk = 4096;
#pragma omp parallel for schedule(static) if (n > 262144)
  for (int64_t c = 0; c < n; c += kChunk) {
    float w[kChunk];
    const int len = (int)std::min(kChunk, n - c);
    WidenRow(theta + c, w, len, dt);
    for (int i = 0; i < len; i++) S[c + i] += std::fabs(w[i] * g[c + i]);
  }
  return a.env().Undefined();
}

// widenHalf(out, bits, dtype, n): reading a bf16/f16 tensor as float32 (a 13B teacher's sensitivity is
// 10 billion values: the TypeScript loop takes ~3 ns a value, this a fraction of that).
Napi::Value WidenHalf(const Napi::CallbackInfo& info) {
  Args a(info, "widenHalf");
  const int64_t n = a.size(3, "n");
  float* out = a.f32(0, "out", (uint64_t)n);
  const uint16_t* bits = a.array<uint16_t>(1, "bits", napi_uint16_array, "Uint16Array", (uint64_t)n, false);
  Half dt = Half::BF16;
  if (!ParseHalf(a, 2, &dt)) return a.env().Undefined();
  if (!a.ok()) return a.env().Undefined();
  constexpr int64_t kChunk = 1 << 16;
#pragma omp parallel for schedule(static) if (n > 262144)
  for (int64_t c = 0; c < n; c += kChunk) WidenRow(bits + c, out + c, (int)std::min(kChunk, n - c), dt);
  return a.env().Undefined();
}

}  // namespace

void InitGemmHalf(Napi::Env env, Napi::Object exports) {
  exports.Set("gemmHalf", Napi::Function::New(env, GemmHalf, "gemmHalf"));
  exports.Set("embeddingForwardHalf", Napi::Function::New(env, EmbeddingForwardHalf, "embeddingForwardHalf"));
  exports.Set("sensAccumulateHalf", Napi::Function::New(env, SensAccumulateHalf, "sensAccumulateHalf"));
  exports.Set("widenHalf", Napi::Function::New(env, WidenHalf, "widenHalf"));
}
