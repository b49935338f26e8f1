// RaggedSoftMax: a warp per row of len; softmax over the row's first bounds[row] elements
// (max-subtracted, the sum accumulated in double and reduced with shuffles in a fixed order),
// zeros after the bound. A bound outside [0, len] zeroes its row and is reported via `error`.
#include "../common.cuh"

namespace {

constexpr int kWarps = 8;

__global__ void __launch_bounds__(kWarps * 32)
    ragged_softmax(const float* __restrict__ x, const int32_t* __restrict__ bounds,
                   float* __restrict__ y, int32_t* error, int64_t rows, int len) {
  const int lane = threadIdx.x % 32;
  const int64_t row = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const float* xr = x + row * len;
  float* yr = y + row * len;
  int b = __ldg(bounds + row);
  if (b < 0 || b > len) {
    if (lane == 0 && error && atomicCAS(error, 0, (int32_t)(row + 1)) == 0) error[1] = b;
    b = 0;
  }
  float m = -INFINITY;
  for (int j = lane; j < b; j += 32) m = fmaxf(m, __ldg(xr + j));
#pragma unroll
  for (int off = 16; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  double sum = 0.0;
  for (int j = lane; j < b; j += 32) sum += (double)expf(__ldg(xr + j) - m);
#pragma unroll
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  const float inv = (float)(1.0 / sum);
  for (int j = lane; j < len; j += 32) yr[j] = j < b ? expf(__ldg(xr + j) - m) * inv : 0.f;
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_ragged_softmax(const kiln_ragged_softmax_params* p,
                                                           kiln_stream stream) {
  const char* where = "kiln_launch_ragged_softmax";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  if (!p->x || !p->bounds || !p->y || p->rows < 0 || p->len <= 0) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (rows %lld, len %d)", where,
                      (long long)p->rows, p->len);
  }
  if (p->rows == 0) return KILN_OK;
  const int64_t blocks = (p->rows + kWarps - 1) / kWarps;
  ragged_softmax<<<(unsigned)blocks, kWarps * 32, 0, stream->stream>>>(p->x, p->bounds, p->y,
                                                                      p->error, p->rows, p->len);
  return kiln::check_launch(where);
}
