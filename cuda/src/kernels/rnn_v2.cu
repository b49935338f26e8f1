// RNNv2: stacked LSTM / GRU (linear before reset) / RNN relu|tanh, uni- or bidirectional, with
// the semantics of runtime/cpu/rnn_v2.ts (equations in dsl/layers/rnn_v2.ts).
//
// Per stacked layer:
//  - sequences longer than one step: one tiled GEMM projects the inputs of all steps and both
//    directions at once, P[n·t, dirs, gates, hidden] = X · Wᵀ + biases (skip input: X itself),
//    then one fused kernel per step runs both directions: every block owns 2 hidden units × 8
//    batch items, its warps reduce R·h for each gate row over a slice of K (16-byte loads, the
//    gate rows of a unit read once for all 8 items), the slices meet in shared memory and the
//    block's first 32 threads apply the gate non-linearities and write state and outputs.
//  - one-step sequences (a generation step): no projection; the step kernel reduces W·x and R·h
//    together, so a layer is a single launch (KILN_RNN_PERSISTENT=1: every stacked layer in ONE
//    cooperative launch with a grid-wide barrier between layers, rnn_layers; measured slower).
//  - from a batch of 16 on, the step kernel is a shared-memory tiled GEMM instead: on sm_90 with
//    K split over the 8 blocks of a thread-block cluster (rnn_step_split, 64 items × 32 gate
//    columns per tile), elsewhere 16 items × the gate rows of 16 LSTM units per block
//    (rnn_step_tiled); the cell update is taken from shared memory.
// The hidden state ping-pongs between two workspace buffers (blocks read the whole previous h
// while others write theirs); the cell state is updated in place in c_out (each element is read
// and written by one thread). The final layer writes y, earlier ones a workspace buffer
// alternating with y. Every launch (plain, cluster or cooperative) is graph-capturable.
// Summation orders are fixed (no atomics): results are bitwise reproducible.
#include <cooperative_groups.h>

#include <cstdlib>
#include <cstring>

#include "../common.cuh"

namespace cg = cooperative_groups;

namespace {

constexpr int kUnits = 2;   // hidden units per block (more blocks: more loads in flight)
constexpr int kItems = 8;   // batch items per block
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

__host__ __device__ constexpr int gates_of(int op) {
  return op == KILN_RNN_LSTM ? 4 : op == KILN_RNN_GRU ? 3 : 1;
}

struct DirWeights {
  const float* w[4];   // [hidden × in] per gate; NULL in skip mode
  const float* r[4];   // [hidden × hidden]
  const float* bw[4];  // [hidden] or NULL
  const float* br[4];
};

struct StepArgs {
  DirWeights dw[2];
  const float* x;  // the layer's input [n, t, in] (fused mode)
  const float* p;  // projections [n·t, dirs, gates, hidden] (unfused mode)
  // Previous hidden/cell state of item b, direction d: base[d·dir_stride + b·item_stride + j];
  // NULL base: zero.
  const float* hp;
  int64_t hp_dir, hp_item;
  const float* cp;
  int64_t cp_dir, cp_item;
  float* hn;       // next hidden state [dirs, n, hidden], or NULL on the last step
  float* h_final;  // h_out + l·dirs·hidden (direction stride hidden, item stride final_item)
  float* c_final;  // likewise in c_out, or NULL
  int64_t final_item;
  float* y;  // [n, t, dirs·hidden]
  const int32_t* lengths;
  int n, t, in, h, dirs, step, fused, skip;
};

__device__ __forceinline__ float sigmoid(float v) { return 1.f / (1.f + expf(-v)); }

__device__ __forceinline__ int length_of(const int32_t* lengths, int b, int t) {
  return lengths ? min(max(__ldg(lengths + b), 0), t) : t;
}

// acc[u][i] += rows[u] · vec[i] over this warp's slice of K (vec[i] NULL: item skipped).
template <bool VEC>
__device__ __forceinline__ void dot_slice(const float* const (&rows)[kUnits],
                                          const float* const (&vec)[kItems], int K, int slice,
                                          int slices, int lane, float (&acc)[kUnits][kItems]) {
  if (VEC) {
    const int k4 = K / 4, chunk = (k4 + slices - 1) / slices;
    const int begin = slice * chunk, end = min(k4, begin + chunk);
#pragma unroll 2
    for (int k = begin + lane; k < end; k += 32) {
      float4 w[kUnits];
#pragma unroll
      for (int u = 0; u < kUnits; ++u) w[u] = __ldg(reinterpret_cast<const float4*>(rows[u]) + k);
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        if (!vec[i]) continue;
        const float4 v = *(reinterpret_cast<const float4*>(vec[i]) + k);
#pragma unroll
        for (int u = 0; u < kUnits; ++u) {
          acc[u][i] = fmaf(w[u].x, v.x, acc[u][i]);
          acc[u][i] = fmaf(w[u].y, v.y, acc[u][i]);
          acc[u][i] = fmaf(w[u].z, v.z, acc[u][i]);
          acc[u][i] = fmaf(w[u].w, v.w, acc[u][i]);
        }
      }
    }
  } else {
    const int chunk = (K + slices - 1) / slices;
    const int begin = slice * chunk, end = min(K, begin + chunk);
    for (int k = begin + lane; k < end; k += 32) {
      float w[kUnits];
#pragma unroll
      for (int u = 0; u < kUnits; ++u) w[u] = __ldg(rows[u] + k);
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        if (!vec[i]) continue;
        const float v = vec[i][k];
#pragma unroll
        for (int u = 0; u < kUnits; ++u) acc[u][i] = fmaf(w[u], v, acc[u][i]);
      }
    }
  }
}

// Butterfly-reduces each accumulator over the warp; lane u·kItems + i stores (u, i) at out.
// Items past `items` (beyond the batch) are skipped.
__device__ __forceinline__ void reduce_to(float (&acc)[kUnits][kItems], int lane, float* out,
                                          int items) {
#pragma unroll
  for (int u = 0; u < kUnits; ++u) {
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      if (i >= items) continue;
      float v = acc[u][i];
#pragma unroll
      for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
      if (lane == u * kItems + i) out[lane] = v;
      acc[u][i] = 0.f;
    }
  }
}

// The cell update of item b, unit j from the gates' W·x and R·h sums (zero where a segment was
// not computed): biases, projections (unfused) or skip input, non-linearities, state and outputs.
template <int OP>
__device__ __forceinline__ void finish_cell(const StepArgs& a, int dir, int b, int j,
                                            const float (&xdot)[gates_of(OP)],
                                            const float (&hdot)[gates_of(OP)]) {
  constexpr int G = gates_of(OP);
  const int H = a.h;
  if (j >= H || b >= a.n) return;
  const DirWeights& W = a.dw[dir];
  const int len = length_of(a.lengths, b, a.t);
  const float h_prev = a.hp ? a.hp[dir * a.hp_dir + b * a.hp_item + j] : 0.f;
  const float c_prev = a.cp ? a.cp[dir * a.cp_dir + b * a.cp_item + j] : 0.f;
  float* h_fin = a.h_final + dir * H + b * a.final_item + j;
  float* c_fin = a.c_final ? a.c_final + dir * H + b * a.final_item + j : nullptr;
  const int64_t y_row = (int64_t)a.dirs * H;
  if (a.step >= len) {
    // Past this item's length: state kept, output zero (at position `step`, which no active
    // step of either direction writes).
    if (a.hn) a.hn[((int64_t)dir * a.n + b) * H + j] = h_prev;
    *h_fin = h_prev;
    if (c_fin) *c_fin = c_prev;
    a.y[((int64_t)b * a.t + a.step) * y_row + dir * H + j] = 0.f;
    return;
  }
  const int t = dir == 0 ? a.step : len - 1 - a.step;
  float xs[G], hs[G];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float xv = xdot[g], hv = hdot[g];
    const bool gru_hidden = OP == KILN_RNN_GRU && g == 2;
    if (a.fused) {
      if (a.skip) xv += a.x[((int64_t)b * a.t + t) * a.in + j];
      if (W.bw[g]) xv += W.bw[g][j];
      if (W.br[g] && !gru_hidden) xv += W.br[g][j];
    } else {
      xv = a.p[(((int64_t)b * a.t + t) * a.dirs + dir) * G * H + g * H + j];
    }
    if (gru_hidden && W.br[g]) hv += W.br[g][j];
    xs[g] = xv;
    hs[g] = hv;
  }
  float h_new;
  if constexpr (OP == KILN_RNN_LSTM) {
    const float ig = sigmoid(xs[0] + hs[0]), og = sigmoid(xs[1] + hs[1]);
    const float fg = sigmoid(xs[2] + hs[2]), cand = tanhf(xs[3] + hs[3]);
    const float c = fg * c_prev + ig * cand;
    *c_fin = c;
    h_new = og * tanhf(c);
  } else if constexpr (OP == KILN_RNN_GRU) {
    const float z = sigmoid(xs[0] + hs[0]), r = sigmoid(xs[1] + hs[1]);
    const float cand = tanhf(xs[2] + r * hs[2]);
    h_new = (1.f - z) * cand + z * h_prev;
  } else if constexpr (OP == KILN_RNN_RELU) {
    h_new = fmaxf(0.f, xs[0] + hs[0]);
  } else {
    h_new = tanhf(xs[0] + hs[0]);
  }
  if (a.hn) a.hn[((int64_t)dir * a.n + b) * H + j] = h_new;
  *h_fin = h_new;
  a.y[((int64_t)b * a.t + t) * y_row + dir * H + j] = h_new;
}

// Parts of a block's step: the W·x sums, the R·h sums, the cell update.
constexpr int kPartX = 1, kPartH = 2, kPartFinish = 4, kPartAll = 7;

// One block's share of a small-batch step, the parts in `parts` (all threads of the block must
// call it: kPartFinish synchronizes the block). The sums wait in shared memory for the update.
template <int OP, bool VEC>
__device__ __forceinline__ void step_block(const StepArgs& a, int parts) {
  constexpr int G = gates_of(OP);
  constexpr int KS = kWarps / G;  // K slices per gate: LSTM 2, GRU 2, RNN 8
  // [segment (W·x, R·h)][slice][gate][unit · kItems + item]
  __shared__ float red[2][KS][G][kUnits * kItems];
  const int dir = blockIdx.z;
  const int j0 = blockIdx.x * kUnits, b0 = blockIdx.y * kItems;
  const int H = a.h;
  const DirWeights& W = a.dw[dir];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const bool has_x = a.fused && !a.skip;

  if (warp < G * KS) {
    const int g = warp / KS, slice = warp % KS;
    float acc[kUnits][kItems];
#pragma unroll
    for (int u = 0; u < kUnits; ++u)
#pragma unroll
      for (int i = 0; i < kItems; ++i) acc[u][i] = 0.f;
    const float* vec[kItems];
    const float* rows[kUnits];
    if (has_x && (parts & kPartX)) {
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        const int b = b0 + i;
        const int len = b < a.n ? length_of(a.lengths, b, a.t) : 0;
        const int t = dir == 0 ? a.step : len - 1 - a.step;
        vec[i] = a.step < len ? a.x + ((int64_t)b * a.t + t) * a.in : nullptr;
      }
#pragma unroll
      for (int u = 0; u < kUnits; ++u) rows[u] = W.w[g] + (int64_t)min(j0 + u, H - 1) * a.in;
      dot_slice<VEC>(rows, vec, a.in, slice, KS, lane, acc);
      reduce_to(acc, lane, red[0][slice][g], a.n - b0);
    }
    if (a.hp && (parts & kPartH)) {
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        const int b = b0 + i;
        const int len = b < a.n ? length_of(a.lengths, b, a.t) : 0;
        vec[i] = a.step < len ? a.hp + dir * a.hp_dir + b * a.hp_item : nullptr;
      }
#pragma unroll
      for (int u = 0; u < kUnits; ++u) rows[u] = W.r[g] + (int64_t)min(j0 + u, H - 1) * H;
      dot_slice<VEC>(rows, vec, H, slice, KS, lane, acc);
      reduce_to(acc, lane, red[1][slice][g], a.n - b0);
    }
  }
  if (!(parts & kPartFinish)) return;
  __syncthreads();
  if (threadIdx.x < kUnits * kItems) {
    const int u = threadIdx.x / kItems, i = threadIdx.x % kItems;
    const int cell = threadIdx.x;  // u · kItems + i
    float xdot[G], hdot[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float xv = 0.f, hv = 0.f;
      if (has_x) {
#pragma unroll
        for (int s = 0; s < KS; ++s) xv += red[0][s][g][cell];
      }
      if (a.hp) {
#pragma unroll
        for (int s = 0; s < KS; ++s) hv += red[1][s][g][cell];
      }
      xdot[g] = xv, hdot[g] = hv;
    }
    finish_cell<OP>(a, dir, b0 + i, j0 + u, xdot, hdot);
  }
}

template <int OP, bool VEC>
__global__ void __launch_bounds__(kThreads) rnn_step(const __grid_constant__ StepArgs a) {
  step_block<OP, VEC>(a, kPartAll);
}

// Most stacked layers one persistent launch takes (the table travels as a kernel parameter).
constexpr int kMaxPersistentLayers = 8;

struct LayerSteps {
  StepArgs s[kMaxPersistentLayers];
  int layers;
};
static_assert(sizeof(LayerSteps) <= 4000, "kernel parameter space");

// Every stacked layer of a one-step sequence in one cooperative launch: the blocks run layer l's
// step, meet at a grid-wide barrier (which also orders layer l's outputs before layer l + 1
// reads them), then run layer l + 1. Layer l + 1's R·h needs only its initial state, so it is
// summed before the barrier, while other blocks still finish layer l; after it only W·x is left.
// Same block work and summation order as one rnn_step per layer: bitwise the same results.
template <int OP, bool VEC>
__global__ void __launch_bounds__(kThreads) rnn_layers(const __grid_constant__ LayerSteps ls) {
  for (int l = 0; l < ls.layers; ++l) {
    step_block<OP, VEC>(ls.s[l], l == 0 ? kPartAll : kPartX | kPartFinish);
    if (l + 1 < ls.layers) {
      __syncthreads();  // layer l's update has read the shared sums
      step_block<OP, VEC>(ls.s[l + 1], kPartH);
      cg::this_grid().sync();
    }
  }
}

// Items per tile, gate columns per tile, K per stage of the tiled step kernel.
constexpr int kTileItems = 16, kTileCols = 64, kTileDepth = 64;
// Items per thread in the tiled kernel (16 threads across the tile's items).
constexpr int kItemsPerThread = kTileItems / 16;
// From this batch on, steps use the tiled kernel (weights reused across 16 items).
constexpr int kTiledMinBatch = 16;

// The tiled step kernels' operand rows for segment `seg` (0: x_t against W, 1: h against R):
// item rows (nullptr past an item's length) and gate-column rows (nullptr past the tile).
template <int kItems, int kCols, int BU, int BN>
__device__ __forceinline__ void set_operand_rows(const StepArgs& a, const DirWeights& W, int seg,
                                                 int dir, int b0, int j0, int tid,
                                                 const float** rowp, const float** colp) {
  const int H = a.h;
  if (tid < kItems) {
    const int b = b0 + tid;
    const int len = b < a.n ? length_of(a.lengths, b, a.t) : 0;
    const int t = dir == 0 ? a.step : len - 1 - a.step;
    rowp[tid] = a.step >= len ? nullptr
                : seg == 0    ? a.x + ((int64_t)b * a.t + t) * a.in
                              : a.hp + dir * a.hp_dir + b * a.hp_item;
  } else if (tid < kItems + kCols) {
    const int c = tid - kItems, g = c / BU, j = j0 + c % BU;
    colp[c] = c >= BN || j >= H ? nullptr
              : seg == 0        ? W.w[g] + (int64_t)j * a.in
                                : W.r[g] + (int64_t)j * H;
  }
}

// One step for larger batches: a shared-memory tiled GEMM of [x_t | h] (16 items) against the
// gate rows of kTileCols / gates units ([W | R], gate-major columns), 1 × 4 outputs per thread,
// the next K stage fetched into registers while the current one is multiplied, the W·x and R·h
// sums kept apart (the GRU needs them so); then the cell update per (item, unit) from shared
// memory.
template <int OP>
__global__ void __launch_bounds__(256) rnn_step_tiled(const __grid_constant__ StepArgs a) {
  constexpr int G = gates_of(OP), BU = kTileCols / G, BN = G * BU;
  constexpr int kRowsA = kTileItems * kTileDepth / 256, kRowsB = kTileCols * kTileDepth / 256;
  // Padded: conflict-free column stores of A; 16-byte aligned rows of B for float4 reads.
  __shared__ float as[kTileDepth][kTileItems + 1];
  __shared__ __align__(16) float bs[kTileDepth][kTileCols + 4];
  __shared__ float sx[kTileItems][kTileCols + 1];
  __shared__ float sh[kTileItems][kTileCols + 1];
  __shared__ const float* rowp[kTileItems];
  __shared__ const float* colp[kTileCols];
  const int dir = blockIdx.z, H = a.h, tid = threadIdx.x;
  const DirWeights& W = a.dw[dir];
  const int j0 = blockIdx.x * BU, b0 = blockIdx.y * kTileItems;
  const int tx = tid % 16, ty = tid / 16;  // columns tx·4 .. +3, items ty·kItemsPerThread ..
  const int kq = tid % kTileDepth, r0 = tid / kTileDepth;  // loads: rows r0 + 4q at k kq
  const bool has_x = a.fused && !a.skip;
  float accx[kItemsPerThread][4] = {}, acch[kItemsPerThread][4] = {};
  for (int seg = 0; seg < 2; ++seg) {
    if (seg == 0 ? !has_x : !a.hp) continue;
    const int K = seg == 0 ? a.in : H;
    __syncthreads();  // the previous segment is done with rowp/colp
    set_operand_rows<kTileItems, kTileCols, BU, BN>(a, W, seg, dir, b0, j0, tid, rowp, colp);
    __syncthreads();
    float pa[kRowsA], pb[kRowsB];
    auto fetch = [&](int k0) {
      const int k = k0 + kq;
#pragma unroll
      for (int q = 0; q < kRowsA; ++q) {
        const float* p = rowp[r0 + 4 * q];
        pa[q] = p && k < K ? p[k] : 0.f;
      }
#pragma unroll
      for (int q = 0; q < kRowsB; ++q) {
        const float* p = colp[r0 + 4 * q];
        pb[q] = p && k < K ? __ldg(p + k) : 0.f;
      }
    };
    fetch(0);
    for (int k0 = 0; k0 < K; k0 += kTileDepth) {
#pragma unroll
      for (int q = 0; q < kRowsA; ++q) as[kq][r0 + 4 * q] = pa[q];
#pragma unroll
      for (int q = 0; q < kRowsB; ++q) bs[kq][r0 + 4 * q] = pb[q];
      __syncthreads();
      if (k0 + kTileDepth < K) fetch(k0 + kTileDepth);
#pragma unroll 16
      for (int k2 = 0; k2 < kTileDepth; ++k2) {
        float ar[kItemsPerThread];
#pragma unroll
        for (int r = 0; r < kItemsPerThread; ++r) ar[r] = as[k2][ty * kItemsPerThread + r];
        const float4 bv = *reinterpret_cast<const float4*>(&bs[k2][tx * 4]);
        const float bc[4] = {bv.x, bv.y, bv.z, bv.w};
        if (seg == 0) {
#pragma unroll
          for (int r = 0; r < kItemsPerThread; ++r)
#pragma unroll
            for (int c = 0; c < 4; ++c) accx[r][c] = fmaf(ar[r], bc[c], accx[r][c]);
        } else {
#pragma unroll
          for (int r = 0; r < kItemsPerThread; ++r)
#pragma unroll
            for (int c = 0; c < 4; ++c) acch[r][c] = fmaf(ar[r], bc[c], acch[r][c]);
        }
      }
      __syncthreads();
    }
  }
#pragma unroll
  for (int r = 0; r < kItemsPerThread; ++r)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      sx[ty * kItemsPerThread + r][tx * 4 + c] = accx[r][c];
      sh[ty * kItemsPerThread + r][tx * 4 + c] = acch[r][c];
    }
  __syncthreads();
  for (int p = tid; p < kTileItems * BU; p += 256) {
    const int i = p / BU, u = p % BU;
    float xdot[G], hdot[G];
#pragma unroll
    for (int g = 0; g < G; ++g) xdot[g] = sx[i][g * BU + u], hdot[g] = sh[i][g * BU + u];
    finish_cell<OP>(a, dir, b0 + i, j0 + u, xdot, hdot);
  }
}

// The split step kernel (sm_90): the tiled step with K dealt out to the kSplit blocks of a
// thread-block cluster, so a batch of 64 keeps 512 blocks busy instead of 128 (the tiled kernel
// is latency-bound: one block per SM walking all of K in 16 dependent stages; here 2). Each block multiplies a tile of
// kSplitItems items × kSplitCols gate columns over its K slice (the W·x and R·h segments are
// sliced separately: with both present, half the blocks take x and half h), the next stage's
// loads in registers while the current one is multiplied, 2 × 4 outputs per thread. The
// partial tiles meet through distributed shared memory: block r of the cluster sums the kSplit
// partials of its kSplitItems / kSplit items in a fixed order (deterministic, no atomics) and
// applies the cell update.
// K slices per tile (the cluster size): 8 by default (H100, CharRNN b64: 0.88M samples/s vs
// 0.83M with 4), 4 as a diagnostic.
constexpr int kSplitFewer = 4;
// Tile shapes (items × gate columns): 64 × 32 reads each weight once per step at a batch of 64,
// 32 × 64 reads it twice but the activations half as often.
constexpr int kWideItems = 64, kWideCols = 32, kTallItems = 32, kTallCols = 64;

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// The segment (0: W·x, 1: R·h, -1: none) of K slice s, its part within the segment and the
// number of parts the segment is cut into.
template <int kSplit>
__device__ __forceinline__ int slice_segment(int s, bool has_x, bool has_h, int& part,
                                             int& parts) {
  if (has_x && has_h) {
    part = s % (kSplit / 2), parts = kSplit / 2;
    return s < kSplit / 2 ? 0 : 1;
  }
  part = s, parts = kSplit;
  return has_x ? 0 : has_h ? 1 : -1;
}
#endif

template <int OP, int kSplitItems, int kSplitCols, int kSplit>
__global__ void __launch_bounds__(256) rnn_step_split(const __grid_constant__ StepArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int G = gates_of(OP), BU = kSplitCols / G, BN = G * BU, D = 64;  // K per stage
  constexpr int kRowsA = kSplitItems * D / 256, kRowsB = kSplitCols * D / 256;
  constexpr int kColThreads = kSplitCols / 4;  // 4 columns per thread
  static_assert(kSplitItems * kColThreads == 2 * 256, "2 items × 4 columns per thread");
  constexpr int kPartRow = kSplitCols + 1;
  __shared__ float as[D][kSplitItems + 1];
  __shared__ __align__(16) float bs[D][kSplitCols + 4];
  __shared__ float partial[kSplitItems][kPartRow];
  __shared__ const float* rowp[kSplitItems];
  __shared__ const float* colp[kSplitCols];
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = (int)cluster.block_rank();
  const int dir = blockIdx.z, H = a.h, tid = threadIdx.x;
  const DirWeights& W = a.dw[dir];
  const int j0 = (blockIdx.x / kSplit) * BU, b0 = blockIdx.y * kSplitItems;
  const int tx = tid % kColThreads, ty = tid / kColThreads;  // columns tx·4 .. +3, items ty·2 ..
  const int kq = tid % D, r0 = tid / D;    // loads: rows r0 + 4q at k kq
  const bool has_x = a.fused && !a.skip, has_h = a.hp != nullptr;
  int part, parts;
  const int seg = slice_segment<kSplit>(rank, has_x, has_h, part, parts);
  float acc[2][4] = {};
  if (seg >= 0) {
    const int K = seg == 0 ? a.in : H;
    const int chunk = (K + parts - 1) / parts;
    const int kb = part * chunk, ke = min(K, kb + chunk);
    set_operand_rows<kSplitItems, kSplitCols, BU, BN>(a, W, seg, dir, b0, j0, tid, rowp, colp);
    __syncthreads();
    float pa[kRowsA], pb[kRowsB];
    auto fetch = [&](int k0) {
      const int k = k0 + kq;
#pragma unroll
      for (int q = 0; q < kRowsA; ++q) {
        const float* p = rowp[r0 + 4 * q];
        pa[q] = p && k < ke ? p[k] : 0.f;
      }
#pragma unroll
      for (int q = 0; q < kRowsB; ++q) {
        const float* p = colp[r0 + 4 * q];
        pb[q] = p && k < ke ? __ldg(p + k) : 0.f;
      }
    };
    fetch(kb);
    for (int k0 = kb; k0 < ke; k0 += D) {
#pragma unroll
      for (int q = 0; q < kRowsA; ++q) as[kq][r0 + 4 * q] = pa[q];
#pragma unroll
      for (int q = 0; q < kRowsB; ++q) bs[kq][r0 + 4 * q] = pb[q];
      __syncthreads();
      if (k0 + D < ke) fetch(k0 + D);
#pragma unroll 16
      for (int k2 = 0; k2 < D; ++k2) {
        const float a0 = as[k2][ty * 2], a1 = as[k2][ty * 2 + 1];
        const float4 bv = *reinterpret_cast<const float4*>(&bs[k2][tx * 4]);
        const float bc[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          acc[0][c] = fmaf(a0, bc[c], acc[0][c]);
          acc[1][c] = fmaf(a1, bc[c], acc[1][c]);
        }
      }
      __syncthreads();
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r)
#pragma unroll
    for (int c = 0; c < 4; ++c) partial[ty * 2 + r][tx * 4 + c] = acc[r][c];
  cluster.sync();  // every partial tile of the cluster is written
  constexpr int kOwnItems = kSplitItems / kSplit;
  for (int p = tid; p < kOwnItems * BU; p += 256) {
    const int i = rank * kOwnItems + p / BU, u = p % BU;
    float xdot[G] = {}, hdot[G] = {};
    for (int s = 0; s < kSplit; ++s) {
      int sp, sps;
      const int sg = slice_segment<kSplit>(s, has_x, has_h, sp, sps);
      if (sg < 0) continue;
      const float* remote = cluster.map_shared_rank(&partial[0][0], (unsigned)s) + i * kPartRow;
      if (sg == 0) {
#pragma unroll
        for (int g = 0; g < G; ++g) xdot[g] += remote[g * BU + u];
      } else {
#pragma unroll
        for (int g = 0; g < G; ++g) hdot[g] += remote[g * BU + u];
      }
    }
    finish_cell<OP>(a, dir, b0 + i, j0 + u, xdot, hdot);
  }
  cluster.sync();  // no block leaves while another still reads its partial tile
#endif
}

struct ProjArgs {
  DirWeights dw[2];
  const float* x;  // [m, in]
  float* p;        // [m, dirs, gates, hidden]
  int m, in, h, dirs, skip;
};

constexpr int kTile = 64, kTileK = 16;

// P = X · Wᵀ + biases for one direction (blockIdx.z): a 64×64 tile per block, 4×4 per thread.
// The GRU hidden gate's bR stays out (the reset gate scales it in the step kernel).
template <int OP>
__global__ void __launch_bounds__(256) rnn_project(const __grid_constant__ ProjArgs a) {
  constexpr int G = gates_of(OP);
  __shared__ float as[kTileK][kTile + 4];
  __shared__ float bs[kTileK][kTile + 4];
  const int dir = blockIdx.z, H = a.h, cols = G * H;
  const DirWeights& W = a.dw[dir];
  const int m0 = blockIdx.y * kTile, n0 = blockIdx.x * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  if (!a.skip) {
    for (int k0 = 0; k0 < a.in; k0 += kTileK) {
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int e = threadIdx.x + 256 * q, r = e / kTileK, k = e % kTileK;
        const int row = m0 + r, col = n0 + r, kk = k0 + k;
        as[k][r] = row < a.m && kk < a.in ? __ldg(a.x + (int64_t)row * a.in + kk) : 0.f;
        bs[k][r] = col < cols && kk < a.in
                       ? __ldg(W.w[col / H] + (int64_t)(col % H) * a.in + kk)
                       : 0.f;
      }
      __syncthreads();
#pragma unroll
      for (int k = 0; k < kTileK; ++k) {
        float av[4], bv[4];
#pragma unroll
        for (int q = 0; q < 4; ++q) av[q] = as[k][ty * 4 + q], bv[q] = bs[k][tx * 4 + q];
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(av[r], bv[c], acc[r][c]);
      }
      __syncthreads();
    }
  }
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int row = m0 + ty * 4 + r;
    if (row >= a.m) continue;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int col = n0 + tx * 4 + c;
      if (col >= cols) continue;
      const int g = col / H, j = col % H;
      float v = a.skip ? a.x[(int64_t)row * a.in + j] : acc[r][c];
      if (W.bw[g]) v += W.bw[g][j];
      if (W.br[g] && !(OP == KILN_RNN_GRU && g == 2)) v += W.br[g][j];
      a.p[((int64_t)row * a.dirs + dir) * cols + col] = v;
    }
  }
}

// Workspace regions, each 256-byte aligned: two hidden-state buffers [dirs, n, hidden], the
// inter-layer output [n, t, dirs·hidden] (more than one layer) and the projections (t > 1).
struct Workspace {
  int64_t h_bytes, y_bytes, p_bytes;
  int64_t total() const { return 2 * h_bytes + y_bytes + p_bytes; }
};

int64_t align256(int64_t b) { return (b + 255) / 256 * 256; }

Workspace workspace_of(const kiln_rnn_v2_params* p) {
  const int64_t n = p->n, t = p->t, h = p->hidden, d = p->dirs;
  Workspace w;
  w.h_bytes = align256(d * n * h * 4);
  w.y_bytes = p->layers > 1 ? align256(n * t * d * h * 4) : 0;
  w.p_bytes = t > 1 ? align256(n * t * d * gates_of(p->op) * h * 4) : 0;
  return w;
}

kiln_status check_params(const kiln_rnn_v2_params* p, const char* where) {
  if (p->op < 0 || p->op > 3 || p->n < 1 || p->t < 1 || p->e < 1 || p->hidden < 1 ||
      p->layers < 1 || (p->dirs != 1 && p->dirs != 2) || (p->skip_input && p->e != p->hidden)) {
    return kiln::fail(KILN_INVALID_ARGUMENT,
                      "%s: bad parameters (op %d, n %d, t %d, e %d, hidden %d, layers %d, dirs %d, "
                      "skip %d)",
                      where, p->op, p->n, p->t, p->e, p->hidden, p->layers, p->dirs, p->skip_input);
  }
  if ((int64_t)p->n > 65535LL * kItems) {
    return kiln::fail(KILN_UNSUPPORTED, "%s: batch %d exceeds %d", where, p->n, 65535 * kItems);
  }
  return KILN_OK;
}

bool aligned16(const void* q) { return ((uintptr_t)q & 15) == 0; }

// Diagnostics, read at every launch (a benchmark can compare the paths in one process):
// KILN_RNN_PERSISTENT=1 runs a one-step small-batch stack as one cooperative launch (off by
// default: on the H100 it measured 0.3-0.5 µs slower per CharRNN step than one launch per layer,
// the grid barrier costing what the saved launch did); KILN_RNN_SPLIT=0 runs batches from 16 on
// with the unsplit tiled kernel; KILN_RNN_SPLIT_K=4 and KILN_RNN_SPLIT_TILE=32x64 pick other
// split shapes.
bool env_is(const char* name, const char* value) {
  const char* e = getenv(name);
  return e && strcmp(e, value) == 0;
}

// Compute capability major of `device`, cached.
int cc_major(int device) {
  static int major[64] = {};
  if (device < 0 || device >= 64) return 0;
  if (!major[device] &&
      cudaDeviceGetAttribute(&major[device], cudaDevAttrComputeCapabilityMajor, device) !=
          cudaSuccess) {
    (void)cudaGetLastError();
    major[device] = -1;
  }
  return major[device];
}

// Whether `blocks` blocks of rnn_layers<OP, VEC> can all be resident at once on `device` (a
// cooperative launch's requirement), cached per instantiation and device.
template <int OP, bool VEC>
bool co_resident(int device, int64_t blocks) {
  static int per_sm[64] = {};
  if (device < 0 || device >= 64) return false;
  if (!per_sm[device]) {
    int coop = 0, n = 0;
    if (cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, device) != cudaSuccess ||
        !coop ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, rnn_layers<OP, VEC>, kThreads, 0) !=
            cudaSuccess) {
      (void)cudaGetLastError();
      n = 0;
    }
    per_sm[device] = n > 0 ? n : -1;
  }
  return per_sm[device] > 0 && blocks <= (int64_t)per_sm[device] * kiln::multiprocessors(device);
}

template <int OP, bool VEC>
kiln_status launch_layers(const LayerSteps& ls, dim3 grid, cudaStream_t stream,
                          const char* where) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeCooperative;
  attr[0].val.cooperative = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = dim3(kThreads);
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  KILN_TRY_CUDA(cudaLaunchKernelEx(&cfg, rnn_layers<OP, VEC>, ls), where);
  return kiln::check_launch(where);
}

template <int OP, int kSplitItems, int kSplitCols, int kSplit>
kiln_status launch_split(const StepArgs& s, int H, int n, int D, cudaStream_t stream,
                         const char* where) {
  constexpr int units = kSplitCols / gates_of(OP);
  const dim3 grid((H + units - 1) / units * kSplit, (n + kSplitItems - 1) / kSplitItems, D);
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = kSplit;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = dim3(256);
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  KILN_TRY_CUDA(
      cudaLaunchKernelEx(&cfg, rnn_step_split<OP, kSplitItems, kSplitCols, kSplit>, s), where);
  return kiln::check_launch(where);
}

template <int OP>
kiln_status launch_all(const kiln_rnn_v2_params* p, cudaStream_t stream, int device,
                       const char* where) {
  constexpr int G = gates_of(OP);
  const int n = p->n, T = p->t, H = p->hidden, D = p->dirs, L = p->layers;
  const Workspace ws = workspace_of(p);
  char* base = static_cast<char*>(p->workspace);
  float* hbuf[2] = {reinterpret_cast<float*>(base), reinterpret_cast<float*>(base + ws.h_bytes)};
  float* ybuf = ws.y_bytes ? reinterpret_cast<float*>(base + 2 * ws.h_bytes) : nullptr;
  float* pbuf = ws.p_bytes ? reinterpret_cast<float*>(base + 2 * ws.h_bytes + ws.y_bytes) : nullptr;
  const bool fused = T == 1;
  const int64_t LD = (int64_t)L * D;
  const bool tiled = n >= kTiledMinBatch;
  const bool split = tiled && cc_major(device) >= 9 && !env_is("KILN_RNN_SPLIT", "0");
  const bool tall = env_is("KILN_RNN_SPLIT_TILE", "32x64");
  const bool four = tall || env_is("KILN_RNN_SPLIT_K", "4");
  // A one-step small-batch stack: the layers' step arguments are collected and launched once.
  const bool persistent = fused && !tiled && L > 1 && L <= kMaxPersistentLayers &&
                          env_is("KILN_RNN_PERSISTENT", "1");
  LayerSteps ls{};
  bool all_vec = true;
  const float* x = p->x;
  for (int l = 0; l < L; ++l) {
    const int in = l == 0 ? p->e : D * H;
    const bool skip = p->skip_input && l == 0;
    // The last layer lands in y: layers alternate between y and the workspace buffer.
    float* out = (L - 1 - l) % 2 == 0 ? p->y : ybuf;
    StepArgs s{};
    bool vec = in % 4 == 0 && H % 4 == 0 && aligned16(x) && aligned16(p->h0) &&
               aligned16(hbuf[0]) && aligned16(hbuf[1]);
    for (int dir = 0; dir < D; ++dir) {
      const float* const* w = p->weights + (int64_t)(l * D + dir) * G * 4;
      for (int g = 0; g < G; ++g) {
        DirWeights& dw = s.dw[dir];
        dw.w[g] = w[g * 4 + 0];
        dw.r[g] = w[g * 4 + 1];
        dw.bw[g] = w[g * 4 + 2];
        dw.br[g] = w[g * 4 + 3];
        if ((!skip && !dw.w[g]) || !dw.r[g]) {
          return kiln::fail(KILN_INVALID_ARGUMENT, "%s: layer %d direction %d gate %d has no %s",
                            where, l, dir, g, dw.r[g] ? "W" : "R");
        }
        vec = vec && aligned16(dw.r[g]) && (skip || aligned16(dw.w[g]));
      }
    }
    if (!fused) {
      ProjArgs pa{};
      for (int d = 0; d < D; ++d) pa.dw[d] = s.dw[d];
      pa.x = x, pa.p = pbuf, pa.m = n * T, pa.in = in, pa.h = H, pa.dirs = D, pa.skip = skip;
      const dim3 grid((G * H + kTile - 1) / kTile, (n * T + kTile - 1) / kTile, D);
      rnn_project<OP><<<grid, 256, 0, stream>>>(pa);
      KILN_TRY(kiln::check_launch(where));
    }
    s.x = x, s.p = pbuf, s.y = out, s.lengths = p->lengths;
    s.h_final = p->h_out + (int64_t)l * D * H;
    s.c_final = p->c_out ? p->c_out + (int64_t)l * D * H : nullptr;
    s.final_item = LD * H;
    s.n = n, s.t = T, s.in = in, s.h = H, s.dirs = D, s.fused = fused, s.skip = skip;
    constexpr int tile_units = kTileCols / G;
    const dim3 grid = tiled ? dim3((H + tile_units - 1) / tile_units,
                                   (n + kTileItems - 1) / kTileItems, D)
                            : dim3((H + kUnits - 1) / kUnits, (n + kItems - 1) / kItems, D);
    for (int step = 0; step < T; ++step) {
      s.step = step;
      if (step == 0) {
        s.hp = p->h0 ? p->h0 + (int64_t)l * D * H : nullptr, s.hp_dir = H, s.hp_item = LD * H;
        s.cp = p->c0 && p->c_out ? p->c0 + (int64_t)l * D * H : nullptr, s.cp_dir = H,
        s.cp_item = LD * H;
      } else {
        s.hp = hbuf[(step - 1) % 2], s.hp_dir = (int64_t)n * H, s.hp_item = H;
        s.cp = s.c_final, s.cp_dir = H, s.cp_item = LD * H;
      }
      s.hn = step + 1 < T ? hbuf[step % 2] : nullptr;
      if (persistent) {
        ls.s[l] = s;
        all_vec = all_vec && vec;
        continue;
      }
      if (split) {
        const kiln_status st =
            tall   ? launch_split<OP, kTallItems, kTallCols, kSplitFewer>(s, H, n, D, stream, where)
            : four ? launch_split<OP, kWideItems, kWideCols, kSplitFewer>(s, H, n, D, stream, where)
                   : launch_split<OP, kWideItems, kWideCols, 8>(s, H, n, D, stream, where);
        KILN_TRY(st);
        continue;
      }
      if (tiled) {
        rnn_step_tiled<OP><<<grid, 256, 0, stream>>>(s);
      } else if (vec) {
        rnn_step<OP, true><<<grid, kThreads, 0, stream>>>(s);
      } else {
        rnn_step<OP, false><<<grid, kThreads, 0, stream>>>(s);
      }
      KILN_TRY(kiln::check_launch(where));
    }
    x = out;
  }
  if (!persistent) return KILN_OK;
  ls.layers = L;
  const dim3 grid((H + kUnits - 1) / kUnits, (n + kItems - 1) / kItems, D);
  const int64_t blocks = (int64_t)grid.x * grid.y * grid.z;
  if (all_vec && co_resident<OP, true>(device, blocks)) {
    return launch_layers<OP, true>(ls, grid, stream, where);
  }
  if (!all_vec && co_resident<OP, false>(device, blocks)) {
    return launch_layers<OP, false>(ls, grid, stream, where);
  }
  // Too many blocks to be resident at once: one launch per layer, in order.
  for (int l = 0; l < L; ++l) {
    if (all_vec) {
      rnn_step<OP, true><<<grid, kThreads, 0, stream>>>(ls.s[l]);
    } else {
      rnn_step<OP, false><<<grid, kThreads, 0, stream>>>(ls.s[l]);
    }
    KILN_TRY(kiln::check_launch(where));
  }
  return KILN_OK;
}

}  // namespace

extern "C" KILN_API kiln_status kiln_rnn_v2_workspace_bytes(const kiln_rnn_v2_params* p,
                                                            uint64_t* bytes) {
  const char* where = "kiln_rnn_v2_workspace_bytes";
  if (!p || !bytes) return kiln::fail(KILN_INVALID_ARGUMENT, "%s: NULL argument", where);
  KILN_TRY(check_params(p, where));
  *bytes = (uint64_t)workspace_of(p).total();
  return KILN_OK;
}

extern "C" KILN_API kiln_status kiln_launch_rnn_v2(const kiln_rnn_v2_params* p, kiln_stream stream) {
  const char* where = "kiln_launch_rnn_v2";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  KILN_TRY(check_params(p, where));
  if (!p->x || !p->y || !p->h_out || !p->weights || (p->op == KILN_RNN_LSTM && !p->c_out)) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: x, y, h_out, weights (and c_out for LSTM) are required",
                      where);
  }
  const int64_t need = workspace_of(p).total();
  if (!p->workspace || p->workspace_bytes < need) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: workspace of %lld bytes, %lld needed", where,
                      (long long)p->workspace_bytes, (long long)need);
  }
  switch (p->op) {
    case KILN_RNN_LSTM:
      return launch_all<KILN_RNN_LSTM>(p, stream->stream, stream->device, where);
    case KILN_RNN_GRU:
      return launch_all<KILN_RNN_GRU>(p, stream->stream, stream->device, where);
    case KILN_RNN_RELU:
      return launch_all<KILN_RNN_RELU>(p, stream->stream, stream->device, where);
    default:
      return launch_all<KILN_RNN_TANH>(p, stream->stream, stream->device, where);
  }
}
