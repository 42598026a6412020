// nuggets native kernels: N-API entry point. Each kernel file registers its functions here; the
// exports must be exactly the Kernels interface (src/engine/native.ts checks it at load).
#include <napi.h>
#include "kernels.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitGemm(env, exports);
  InitLinalg(env, exports);
  InitRmsnorm(env, exports);
  InitRope(env, exports);
  InitAttention(env, exports);
  InitSwiglu(env, exports);
  InitEmbedding(env, exports);
  InitCrossEntropy(env, exports);
  InitAdamw(env, exports);
  InitSensitivity(env, exports);
  InitWindow(env, exports);
  InitGemmHalf(env, exports);
  return exports;
}

NODE_API_MODULE(nuggets_native, Init)
