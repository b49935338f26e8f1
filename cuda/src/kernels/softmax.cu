// SoftMax / log-softmax over the middle axis of [outer, len, inner], max-subtracted like the CPU
// reference (max, then sum of exp(x - max), then the outputs). Reductions are warp shuffles in
// a fixed order (deterministic, no atomics):
//   inner == 1, len <= 1024: one warp per row;   inner == 1, longer rows: one block per row;
//   inner > 1: one thread per (outer, inner) column, consecutive threads on consecutive columns.
#include "../common.cuh"

namespace {

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ __forceinline__ float softmax_out(float x, float max, float sum, float log_sum, bool log) {
  return log ? x - max - log_sum : expf(x - max) / sum;
}

constexpr int kRowWarps = 8;

__global__ void __launch_bounds__(kRowWarps * 32)
    softmax_warp_rows(const float* __restrict__ x, float* __restrict__ y, int rows, int len, bool log) {
  const int row = blockIdx.x * kRowWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const float* xr = x + (int64_t)row * len;
  float* yr = y + (int64_t)row * len;
  float m = -INFINITY;
  for (int j = lane; j < len; j += 32) m = fmaxf(m, xr[j]);
  m = warp_max(m);
  float s = 0.f;
  for (int j = lane; j < len; j += 32) s += expf(xr[j] - m);
  s = warp_sum(s);
  const float ls = logf(s);
  for (int j = lane; j < len; j += 32) yr[j] = softmax_out(xr[j], m, s, ls, log);
}

constexpr int kBlockThreads = 256;

// Block-wide reduction through shared memory, identical order on every run.
template <bool MAX>
__device__ __forceinline__ float block_reduce(float v, float* scratch) {
  v = MAX ? warp_max(v) : warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < kBlockThreads / 32 ? scratch[lane] : (MAX ? -INFINITY : 0.f);
  v = MAX ? warp_max(v) : warp_sum(v);
  __syncthreads();  // scratch is reused by the next reduction
  return v;
}

__global__ void __launch_bounds__(kBlockThreads)
    softmax_block_rows(const float* __restrict__ x, float* __restrict__ y, int len, bool log) {
  __shared__ float scratch[kBlockThreads / 32];
  const float* xr = x + (int64_t)blockIdx.x * len;
  float* yr = y + (int64_t)blockIdx.x * len;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < len; j += kBlockThreads) m = fmaxf(m, xr[j]);
  m = block_reduce<true>(m, scratch);
  float s = 0.f;
  for (int j = threadIdx.x; j < len; j += kBlockThreads) s += expf(xr[j] - m);
  s = block_reduce<false>(s, scratch);
  const float ls = logf(s);
  for (int j = threadIdx.x; j < len; j += kBlockThreads) yr[j] = softmax_out(xr[j], m, s, ls, log);
}

__global__ void softmax_columns(const float* __restrict__ x, float* __restrict__ y, int64_t columns,
                                int len, int inner, bool log) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < columns;
       c += (int64_t)gridDim.x * blockDim.x) {
    const int64_t o = c / inner, i = c - o * inner;
    const int64_t base = o * len * inner + i;
    float m = -INFINITY;
    for (int j = 0; j < len; ++j) m = fmaxf(m, x[base + (int64_t)j * inner]);
    float s = 0.f;
    for (int j = 0; j < len; ++j) s += expf(x[base + (int64_t)j * inner] - m);
    const float ls = logf(s);
    for (int j = 0; j < len; ++j) {
      const int64_t at = base + (int64_t)j * inner;
      y[at] = softmax_out(x[at], m, s, ls, log);
    }
  }
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_softmax(const kiln_softmax_params* p, kiln_stream stream) {
  const char* where = "kiln_launch_softmax";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  if (p->outer <= 0 || p->len <= 0 || p->inner <= 0 || !p->x || !p->y) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (outer %d, len %d, inner %d)", where,
                      p->outer, p->len, p->inner);
  }
  const bool log = p->log != 0;
  cudaStream_t s = stream->stream;
  if (p->inner == 1 && p->len <= 1024) {
    const unsigned blocks = (unsigned)((p->outer + kRowWarps - 1) / kRowWarps);
    softmax_warp_rows<<<blocks, kRowWarps * 32, 0, s>>>(p->x, p->y, p->outer, p->len, log);
  } else if (p->inner == 1) {
    softmax_block_rows<<<(unsigned)p->outer, kBlockThreads, 0, s>>>(p->x, p->y, p->len, log);
  } else {
    const int64_t columns = (int64_t)p->outer * p->inner;
    const unsigned blocks =
        kiln::blocks_for(columns, 256, (int64_t)kiln::multiprocessors(stream->device) * 32);
    softmax_columns<<<blocks, 256, 0, s>>>(p->x, p->y, columns, p->len, p->inner, log);
  }
  return kiln::check_launch(where);
}
