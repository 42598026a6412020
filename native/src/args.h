// Argument checking shared by every kernel file (native/src/*.cc) and the bench helpers.
//
// Each exported function reads its arguments through an Args in the order of the Kernels method
// (src/engine/kernels.ts). Every buffer length is checked against what the kernel will touch: a
// wrong size from JavaScript must be an exception, never a read or write past the end of a typed
// array. On the first bad argument Args throws into JS (TypeError for a wrong kind of value,
// RangeError for a wrong value) and marks itself failed; later reads return 0/nullptr without
// throwing again, so callers read everything, then check ok() once and return undefined.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace nuggets_native {

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn) : info_(info), env_(info.Env()), fn_(fn) {}

  bool ok() const { return !failed_; }
  Napi::Env env() const { return env_; }

  // Throws "<fn>: <msg>" (RangeError, or TypeError when typeError) unless a call already threw.
  void fail(const std::string& msg, bool typeError = false) {
    if (failed_) return;  // one exception per call
    failed_ = true;
    const std::string m = std::string(fn_) + ": " + msg;
    if (typeError) Napi::TypeError::New(env_, m).ThrowAsJavaScriptException();
    else Napi::RangeError::New(env_, m).ThrowAsJavaScriptException();
  }

  // A non-negative integer (a size), below 2^31 so it also fits BLAS/LAPACK's 32-bit int.
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

  // The element type of a typed array argument (napi_float32_array, ...), or -1.
  int typeOf(size_t i) const {
    if (i >= info_.Length() || !info_[i].IsTypedArray()) return -1;
    return info_[i].As<Napi::TypedArray>().TypedArrayType();
  }

  // Elements of a typed array argument (0 when it is not one): for checks that need more than a
  // minimum length, e.g. GEMM's strided spans.
  uint64_t length(size_t i) const {
    if (typeOf(i) < 0) return 0;
    return static_cast<uint64_t>(info_[i].As<Napi::TypedArray>().ElementLength());
  }

  // A typed array of the given type holding at least `need` elements (null allowed when nullable).
  template <typename T>
  T* array(size_t i, const char* name, napi_typedarray_type type, const char* typeName, uint64_t need, bool nullable) {
    if (failed_) return nullptr;
    if (nullable && isNull(i)) return nullptr;
    if (typeOf(i) != type) {
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
  double* f64(size_t i, const char* name, uint64_t need) {
    return array<double>(i, name, napi_float64_array, "Float64Array", need, false);
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
inline uint64_t prod(std::initializer_list<int64_t> xs) {
  uint64_t p = 1;
  for (int64_t x : xs) {
    if (__builtin_mul_overflow(p, static_cast<uint64_t>(x), &p)) return UINT64_MAX;
  }
  return p;
}

}  // namespace nuggets_native
