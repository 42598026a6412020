#include "kernels.h"

void InitSvd(Napi::Env env, Napi::Object exports) {}
