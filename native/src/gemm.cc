// GEMM through OpenBLAS, straight on the typed-array memory (no copies). src/engine/ts/gemm.ts is
// the reference.
//
// Exported names and argument lists equal the Kernels methods (src/engine/kernels.ts) because
// src/engine/native.ts spreads this object into a Kernels. Every size is checked against the
// arrays' lengths first: a bad call throws a TypeError/RangeError instead of reading out of bounds.
// The GEMM backward is itself GEMMs (callers swap the transpose flags), so there is no backward here.
#include <cblas.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "args.h"
#include "kernels.h"

namespace {

using nuggets_native::Args;

// A size argument as BLAS's int (Args::size already bounds it below 2^31).
inline int Int(Args& a, size_t i, const char* name) { return static_cast<int>(a.size(i, name)); }

// Elements a [rows, cols] matrix with leading dimension ld spans.
inline uint64_t Span(int rows, int cols, int ld) {
  return rows == 0 || cols == 0 ? 0 : (uint64_t)(rows - 1) * ld + cols;
}

// Checks leading dimensions and that the matrix at offset `off` of each array fits.
bool CheckGemm(Args& a, bool ta, bool tb, int M, int N, int K, uint64_t lenA, int lda, uint64_t offA,
               uint64_t lenB, int ldb, uint64_t offB, uint64_t lenC, int ldc, uint64_t offC) {
  const int aRows = ta ? K : M, aCols = ta ? M : K;
  const int bRows = tb ? N : K, bCols = tb ? K : N;
  if (lda < aCols) return a.fail("lda = " + std::to_string(lda) + " < " + std::to_string(aCols) + " (columns of A as stored)"), false;
  if (ldb < bCols) return a.fail("ldb = " + std::to_string(ldb) + " < " + std::to_string(bCols) + " (columns of B as stored)"), false;
  if (ldc < N) return a.fail("ldc = " + std::to_string(ldc) + " < N = " + std::to_string(N)), false;
  if (M == 0 || N == 0) return true;
  if (offC + Span(M, N, ldc) > lenC) return a.fail("C needs " + std::to_string(offC + Span(M, N, ldc)) + " elements, has " + std::to_string(lenC)), false;
  if (K == 0) return true;
  if (offA + Span(aRows, aCols, lda) > lenA) return a.fail("A needs " + std::to_string(offA + Span(aRows, aCols, lda)) + " elements, has " + std::to_string(lenA)), false;
  if (offB + Span(bRows, bCols, ldb) > lenB) return a.fail("B needs " + std::to_string(offB + Span(bRows, bCols, ldb)) + " elements, has " + std::to_string(lenB)), false;
  return true;
}

// One GEMM with BLAS semantics, degenerate sizes handled here (cblas rejects ld = 0 and would
// print through xerbla instead of throwing). beta = 0 overwrites C, ignoring NaN in it.
void GemmCore(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0f) {
    for (int i = 0; i < M; i++) {
      float* c = C + (size_t)i * ldc;
      if (beta == 0.0f) for (int j = 0; j < N; j++) c[j] = 0.0f;
      else if (beta != 1.0f) for (int j = 0; j < N; j++) c[j] *= beta;
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}

// gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Args a(info, "gemm");
  bool ta = a.flag(0, "transA"), tb = a.flag(1, "transB");
  int M = Int(a, 2, "M"), N = Int(a, 3, "N"), K = Int(a, 4, "K");
  double alpha = a.num(5, "alpha");
  float* A = a.f32(6, "A", 0);
  const uint64_t lenA = a.length(6);
  int lda = Int(a, 7, "lda");
  float* B = a.f32(8, "B", 0);
  const uint64_t lenB = a.length(8);
  int ldb = Int(a, 9, "ldb");
  double beta = a.num(10, "beta");
  float* C = a.f32(11, "C", 0);
  const uint64_t lenC = a.length(11);
  int ldc = Int(a, 12, "ldc");
  if (!a.ok() || !CheckGemm(a, ta, tb, M, N, K, lenA, lda, 0, lenB, ldb, 0, lenC, ldc, 0)) return a.env().Undefined();
  GemmCore(ta, tb, M, N, K, (float)alpha, A, lda, B, ldb, (float)beta, C, ldc);
  return a.env().Undefined();
}

// Below this many multiply-adds per GEMM OpenBLAS runs single-threaded anyway (its
// GEMM_MULTITHREAD_THRESHOLD * 65536), so the batch is spread over cores with OpenMP instead.
constexpr double kSmallGemm = 4.0 * 65536.0;

// gemmStridedBatched(transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batch)
Napi::Value GemmStridedBatched(const Napi::CallbackInfo& info) {
  Args a(info, "gemmStridedBatched");
  bool ta = a.flag(0, "transA"), tb = a.flag(1, "transB");
  int M = Int(a, 2, "M"), N = Int(a, 3, "N"), K = Int(a, 4, "K");
  double alpha = a.num(5, "alpha");
  float* A = a.f32(6, "A", 0);
  const uint64_t lenA = a.length(6);
  int lda = Int(a, 7, "lda"), sA = Int(a, 8, "strideA");
  float* B = a.f32(9, "B", 0);
  const uint64_t lenB = a.length(9);
  int ldb = Int(a, 10, "ldb"), sB = Int(a, 11, "strideB");
  double beta = a.num(12, "beta");
  float* C = a.f32(13, "C", 0);
  const uint64_t lenC = a.length(13);
  int ldc = Int(a, 14, "ldc"), sC = Int(a, 15, "strideC");
  int batch = Int(a, 16, "batch");
  if (!a.ok()) return a.env().Undefined();
  if (batch == 0) return a.env().Undefined();
  // The last matrix of each array reaches furthest; checking it covers all of them.
  const uint64_t last = (uint64_t)(batch - 1);
  if (!CheckGemm(a, ta, tb, M, N, K, lenA, lda, last * sA, lenB, ldb, last * sB, lenC, ldc, last * sC)) {
    return a.env().Undefined();
  }
  const float fa = (float)alpha, fb = (float)beta;
  if (batch > 1 && (double)M * N * K < kSmallGemm) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < batch; b++) {
      GemmCore(ta, tb, M, N, K, fa, A + (size_t)b * sA, lda, B + (size_t)b * sB, ldb, fb, C + (size_t)b * sC, ldc);
    }
  } else {
    for (int b = 0; b < batch; b++) {
      GemmCore(ta, tb, M, N, K, fa, A + (size_t)b * sA, lda, B + (size_t)b * sB, ldb, fb, C + (size_t)b * sC, ldc);
    }
  }
  return a.env().Undefined();
}

}  // namespace

void InitGemm(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  exports.Set("gemmStridedBatched", Napi::Function::New(env, GemmStridedBatched, "gemmStridedBatched"));
}
