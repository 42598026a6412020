// Registration hooks of each kernel family (one .cc file each).
#pragma once
#include <napi.h>

void InitBlas(Napi::Env env, Napi::Object exports);    // blas.cc: gemm, gemmStridedBatched
void InitSvd(Napi::Env env, Napi::Object exports);     // svd.cc: svd, qr
void InitFused(Napi::Env env, Napi::Object exports);   // fused.cc: rmsnorm, rope, attention, swiglu, embedding, crossEntropy, adamw
void InitSearch(Napi::Env env, Napi::Object exports);  // search.cc: sensAccumulate, sum, rowSums, colSums, maxWindow, topk
void InitGemmHalf(Napi::Env env, Napi::Object exports);  // gemm_half.cc: gemmHalf, embeddingForwardHalf, sensAccumulateHalf
