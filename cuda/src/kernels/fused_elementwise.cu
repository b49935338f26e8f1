// FusedElementwise: a chain of elementwise layers as a small program run in one pass. Each
// thread takes elements grid-stride, loads x once, applies every step in registers and stores
// y once: one launch and one read/write of the tensor instead of one per layer. Steps compute
// as the kernels of the layers they replace: unary functions in double rounded to float (as
// unary.cu), activations as the fused epilogue, binary ops as elementwise.cu (NaN on the left
// propagates through max/min).
#include "../common.cuh"
#include "_epilogue.cuh"

namespace {

__device__ __forceinline__ float unary_step(int op, float xf) {
  const double x = xf;
  switch (op) {
    case KILN_UNARY_EXP: return (float)exp(x);
    case KILN_UNARY_LOG: return (float)log(x);
    case KILN_UNARY_SQRT: return (float)sqrt(x);
    case KILN_UNARY_RECIP: return (float)(1.0 / x);
    case KILN_UNARY_ABS: return fabsf(xf);
    case KILN_UNARY_NEG: return -xf;
    case KILN_UNARY_SIN: return (float)sin(x);
    case KILN_UNARY_COS: return (float)cos(x);
    case KILN_UNARY_TAN: return (float)tan(x);
    case KILN_UNARY_SINH: return (float)sinh(x);
    case KILN_UNARY_COSH: return (float)cosh(x);
    case KILN_UNARY_ASIN: return (float)asin(x);
    case KILN_UNARY_ACOS: return (float)acos(x);
    case KILN_UNARY_ATAN: return (float)atan(x);
    case KILN_UNARY_ASINH: return (float)asinh(x);
    case KILN_UNARY_ACOSH: return (float)acosh(x);
    case KILN_UNARY_ATANH: return (float)atanh(x);
    case KILN_UNARY_CEIL: return ceilf(xf);
    case KILN_UNARY_FLOOR: return floorf(xf);
    case KILN_UNARY_ROUND: return rintf(xf);
    case KILN_UNARY_ERF: return (float)erf(x);
    default: return xf > 0.f ? 1.f : xf < 0.f ? -1.f : xf;  // sign keeps ±0 and NaN
  }
}

__device__ __forceinline__ float binary_step(int op, float a, float b) {
  switch (op) {
    case KILN_EW_SUM: return a + b;
    case KILN_EW_PROD: return a * b;
    case KILN_EW_MAX: return (a >= b || a != a) ? a : b;
    case KILN_EW_MIN: return (a <= b || a != a) ? a : b;
    case KILN_EW_SUB: return a - b;
    case KILN_EW_DIV: return a / b;
    default: return powf(a, b);
  }
}

__global__ void fused_elementwise_kernel(const __grid_constant__ kiln_fused_elementwise_params p) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.count;
       i += (int64_t)gridDim.x * blockDim.x) {
    float v = p.x[i];
    for (int s = 0; s < p.steps; ++s) {
      const int fn = p.step_fn[s];
      switch (p.step_kind[s]) {
        case KILN_FUSED_STEP_UNARY:
          v = unary_step(fn, v);
          break;
        case KILN_FUSED_STEP_ACTIVATION:
          v = kiln::activate(v, fn, p.alpha[s], p.beta[s]);
          break;
        default: {
          const int j = p.step_operand[s];
          const int64_t c = p.operand_count[j];
          const int64_t at = c == 1 ? 0 : c == p.count ? i : (i / p.operand_inner[j]) % c;
          const float o = __ldg(p.operand[j] + at);
          v = p.step_kind[s] == KILN_FUSED_STEP_BINARY ? binary_step(fn, v, o)
                                                       : binary_step(fn, o, v);
        }
      }
    }
    p.y[i] = v;
  }
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_fused_elementwise(
    const kiln_fused_elementwise_params* p, kiln_stream stream) {
  const char* where = "kiln_launch_fused_elementwise";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  bool ok = p->count >= 0 && p->steps >= 1 && p->steps <= KILN_FUSED_MAX_STEPS &&
            p->operands >= 0 && p->operands <= KILN_FUSED_MAX_OPERANDS &&
            (p->count == 0 || (p->x && p->y));
  for (int s = 0; ok && s < p->steps; ++s) {
    const int kind = p->step_kind[s], fn = p->step_fn[s];
    if (kind == KILN_FUSED_STEP_UNARY) {
      ok = fn >= KILN_UNARY_EXP && fn <= KILN_UNARY_SIGN;
    } else if (kind == KILN_FUSED_STEP_ACTIVATION) {
      ok = kiln::valid_activation(fn);
    } else {
      const int j = p->step_operand[s];
      ok = (kind == KILN_FUSED_STEP_BINARY || kind == KILN_FUSED_STEP_BINARY_REVERSED) &&
           fn >= KILN_EW_SUM && fn <= KILN_EW_POW && j >= 0 && j < p->operands &&
           p->operand[j] && p->operand_count[j] >= 1 && p->operand_inner[j] >= 1;
    }
    if (!ok) {
      return kiln::fail(KILN_INVALID_ARGUMENT, "%s: step %d is invalid (kind %d, fn %d)", where, s,
                        kind, fn);
    }
  }
  if (!ok) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (count %lld, steps %d, operands %d)",
                      where, (long long)p->count, p->steps, p->operands);
  }
  if (p->count == 0) return KILN_OK;
  const unsigned blocks =
      kiln::blocks_for(p->count, 256, (int64_t)kiln::multiprocessors(stream->device) * 16);
  fused_elementwise_kernel<<<blocks, 256, 0, stream->stream>>>(*p);
  return kiln::check_launch(where);
}
