// The tiled GEMM of FullyConnected (y[m×n] = epilogue(x[m×k] · w[n×k]ᵀ)) with its split-K
// reduction and parameter check, shared by the default kernel (fully_connected.cu) and the tile
// tactics (fc_tactics.cu).
#pragma once

#include "../common.cuh"
#include "_epilogue.cuh"
#include "_gemm.cuh"

namespace kiln {

// Kernels local to each file that includes this (internal linkage: no duplicate symbols).
namespace {

template <class T>
__global__ void __launch_bounds__(T::THREADS)
    fc_tiled(const float* x, const float* w, float* y, int m, int n, int K, const kiln::Epilogue ep,
             float* partial, int splits, int k_chunk) {
  const int split = blockIdx.z;
  const int m0 = blockIdx.y * T::BM, n0 = blockIdx.x * T::BN;
  const int k_begin = split * k_chunk, k_end = min(K, k_begin + k_chunk);
  kiln::RowsK load_a{x, m, K};
  kiln::ColsK load_b{w, n, K};
  float acc[T::TM][T::TN];
  kiln::gemm_mainloop<T>(k_begin, k_end, m0, n0, load_a, load_b, acc);
  const int tx = threadIdx.x % T::RX, ty = threadIdx.x / T::RX;
#pragma unroll
  for (int i = 0; i < T::TM; ++i) {
    const int r = m0 + ty * T::TM + i;
    if (r >= m) continue;
#pragma unroll
    for (int j = 0; j < T::TN; ++j) {
      const int c = n0 + tx * T::TN + j;
      if (c >= n) continue;
      const int64_t idx = (int64_t)r * n + c;
      if (splits > 1) partial[(int64_t)split * m * n + idx] = acc[i][j];
      else y[idx] = ep.apply(acc[i][j], c, idx);
    }
  }
}

// Adds the split-K partial sums in split order, then applies the epilogue.
__global__ void fc_reduce(const float* __restrict__ partial, float* y, int m, int n, int splits,
                          const kiln::Epilogue ep) {
  const int64_t total = (int64_t)m * n;
  for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < total;
       o += (int64_t)gridDim.x * blockDim.x) {
    float v = 0.f;
    for (int sp = 0; sp < splits; ++sp) v += partial[sp * total + o];
    y[o] = ep.apply(v, (int)(o % n), o);
  }
}

}  // namespace

inline kiln_status validate_fully_connected(const kiln_fully_connected_params* p,
                                            const char* where) {
  if (p->m <= 0 || p->n <= 0 || p->k <= 0 || !p->x || !p->w || !p->y || !valid_activation(p->act) ||
      (p->residual_mode != KILN_RESIDUAL_NONE && !p->residual)) {
    return fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (m %d, n %d, k %d, act %d)", where,
                p->m, p->n, p->k, p->act);
  }
  return KILN_OK;
}

}  // namespace kiln
