/** The TypeScript reference backend: every kernel in plain loops, the oracle for the native one. */
import type { Kernels } from '../kernels.js';
import { svd, qr } from './linalg.js';
import { gemm, gemmStridedBatched } from './gemm.js';
import { maxWindow, topk } from './window.js';
import { crossEntropy } from './crossentropy.js';
import { adamw } from './adamw.js';
import { rope } from './rope.js';
import { embeddingForward, embeddingBackward } from './embedding.js';
import { swigluForward, swigluBackward } from './swiglu.js';
import { sensAccumulate, sum, rowSums, colSums } from './sensitivity.js';
import { attentionForward, attentionBackward } from './attention.js';
import { rmsnormForward, rmsnormBackward } from './rmsnorm.js';
import { gemmHalf, embeddingForwardHalf, sensAccumulateHalf, widenHalf } from './gemm-half.js';

export const tsKernels: Kernels = {
  name: 'ts',
  svd,
  qr,
  gemm,
  gemmStridedBatched,
  maxWindow,
  topk,
  crossEntropy,
  adamw,
  rope,
  embeddingForward,
  embeddingBackward,
  swigluForward,
  swigluBackward,
  sensAccumulate,
  sum,
  rowSums,
  colSums,
  attentionForward,
  attentionBackward,
  rmsnormForward,
  rmsnormBackward,
  gemmHalf,
  embeddingForwardHalf,
  sensAccumulateHalf,
  widenHalf,
};
