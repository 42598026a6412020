#include "kernels.h"

void InitFused(Napi::Env env, Napi::Object exports) {}
