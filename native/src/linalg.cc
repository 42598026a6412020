// Thin SVD (LAPACK sgesdd) and thin QR (sgeqrf + sorgqr) for row-major Float32Arrays.
//
// A row-major [m, n] buffer is the column-major [n, m] matrix A^T, so both run in LAPACK's native
// column-major order without LAPACKE's transposed copies: for the SVD, A^T = V S U^T means
// LAPACK's "U" of A^T, read row-major, is our Vt [k, n] and its "VT" is our U [m, k]; both are
// written straight into the returned arrays. A itself is never modified (LAPACK works on a copy).
// No backward: docs/method.md step 4 factorises frozen teacher blocks.
#include <lapacke.h>

#include <cmath>
#include <string>
#include <vector>

#include "args.h"
#include "kernels.h"

namespace {

using nuggets_native::Args;
using nuggets_native::prod;

// Reads (A: Float32Array, m, n), checks A holds m*n elements and that all of them are finite;
// throws into JS and returns false if not.
bool ReadMatrix(const Napi::CallbackInfo& info, const char* who, float** A, int* m, int* n) {
  Args a(info, who);
  const int64_t rows = a.size(1, "m"), cols = a.size(2, "n");
  float* x = a.f32(0, "A", prod({rows, cols}));
  if (!a.ok()) return false;
  // LAPACK on NaN/Inf returns garbage or fails to converge; say where the bad value is instead.
  const size_t count = static_cast<size_t>(rows) * cols;
  for (size_t i = 0; i < count; i++) {
    if (!std::isfinite(x[i])) {
      a.fail("A[" + std::to_string(i) + "] (row " + std::to_string(i / cols) + ", column " + std::to_string(i % cols) +
             ") is " + (x[i] != x[i] ? "NaN" : "infinite"));
      return false;
    }
  }
  *A = x;
  *m = static_cast<int>(rows);  // Args::size bounds both below 2^31
  *n = static_cast<int>(cols);
  return true;
}

// svd(A, m, n) -> { U [m,k], S [k], Vt [k,n], k }, k = min(m, n), S descending.
Napi::Value Svd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float* A = nullptr;
  int m = 0, n = 0;
  if (!ReadMatrix(info, "svd", &A, &m, &n)) return env.Undefined();
  const int k = m < n ? m : n;
  Napi::Float32Array U = Napi::Float32Array::New(env, (size_t)m * k);
  Napi::Float32Array S = Napi::Float32Array::New(env, (size_t)k);
  Napi::Float32Array Vt = Napi::Float32Array::New(env, (size_t)k * n);
  if (k > 0) {
    std::vector<float> work(A, A + (size_t)m * n);  // gesdd destroys its input
    // Column-major X = A^T [n, m], lda = n. LAPACK's U_X [n, k] (ldu = n) lands in Vt; VT_X [k, m] (ldvt = k) in U.
    lapack_int info_ = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'S', n, m, work.data(), n, S.Data(), Vt.Data(), n, U.Data(), k);
    if (info_ != 0) {
      Napi::Error::New(env, "svd: LAPACK sgesdd failed (info = " + std::to_string(info_) +
                                (info_ > 0 ? ", did not converge; does A contain NaN or Inf?)" : ", bad argument)"))
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("U", U);
  out.Set("S", S);
  out.Set("Vt", Vt);
  out.Set("k", k);
  return out;
}

// qr(A, m, n) -> Q [m, n] with orthonormal columns (m >= n), A = Q R.
Napi::Value Qr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float* A = nullptr;
  int m = 0, n = 0;
  if (!ReadMatrix(info, "qr", &A, &m, &n)) return env.Undefined();
  if (m < n) {
    Napi::RangeError::New(env, "qr: needs m >= n for a thin Q with orthonormal columns, got [" + std::to_string(m) +
                                   ", " + std::to_string(n) + "]")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Float32Array Q = Napi::Float32Array::New(env, (size_t)m * n);
  if (n == 0) return Q;
  // Here the transpose is explicit: geqrf must factor A itself (column-major [m, n], ld = m).
  std::vector<float> w((size_t)m * n), tau(n);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) w[(size_t)j * m + i] = A[(size_t)i * n + j];
  lapack_int rc = LAPACKE_sgeqrf(LAPACK_COL_MAJOR, m, n, w.data(), m, tau.data());
  if (rc == 0) rc = LAPACKE_sorgqr(LAPACK_COL_MAJOR, m, n, n, w.data(), m, tau.data());
  if (rc != 0) {
    Napi::Error::New(env, "qr: LAPACK sgeqrf/sorgqr failed (info = " + std::to_string(rc) + ")").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  float* q = Q.Data();
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) q[(size_t)i * n + j] = w[(size_t)j * m + i];
  return Q;
}

}  // namespace

void InitLinalg(Napi::Env env, Napi::Object exports) {
  exports.Set("svd", Napi::Function::New(env, Svd, "svd"));
  exports.Set("qr", Napi::Function::New(env, Qr, "qr"));
}
