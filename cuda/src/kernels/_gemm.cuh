// A shared-memory tiled FP32 GEMM main loop (SIMT FFMA, no TF32), parameterized by how each
// operand tile is fetched, so that convolution (implicit GEMM: the im2col matrix is gathered
// on the fly, never stored) and fully connected layers share it.
//
//   acc[i][j] = sum_k A(m0 + ty + i·RY, k) · B(k, n0 + tx + j·RX)
//
// Each thread owns TM×TN outputs strided by RY = BM/TM rows and RX = BN/TN columns, so a warp's
// stores are consecutive in n (coalesced) and its shared-memory reads are conflict-free. Tiles
// are double-buffered in shared memory with a register prefetch of the next K slice: one
// barrier per K step.
#pragma once

#include "../common.cuh"

namespace kiln {

template <int BM_, int BN_, int BK_, int TM_, int TN_>
struct Tile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  static constexpr int RY = BM / TM, RX = BN / TN;
  static constexpr int THREADS = RY * RX;
  static constexpr int A_PER = BM * BK / THREADS;
  static constexpr int B_PER = BK * BN / THREADS;
  // Row pitch of the K-major shared tiles: +2 words makes the transposing stores of a warp
  // (16 k values × 2 rows) land in 32 distinct banks.
  static constexpr int PITCH_A = BM + 2, PITCH_B = BN + 2;
  static_assert(THREADS % BK == 0 && THREADS % BN == 0, "tile shape");
  static_assert(A_PER * THREADS == BM * BK && B_PER * THREADS == BK * BN, "tile shape");
};

using TileLarge = Tile<64, 64, 16, 4, 4>;  // 256 threads, 16 outputs each
using TileSmall = Tile<32, 32, 16, 2, 2>;  // 256 threads, 4 outputs each: more blocks for small problems

// B loaders either read K-contiguous columns (b(k, n), like A) or are N-contiguous gathers: a
// thread then always fetches the same column, set once with set_column(n), then b(k).
template <class T, class LoadA, class LoadB>
__device__ __forceinline__ void gemm_mainloop(int K, int m0, int n0, const LoadA& load_a, LoadB& load_b,
                                              float (&acc)[T::TM][T::TN]) {
  __shared__ float As[2][T::BK][T::PITCH_A];
  __shared__ float Bs[2][T::BK][T::PITCH_B];
  const int tid = threadIdx.x;
  const int tx = tid % T::RX, ty = tid / T::RX;

  // Fixed parts of this thread's load coordinates.
  const int a_k = tid % T::BK, a_row = tid / T::BK;
  constexpr int A_ROW_STEP = T::THREADS / T::BK;
  constexpr bool B_GATHER = LoadB::kNContiguous;
  const int b_k = B_GATHER ? tid / T::BN : tid % T::BK;
  const int b_col = B_GATHER ? tid % T::BN : tid / T::BK;
  constexpr int B_STEP = B_GATHER ? T::THREADS / T::BN : T::THREADS / T::BK;
  if constexpr (B_GATHER) load_b.set_column(n0 + b_col);

#pragma unroll
  for (int i = 0; i < T::TM; ++i)
#pragma unroll
    for (int j = 0; j < T::TN; ++j) acc[i][j] = 0.f;

  float ra[T::A_PER], rb[T::B_PER];
  auto fetch = [&](int k0) {
#pragma unroll
    for (int e = 0; e < T::A_PER; ++e) ra[e] = load_a(m0 + a_row + e * A_ROW_STEP, k0 + a_k);
#pragma unroll
    for (int e = 0; e < T::B_PER; ++e) {
      if constexpr (B_GATHER) {
        rb[e] = load_b(k0 + b_k + e * B_STEP);
      } else {
        rb[e] = load_b(k0 + b_k, n0 + b_col + e * B_STEP);
      }
    }
  };
  auto stash = [&](int buf) {
#pragma unroll
    for (int e = 0; e < T::A_PER; ++e) As[buf][a_k][a_row + e * A_ROW_STEP] = ra[e];
#pragma unroll
    for (int e = 0; e < T::B_PER; ++e) {
      if constexpr (B_GATHER) {
        Bs[buf][b_k + e * B_STEP][b_col] = rb[e];
      } else {
        Bs[buf][b_k][b_col + e * B_STEP] = rb[e];
      }
    }
  };

  const int k_tiles = (K + T::BK - 1) / T::BK;
  fetch(0);
  stash(0);
  __syncthreads();
  for (int kt = 0; kt < k_tiles; ++kt) {
    const int buf = kt & 1;
    const bool more = kt + 1 < k_tiles;
    if (more) fetch((kt + 1) * T::BK);
#pragma unroll
    for (int kk = 0; kk < T::BK; ++kk) {
      float a[T::TM], b[T::TN];
#pragma unroll
      for (int i = 0; i < T::TM; ++i) a[i] = As[buf][kk][ty + i * T::RY];
#pragma unroll
      for (int j = 0; j < T::TN; ++j) b[j] = Bs[buf][kk][tx + j * T::RX];
#pragma unroll
      for (int i = 0; i < T::TM; ++i)
#pragma unroll
        for (int j = 0; j < T::TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    if (more) stash(buf ^ 1);
    __syncthreads();
  }
}

// Row-major [rows × K] operand read along K (weights of a convolution group, FC inputs/weights).
struct RowsK {
  const float* p;
  int rows, K;
  __device__ __forceinline__ float operator()(int r, int k) const {
    return r < rows && k < K ? __ldg(p + (int64_t)r * K + k) : 0.f;
  }
};

// The same matrix seen as the B operand b(k, n) = p[n·K + k].
struct ColsK {
  static constexpr bool kNContiguous = false;
  const float* p;
  int cols, K;
  __device__ __forceinline__ float operator()(int k, int n) const {
    return n < cols && k < K ? __ldg(p + (int64_t)n * K + k) : 0.f;
  }
};

}  // namespace kiln
