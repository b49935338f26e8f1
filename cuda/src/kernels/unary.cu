// Unary: y = op(x) elementwise. float32 is computed in double precision and rounded once (as the
// CPU reference), so results agree to the last bit almost everywhere; int32 ops wrap.
#include "../common.cuh"

namespace {

__device__ __forceinline__ float unary_float(int op, float xf) {
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
    case KILN_UNARY_ROUND: return rintf(xf);  // halves to even
    case KILN_UNARY_ERF: return (float)erf(x);
    default: return xf > 0.f ? 1.f : xf < 0.f ? -1.f : xf;  // sign keeps ±0 and NaN
  }
}

__device__ __forceinline__ int32_t unary_int(int op, int32_t v) {
  const uint32_t u = (uint32_t)v;
  switch (op) {
    case KILN_UNARY_ABS: return v < 0 ? (int32_t)(0u - u) : v;  // abs(-2^31) wraps to -2^31
    case KILN_UNARY_NEG: return (int32_t)(0u - u);
    case KILN_UNARY_SIGN: return (v > 0) - (v < 0);
    default: return v == 0 ? 1 : 0;  // not
  }
}

__global__ void unary_float_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n,
                                   int op) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    y[i] = unary_float(op, x[i]);
  }
}

__global__ void unary_int_kernel(const int32_t* __restrict__ x, int32_t* __restrict__ y, int64_t n,
                                 int op) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    y[i] = unary_int(op, x[i]);
  }
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_unary(const kiln_unary_params* p, kiln_stream stream) {
  const char* where = "kiln_launch_unary";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  const bool is_int = p->dtype == KILN_I32;
  const bool op_ok = is_int ? (p->op == KILN_UNARY_ABS || p->op == KILN_UNARY_NEG ||
                               p->op == KILN_UNARY_SIGN || p->op == KILN_UNARY_NOT)
                            : (p->dtype == KILN_F32 && p->op >= KILN_UNARY_EXP &&
                               p->op <= KILN_UNARY_SIGN);
  if (p->count < 0 || !op_ok || (p->count > 0 && (!p->x || !p->y))) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: op %d is not defined on dtype %d (count %lld)",
                      where, p->op, p->dtype, (long long)p->count);
  }
  if (p->count == 0) return KILN_OK;
  const unsigned blocks =
      kiln::blocks_for(p->count, 256, (int64_t)kiln::multiprocessors(stream->device) * 16);
  if (is_int) {
    unary_int_kernel<<<blocks, 256, 0, stream->stream>>>((const int32_t*)p->x, (int32_t*)p->y,
                                                        p->count, p->op);
  } else {
    unary_float_kernel<<<blocks, 256, 0, stream->stream>>>((const float*)p->x, (float*)p->y,
                                                          p->count, p->op);
  }
  return kiln::check_launch(where);
}
