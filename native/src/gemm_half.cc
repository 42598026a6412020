// Products with half-precision weights (bf16 / f16 bits of a frozen weight kept in its file dtype),
// float32 accumulation. TypeScript reference: src/engine/ts/gemm-half.ts.
//
// gemmHalf picks one of three routes:
// - bf16 weights, computeBf16, forward (transB) and a CPU with AVX512-BF16: A is rounded to bf16 and
//   a 4x4 register-tiled vdpbf16ps kernel takes both sides as bf16 pairs.
// - few rows of A (decoding, M <= kDirectRows) and transB: dot products with B widened in registers
//   (bf16 -> f32 is a 16-bit shift, f16 -> f32 is vcvtph2ps), memory-bound like the weight read.
// - otherwise blocked conversion: a panel of B rows is widened into a thread-local float32 scratch and
//   OpenBLAS sgemm reads it, so memory stays at one panel and speed stays near sgemm.
// computeBf16 without the bf16 instruction (or with f16 weights) rounds A to bf16 and takes the
// float32 routes: the same numbers, no speed gained.
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

// A rounded to bf16, rows padded with zeros to a multiple of 32 elements (whole vectors, no masks).
std::vector<uint16_t>& BfScratch() {
  thread_local std::vector<uint16_t> s;
  return s;
}

template <int MR, int NR>
inline void DpTile(const uint16_t* A, int ka, const uint16_t* B, int ldb, int K, float alpha, float beta, float* C,
                   int ldc) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = _mm512_setzero_ps();
  for (int p = 0; p < K; p += 32) {
    const __mmask32 m = K - p >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << (K - p)) - 1);
    __m512i b[NR];
    for (int j = 0; j < NR; j++) b[j] = _mm512_maskz_loadu_epi16(m, B + (size_t)j * ldb + p);
    for (int i = 0; i < MR; i++) {
      const __m512bh a = (__m512bh)_mm512_loadu_si512(A + (size_t)i * ka + p);
      for (int j = 0; j < NR; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], a, (__m512bh)b[j]);
    }
  }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) {
      float* c = C + (size_t)i * ldc + j;
      *c = alpha * _mm512_reduce_add_ps(acc[i][j]) + (beta == 0.0f ? 0.0f : beta * *c);
    }
}

template <int MR>
inline void DpRowTiles(const uint16_t* A, int ka, const uint16_t* B, int ldb, int K, int j0, int j1, float alpha,
                       float beta, float* C, int ldc) {
  int j = j0;
  for (; j + 4 <= j1; j += 4) DpTile<MR, 4>(A, ka, B + (size_t)j * ldb, ldb, K, alpha, beta, C + j, ldc);
  for (; j < j1; j++) DpTile<MR, 1>(A, ka, B + (size_t)j * ldb, ldb, K, alpha, beta, C + j, ldc);
}

void DpBf16Gemm(int M, int N, int K, float alpha, const float* A, int lda, const uint16_t* B, int ldb, float beta,
                float* C, int ldc) {
  const int ka = (K + 31) / 32 * 32;
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
  // Blocks of 64 weight rows per task: 64 x K bf16 stays in L2 while every row of A passes by.
  constexpr int kBlock = 64;
  const int blocks = (N + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(dynamic) if ((double)M * N * K > 262144.0)
  for (int bi = 0; bi < blocks; bi++) {
    const int j0 = bi * kBlock, j1 = std::min(N, j0 + kBlock);
    int i = 0;
    for (; i + 4 <= M; i += 4)
      DpRowTiles<4>(Ab + (size_t)i * ka, ka, B, ldb, K, j0, j1, alpha, beta, C + (size_t)i * ldc, ldc);
    for (; i < M; i++) DpRowTiles<1>(Ab + (size_t)i * ka, ka, B, ldb, K, j0, j1, alpha, beta, C + (size_t)i * ldc, ldc);
  }
}
#else
constexpr bool kHaveDpBf16 = false;
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
  if (bf16 && tb && dt == Half::BF16 && kHaveDpBf16) {
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

}  // namespace

void InitGemmHalf(Napi::Env env, Napi::Object exports) {
  exports.Set("gemmHalf", Napi::Function::New(env, GemmHalf, "gemmHalf"));
  exports.Set("embeddingForwardHalf", Napi::Function::New(env, EmbeddingForwardHalf, "embeddingForwardHalf"));
  exports.Set("sensAccumulateHalf", Napi::Function::New(env, SensAccumulateHalf, "sensAccumulateHalf"));
}
