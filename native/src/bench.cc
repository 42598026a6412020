// Benchmark helpers, built as their own addon (build/Release/nuggets_bench.node, loaded only by
// bench/): the CPU's fp32 FMA peak and OpenBLAS sgemm timed from C, the baseline the GEMM binding is
// compared to. They are no kernels and not part of the shipped nuggets_native addon.
#include <cblas.h>
#include <immintrin.h>
#include <napi.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

#include "args.h"

namespace {

using nuggets_native::Args;

inline int Int(Args& a, size_t i, const char* name) { return static_cast<int>(a.size(i, name)); }

// Independent FMA chains per thread: enough to cover FMA latency x issue width (4 x 2 on Zen 3,
// 4 x 2 on Skylake) with room to spare. acc = acc * m + c converges to 1, so no denormals or infs.
constexpr int kChains = 12;

double FmaLoop(long iters) {
#if defined(__AVX512F__)
  __m512 acc[kChains];
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  for (int j = 0; j < kChains; j++) acc[j] = _mm512_set1_ps(0.5f + j * 0.01f);
  for (long i = 0; i < iters; i++) {
    for (int j = 0; j < kChains; j++) acc[j] = _mm512_fmadd_ps(acc[j], m, c);
  }
  float out[16];
  __m512 s = acc[0];
  for (int j = 1; j < kChains; j++) s = _mm512_add_ps(s, acc[j]);
  _mm512_storeu_ps(out, s);
  double r = 0;
  for (float v : out) r += v;
  return r;
#elif defined(__AVX2__) && defined(__FMA__)
  __m256 acc[kChains];
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  for (int j = 0; j < kChains; j++) acc[j] = _mm256_set1_ps(0.5f + j * 0.01f);
  for (long i = 0; i < iters; i++) {
    for (int j = 0; j < kChains; j++) acc[j] = _mm256_fmadd_ps(acc[j], m, c);
  }
  float out[8];
  __m256 s = acc[0];
  for (int j = 1; j < kChains; j++) s = _mm256_add_ps(s, acc[j]);
  _mm256_storeu_ps(out, s);
  double r = 0;
  for (float v : out) r += v;
  return r;
#else
  float acc[kChains];
  for (int j = 0; j < kChains; j++) acc[j] = 0.5f + j * 0.01f;
  for (long i = 0; i < iters; i++) {
    for (int j = 0; j < kChains; j++) acc[j] = std::fma(acc[j], 0.999999f, 1e-6f);
  }
  double r = 0;
  for (float v : acc) r += v;
  return r;
#endif
}

constexpr int kLanes =
#if defined(__AVX512F__)
    16;
#elif defined(__AVX2__) && defined(__FMA__)
    8;
#else
    1;
#endif

// benchPeakFlops(chunks = 400) -> { gflops, threads, isa }: fp32 FMA throughput with one OpenMP
// thread per core. Each thread times many short chunks (~0.5 ms, shorter than a scheduler time
// slice) and keeps its fastest; the peak is the sum over threads. On a shared machine this measures
// what the cores can do rather than what happened to be free during one long run.
Napi::Value BenchPeakFlops(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  long chunks = 400;
  if (info.Length() > 0 && info[0].IsNumber()) chunks = (long)info[0].As<Napi::Number>().DoubleValue();
  if (chunks < 1) chunks = 1;
  constexpr long kChunkIters = 100000;
  const int threads = omp_get_num_procs();
  double total = 0, sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total, sink)
  {
    double best = 1e300;
    for (long c = 0; c < chunks; c++) {
      double t0 = omp_get_wtime();
      sink += FmaLoop(kChunkIters);
      double dt = omp_get_wtime() - t0;
      if (dt < best) best = dt;
    }
    total += (double)kChunkIters * kChains * kLanes * 2.0 / best / 1e9;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("gflops", total);
  out.Set("threads", threads);
  out.Set("isa", kLanes == 16 ? "avx512f" : kLanes == 8 ? "avx2+fma" : "scalar");
  out.Set("sink", sink);  // keeps the loop from being optimised away
  return out;
}

// benchSgemmDirect(M, N, K, reps) -> seconds per cblas_sgemm call (row-major, no transposes),
// on buffers allocated here, after one warm-up call: the baseline the binding is compared to.
Napi::Value BenchSgemmDirect(const Napi::CallbackInfo& info) {
  Args a(info, "benchSgemmDirect");
  int M = Int(a, 0, "M"), N = Int(a, 1, "N"), K = Int(a, 2, "K"), reps = Int(a, 3, "reps");
  if (!a.ok()) return a.env().Undefined();
  if (M == 0 || N == 0 || K == 0 || reps == 0) return a.fail("M, N, K, reps must all be positive"), a.env().Undefined();
  std::vector<float> A((size_t)M * K), B((size_t)K * N), C((size_t)M * N);
  uint32_t s = 12345;
  auto next = [&s]() { s = s * 1664525u + 1013904223u; return (float)(s >> 8) / 16777216.0f - 0.5f; };
  for (float& v : A) v = next();
  for (float& v : B) v = next();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; r++) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
  }
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return Napi::Number::New(a.env(), dt / reps);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("benchPeakFlops", Napi::Function::New(env, BenchPeakFlops, "benchPeakFlops"));
  exports.Set("benchSgemmDirect", Napi::Function::New(env, BenchSgemmDirect, "benchSgemmDirect"));
  return exports;
}

}  // namespace

NODE_API_MODULE(nuggets_bench, Init)
