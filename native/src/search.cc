#include "kernels.h"

void InitSearch(Napi::Env env, Napi::Object exports) {}
