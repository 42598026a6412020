// nuggets native kernels: N-API entry point. Each kernel family registers its functions here.
#include <napi.h>
#include "kernels.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitBlas(env, exports);
  InitSvd(env, exports);
  InitFused(env, exports);
  InitSearch(env, exports);
  InitGemmHalf(env, exports);
  return exports;
}

NODE_API_MODULE(nuggets_native, Init)
