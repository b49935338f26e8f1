// A shared-memory tiled FP32 GEMM main loop (SIMT FFMA, no TF32), parameterized by how each
// operand tile is fetched, so that convolution (implicit GEMM: the im2col matrix is gathered
// on the fly, never stored) and fully connected layers share it.
//
//   acc[i][j] = sum_{k in [k_begin, k_end)} A(m0 + ty·TM + i, k) · B(k, n0 + tx·TN + j)
//
// Each thread owns a contiguous TM×TN micro-tile, read from shared memory with 8- or 16-byte
// loads (two vector loads feed TM·TN FMAs). Tiles are double-buffered in shared memory with a
// register prefetch of the next K slice: one barrier per K step.
//
// Split-K: when a problem has too few tiles to fill the GPU, K is cut into `splits` chunks run
// by separate blocks that write partial sums to a workspace; a second kernel adds them in a
// fixed order and applies the epilogue (deterministic, no atomics). plan_gemm() picks the tile
// and the split with a small cost model.
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
  // Rows of the K-major shared tiles stay 16-byte aligned for the vector reads.
  static constexpr int PITCH_A = BM + 4, PITCH_B = BN + 4;
  static_assert(THREADS % BK == 0 && THREADS % BN == 0, "tile shape");
  static_assert(A_PER * THREADS == BM * BK && B_PER * THREADS == BK * BN, "tile shape");
};

// The tile shapes, by plan_gemm's index. All 256 threads.
using Tile64x64 = Tile<64, 64, 16, 4, 4>;
using Tile32x128 = Tile<32, 128, 16, 2, 8>;
using Tile32x64 = Tile<32, 64, 16, 2, 4>;
using Tile32x32 = Tile<32, 32, 16, 2, 2>;
constexpr int kTileCount = 4;
constexpr int kTileM[kTileCount] = {64, 32, 32, 32};
constexpr int kTileN[kTileCount] = {64, 128, 64, 32};
// FMAs per shared-memory wavefront, relative to 64x64 (from the micro-tile shapes).
constexpr float kTileEfficiency[kTileCount] = {1.0f, 0.8f, 0.67f, 0.5f};
constexpr int kMaxSplits = 16;

template <int N>
__device__ __forceinline__ void load_shared(const float* p, float (&v)[N]) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i) {
      const float4 t = reinterpret_cast<const float4*>(p)[i];
      v[4 * i] = t.x, v[4 * i + 1] = t.y, v[4 * i + 2] = t.z, v[4 * i + 3] = t.w;
    }
  } else if constexpr (N == 2) {
    const float2 t = *reinterpret_cast<const float2*>(p);
    v[0] = t.x, v[1] = t.y;
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) v[i] = p[i];
  }
}

// Whether an A loader declares kMContiguous = true (absent: false).
template <class L, class = void>
struct AMContiguous {
  static constexpr bool value = false;
};
template <class L>
struct AMContiguous<L, decltype((void)L::kMContiguous)> {
  static constexpr bool value = L::kMContiguous;
};

// B loaders either read K-contiguous columns (b(k, n), like A) or are N-contiguous gathers: a
// thread then always fetches the same column, set once with set_column(n), then b(k).
template <class T, class LoadA, class LoadB>
__device__ __forceinline__ void gemm_mainloop(int k_begin, int k_end, int m0, int n0,
                                              const LoadA& load_a, LoadB& load_b,
                                              float (&acc)[T::TM][T::TN]) {
  __shared__ __align__(16) float As[2][T::BK][T::PITCH_A];
  __shared__ __align__(16) float Bs[2][T::BK][T::PITCH_B];
  const int tid = threadIdx.x;
  const int tx = tid % T::RX, ty = tid / T::RX;

  // Fixed parts of this thread's load coordinates. A loaders read K-contiguous rows (a(m, k)
  // with k fastest, like B's columns) unless they declare kMContiguous (a transposed A stored
  // [K × M]): then neighbouring threads take neighbouring rows m, so that loads coalesce.
  constexpr bool A_M = AMContiguous<LoadA>::value;
  static_assert(!A_M || (T::THREADS % T::BM == 0 && T::BK % (T::THREADS / T::BM) == 0),
                "tile shape");
  const int a_k = A_M ? tid / T::BM : tid % T::BK, a_row = A_M ? tid % T::BM : tid / T::BK;
  constexpr int A_ROW_STEP = A_M ? 0 : T::THREADS / T::BK;
  constexpr int A_K_STEP = A_M ? T::THREADS / T::BM : 0;
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
    for (int e = 0; e < T::A_PER; ++e) {
      const int k = k0 + a_k + e * A_K_STEP;
      ra[e] = k < k_end ? load_a(m0 + a_row + e * A_ROW_STEP, k) : 0.f;
    }
#pragma unroll
    for (int e = 0; e < T::B_PER; ++e) {
      if constexpr (B_GATHER) {
        const int k = k0 + b_k + e * B_STEP;
        rb[e] = k < k_end ? load_b(k) : 0.f;
      } else {
        const int k = k0 + b_k;
        rb[e] = k < k_end ? load_b(k, n0 + b_col + e * B_STEP) : 0.f;
      }
    }
  };
  auto stash = [&](int buf) {
#pragma unroll
    for (int e = 0; e < T::A_PER; ++e) As[buf][a_k + e * A_K_STEP][a_row + e * A_ROW_STEP] = ra[e];
#pragma unroll
    for (int e = 0; e < T::B_PER; ++e) {
      if constexpr (B_GATHER) {
        Bs[buf][b_k + e * B_STEP][b_col] = rb[e];
      } else {
        Bs[buf][b_k][b_col + e * B_STEP] = rb[e];
      }
    }
  };

  const int k_tiles = (k_end - k_begin + T::BK - 1) / T::BK;
  if (k_tiles <= 0) return;
  fetch(k_begin);
  stash(0);
  __syncthreads();
  for (int kt = 0; kt < k_tiles; ++kt) {
    const int buf = kt & 1;
    const bool more = kt + 1 < k_tiles;
    if (more) fetch(k_begin + (kt + 1) * T::BK);
#pragma unroll
    for (int kk = 0; kk < T::BK; ++kk) {
      float a[T::TM], b[T::TN];
      load_shared<T::TM>(&As[buf][kk][ty * T::TM], a);
      load_shared<T::TN>(&Bs[buf][kk][tx * T::TN], b);
#pragma unroll
      for (int i = 0; i < T::TM; ++i)
#pragma unroll
        for (int j = 0; j < T::TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    if (more) stash(buf ^ 1);
    __syncthreads();
  }
}

// Row-major [rows × K] operand read along K (weights of a convolution group, FC inputs).
struct RowsK {
  const float* p;
  int rows, K;
  __device__ __forceinline__ float operator()(int r, int k) const {
    return r < rows ? __ldg(p + (int64_t)r * K + k) : 0.f;
  }
};

// A row-major [cols × K] matrix seen as the B operand b(k, n) = p[n·K + k] (FC weights).
struct ColsK {
  static constexpr bool kNContiguous = false;
  const float* p;
  int cols, K;
  __device__ __forceinline__ float operator()(int k, int n) const {
    return n < cols ? __ldg(p + (int64_t)n * K + k) : 0.f;
  }
};

struct GemmPlan {
  int tile;      // index into kTileM / kTileN
  int splits;    // K chunks (1: no split)
  int k_chunk;   // K elements per chunk, a multiple of 16
  int64_t blocks_m, blocks_n;
};

// Chooses the tile and the K split for an M×N×K GEMM repeated `groups` times. Cost, in units of
// a 64x64 block's K step: waves × K steps per block × max(tile work / efficiency, the latency
// floor of one K step), plus a fixed cost for the reduction kernel when K is split. A split is
// only taken while all its blocks fit in one wave, which also bounds the workspace by
// multiprocessors × 64·64 floats (kiln_gemm_workspace_bytes).
inline GemmPlan plan_gemm(int64_t M, int64_t N, int64_t K, int64_t groups, int sms,
                          int64_t workspace_bytes) {
  const float kLatencyFloor = 4500.f;     // a K step cannot be faster than a global load
  const float kReduceLaunch = 18000.f;    // ~2 µs of graph node
  const int64_t k_tiles = (K + 15) / 16;
  GemmPlan best{0, 1, (int)(k_tiles * 16), 0, 0};
  float best_cost = 3.4e38f;
  for (int t = 0; t < kTileCount; ++t) {
    const int64_t bm = (M + kTileM[t] - 1) / kTileM[t], bn = (N + kTileN[t] - 1) / kTileN[t];
    const int64_t blocks = bm * bn * groups;
    const float step = fmaxf((float)(kTileM[t] * kTileN[t]) / kTileEfficiency[t], kLatencyFloor);
    for (int s = 1; s <= kMaxSplits; s *= 2) {
      if (s > 1 && (blocks * s > sms || s * 2 > k_tiles ||
                    (int64_t)s * groups * M * N * 4 > workspace_bytes)) {
        break;
      }
      const int64_t chunk_tiles = (k_tiles + s - 1) / s;
      const int64_t waves = (blocks * s + sms - 1) / sms;
      float cost = (float)waves * (float)chunk_tiles * step;
      if (s > 1) cost += kReduceLaunch + (float)(s * groups * M * N * 4) * 3.7e-3f;
      if (cost < best_cost) {
        best_cost = cost;
        best = {t, s, (int)(chunk_tiles * 16), bm, bn};
      }
    }
  }
  return best;
}

}  // namespace kiln
