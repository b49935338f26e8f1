// Activation functions and the fused epilogue, as dsl/layers/_epilogue.ts defines them.
#pragma once

#include "kiln.h"

namespace kiln {

__device__ __forceinline__ float activate(float x, int act, float alpha, float beta) {
  switch (act) {
    case KILN_ACT_RELU:
      return x > 0.f ? x : 0.f;
    case KILN_ACT_SIGMOID:
      return 1.f / (1.f + expf(-x));
    case KILN_ACT_TANH:
      return tanhf(x);
    case KILN_ACT_LEAKY_RELU:
      return x >= 0.f ? x : alpha * x;
    case KILN_ACT_ELU:
      return x >= 0.f ? x : alpha * expm1f(x);
    case KILN_ACT_SELU:
      return x >= 0.f ? beta * x : beta * alpha * expm1f(x);
    case KILN_ACT_SOFTSIGN:
      return x / (1.f + fabsf(x));
    case KILN_ACT_SOFTPLUS:
      return alpha * log1pf(expf(beta * x));
    case KILN_ACT_CLIP:
      return fminf(beta, fmaxf(alpha, x));
    case KILN_ACT_HARD_SIGMOID:
      return fmaxf(0.f, fminf(1.f, alpha * x + beta));
    case KILN_ACT_SCALED_TANH:
      return alpha * tanhf(beta * x);
    case KILN_ACT_THRESHOLDED_RELU:
      return x > alpha ? x : 0.f;
    default:
      return x;
  }
}

struct Epilogue {
  const float* bias;      // indexed by output channel / feature, or null
  const float* residual;  // indexed like the output, or null
  int act;
  float alpha;
  float beta;
  int residual_mode;

  __device__ __forceinline__ float apply(float acc, int channel, int64_t index) const {
    float v = acc;
    if (bias) v += __ldg(bias + channel);
    if (residual_mode == KILN_RESIDUAL_PRE) v += residual[index];
    v = activate(v, act, alpha, beta);
    if (residual_mode == KILN_RESIDUAL_POST) v += residual[index];
    return v;
  }
};

inline bool valid_activation(int act) { return act >= KILN_ACT_NONE && act <= KILN_ACT_THRESHOLDED_RELU; }

}  // namespace kiln
