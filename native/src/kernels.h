// Registration hooks of the kernel files: one per file, named after it, each file mirroring the
// TypeScript reference of the same stem in src/engine/ts/ (gemm.cc <-> gemm.ts, ...).
#pragma once
#include <napi.h>

void InitGemm(Napi::Env env, Napi::Object exports);          // gemm, gemmStridedBatched
void InitLinalg(Napi::Env env, Napi::Object exports);        // svd, qr
void InitRmsnorm(Napi::Env env, Napi::Object exports);       // rmsnormForward, rmsnormBackward
void InitRope(Napi::Env env, Napi::Object exports);          // rope
void InitAttention(Napi::Env env, Napi::Object exports);     // attentionForward, attentionBackward
void InitSwiglu(Napi::Env env, Napi::Object exports);        // swigluForward, swigluBackward
void InitEmbedding(Napi::Env env, Napi::Object exports);     // embeddingForward, embeddingBackward
void InitCrossEntropy(Napi::Env env, Napi::Object exports);  // crossEntropy
void InitAdamw(Napi::Env env, Napi::Object exports);         // adamw
void InitSensitivity(Napi::Env env, Napi::Object exports);   // sensAccumulate, sum, rowSums, colSums
void InitWindow(Napi::Env env, Napi::Object exports);        // maxWindow, topk
void InitGemmHalf(Napi::Env env, Napi::Object exports);      // gemmHalf, embeddingForwardHalf, sensAccumulateHalf, widenHalf
