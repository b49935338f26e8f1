// MatrixMultiply: y[mat] = epilogue(op(A[mat_a]) · op(B[mat_b]) + bias) for every matrix of the
// output's leading (batch) dims, A and B found through broadcast strides (0 along a broadcast
// dim: the same matrix is read again).
//
// Few rows (m ≤ 8): a GEMV per matrix, bandwidth-bound, so every B element is read once and
// coalesced: with B stored [K × N] a thread owns a column and the block's warps split K (summed
// in shared memory in a fixed order); with B stored [N × K] (transposed) a warp owns a column and
// its lanes split K (butterfly shuffles). More rows: the tiled GEMM of _gemm.cuh with loaders
// for each storage order (both coalesce), split along K with a deterministic reduction when the
// tiles do not fill the GPU. No atomics anywhere: results are bitwise reproducible.
#include <type_traits>

#include "../common.cuh"
#include "_epilogue.cuh"
#include "_gemm.cuh"

namespace {

constexpr int kGemvMaxRows = 8;
constexpr int kGemvThreads = 256;
constexpr int kSlices = kGemvThreads / 32;

// Leading dims of the output and each operand's element stride along them.
struct BatchMap {
  int rank;
  int64_t dims[KILN_MAX_RANK];
  int64_t a[KILN_MAX_RANK];
  int64_t b[KILN_MAX_RANK];

  __device__ __forceinline__ void offsets(int64_t mat, int64_t& ao, int64_t& bo) const {
    ao = 0, bo = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t i = mat % dims[d];
      mat /= dims[d];
      ao += i * a[d];
      bo += i * b[d];
    }
  }
};

// A stored [K × M] (transposeA): a(m, k) = p[k·M + m], read with neighbouring threads on
// neighbouring m.
struct KRowsM {
  static constexpr bool kMContiguous = true;
  const float* p;
  int M;
  __device__ __forceinline__ float operator()(int r, int k) const {
    return r < M ? __ldg(p + (int64_t)k * M + r) : 0.f;
  }
};

// B stored [K × N] (not transposed): each thread fetches one column n.
struct KRowsN {
  static constexpr bool kNContiguous = true;
  const float* p;
  int N;
  int col = 0;
  __device__ __forceinline__ void set_column(int n) { col = n; }
  __device__ __forceinline__ float operator()(int k) const {
    return col < N ? __ldg(p + (int64_t)k * N + col) : 0.f;
  }
};

template <bool TA>
__device__ __forceinline__ float a_at(const float* a, int r, int k, int M, int K) {
  return TA ? __ldg(a + (int64_t)k * M + r) : __ldg(a + (int64_t)r * K + k);
}

// B [K × N]: thread (slice, lane) sums column blockIdx.x·32 + lane over k ≡ slice (mod 8).
template <int MR, bool TA>
__global__ void __launch_bounds__(kGemvThreads)
    mm_gemv_kn(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ y, int M,
               int N, int K, const BatchMap bm, const kiln::Epilogue ep) {
  __shared__ float part[kSlices][MR][32];
  const int lane = threadIdx.x % 32, slice = threadIdx.x / 32;
  const int col = blockIdx.x * 32 + lane;
  const int64_t mat = blockIdx.y;
  int64_t ao, bo;
  bm.offsets(mat, ao, bo);
  a += ao, b += bo;
  float acc[MR];
#pragma unroll
  for (int r = 0; r < MR; ++r) acc[r] = 0.f;
  if (col < N) {
#pragma unroll 4
    for (int k = slice; k < K; k += kSlices) {
      const float bv = __ldg(b + (int64_t)k * N + col);
#pragma unroll
      for (int r = 0; r < MR; ++r)
        if (r < M) acc[r] = fmaf(a_at<TA>(a, r, k, M, K), bv, acc[r]);
    }
  }
#pragma unroll
  for (int r = 0; r < MR; ++r) part[slice][r][lane] = acc[r];
  __syncthreads();
  // Thread t finishes row t / 32 of the block's columns, adding the slices in order.
  const int r = threadIdx.x / 32;
  if (r < MR && r < M && col < N) {
    float v = 0.f;
#pragma unroll
    for (int s = 0; s < kSlices; ++s) v += part[s][r][lane];
    const int64_t idx = mat * M * N + (int64_t)r * N + col;
    y[idx] = ep.apply(v, col, idx);
  }
}

// B [N × K] (transposed): warp w of the block owns column blockIdx.x·8 + w; lanes split K.
template <int MR, bool TA>
__global__ void __launch_bounds__(kGemvThreads)
    mm_gemv_nk(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ y, int M,
               int N, int K, const BatchMap bm, const kiln::Epilogue ep) {
  const int lane = threadIdx.x % 32;
  const int col = blockIdx.x * kSlices + threadIdx.x / 32;
  if (col >= N) return;
  const int64_t mat = blockIdx.y;
  int64_t ao, bo;
  bm.offsets(mat, ao, bo);
  a += ao;
  const float* bc = b + bo + (int64_t)col * K;
  float acc[MR];
#pragma unroll
  for (int r = 0; r < MR; ++r) acc[r] = 0.f;
#pragma unroll 4
  for (int k = lane; k < K; k += 32) {
    const float bv = __ldg(bc + k);
#pragma unroll
    for (int r = 0; r < MR; ++r)
      if (r < M) acc[r] = fmaf(a_at<TA>(a, r, k, M, K), bv, acc[r]);
  }
#pragma unroll
  for (int r = 0; r < MR; ++r) {
#pragma unroll
    for (int off = 16; off > 0; off /= 2) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
  }
  if (lane < MR && lane < M) {
    float v = acc[0];
#pragma unroll
    for (int r = 1; r < MR; ++r)
      if (lane == r) v = acc[r];
    const int64_t idx = mat * M * N + (int64_t)lane * N + col;
    y[idx] = ep.apply(v, col, idx);
  }
}

// One block per (column tile, row tile, K split, matrix), flattened into blockIdx.x.
template <class T, bool TA, bool TB>
__global__ void __launch_bounds__(T::THREADS)
    mm_tiled(const float* a, const float* b, float* y, int M, int N, int K, const BatchMap bm,
             const kiln::Epilogue ep, float* partial, int splits, int k_chunk, int tiles_n,
             int tiles_m, int64_t mats) {
  int64_t t = blockIdx.x;
  const int tn = (int)(t % tiles_n);
  t /= tiles_n;
  const int tm = (int)(t % tiles_m);
  t /= tiles_m;
  const int split = (int)(t % splits);
  const int64_t mat = t / splits;
  int64_t ao, bo;
  bm.offsets(mat, ao, bo);
  const int m0 = tm * T::BM, n0 = tn * T::BN;
  const int k_begin = split * k_chunk, k_end = min(K, k_begin + k_chunk);
  float acc[T::TM][T::TN];
  using LoadA = typename std::conditional<TA, KRowsM, kiln::RowsK>::type;
  using LoadB = typename std::conditional<TB, kiln::ColsK, KRowsN>::type;
  LoadA load_a;
  LoadB load_b;
  if constexpr (TA) load_a = KRowsM{a + ao, M};
  else load_a = kiln::RowsK{a + ao, M, K};
  if constexpr (TB) load_b = kiln::ColsK{b + bo, N, K};
  else load_b = KRowsN{b + bo, N};
  kiln::gemm_mainloop<T>(k_begin, k_end, m0, n0, load_a, load_b, acc);
  const int tx = threadIdx.x % T::RX, ty = threadIdx.x / T::RX;
  const int64_t total = mats * M * N;
#pragma unroll
  for (int i = 0; i < T::TM; ++i) {
    const int r = m0 + ty * T::TM + i;
    if (r >= M) continue;
#pragma unroll
    for (int j = 0; j < T::TN; ++j) {
      const int c = n0 + tx * T::TN + j;
      if (c >= N) continue;
      const int64_t idx = mat * M * N + (int64_t)r * N + c;
      if (splits > 1) partial[split * total + idx] = acc[i][j];
      else y[idx] = ep.apply(acc[i][j], c, idx);
    }
  }
}

// Adds the split-K partial sums in split order, then applies the epilogue.
__global__ void mm_reduce(const float* __restrict__ partial, float* y, int64_t total, int N,
                          int splits, const kiln::Epilogue ep) {
  for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < total;
       o += (int64_t)gridDim.x * blockDim.x) {
    float v = 0.f;
    for (int sp = 0; sp < splits; ++sp) v += partial[sp * total + o];
    y[o] = ep.apply(v, (int)(o % N), o);
  }
}

struct Problem {
  const kiln_matrix_multiply_params* p;
  BatchMap bm;
  int64_t mats;
  kiln::Epilogue ep;
  cudaStream_t s;
};

template <int MR, bool TA>
void gemv(const Problem& q) {
  const auto* p = q.p;
  if (p->transpose_b) {
    dim3 grid((unsigned)((p->n + kSlices - 1) / kSlices), (unsigned)q.mats);
    mm_gemv_nk<MR, TA><<<grid, kGemvThreads, 0, q.s>>>(p->a, p->b, p->y, p->m, p->n, p->k, q.bm,
                                                        q.ep);
  } else {
    dim3 grid((unsigned)((p->n + 31) / 32), (unsigned)q.mats);
    mm_gemv_kn<MR, TA><<<grid, kGemvThreads, 0, q.s>>>(p->a, p->b, p->y, p->m, p->n, p->k, q.bm,
                                                        q.ep);
  }
}

template <int MR>
void gemv_rows(const Problem& q) {
  if (q.p->transpose_a) gemv<MR, true>(q);
  else gemv<MR, false>(q);
}

template <class T, bool TA, bool TB>
void tiled(const Problem& q, const kiln::GemmPlan& plan, int64_t blocks) {
  const auto* p = q.p;
  mm_tiled<T, TA, TB><<<(unsigned)blocks, T::THREADS, 0, q.s>>>(
      p->a, p->b, p->y, p->m, p->n, p->k, q.bm, q.ep, (float*)p->workspace, plan.splits,
      plan.k_chunk, (int)plan.blocks_n, (int)plan.blocks_m, q.mats);
}

template <class T>
void tiled_any(const Problem& q, const kiln::GemmPlan& plan, int64_t blocks) {
  const bool ta = q.p->transpose_a != 0, tb = q.p->transpose_b != 0;
  if (ta && tb) tiled<T, true, true>(q, plan, blocks);
  else if (ta) tiled<T, true, false>(q, plan, blocks);
  else if (tb) tiled<T, false, true>(q, plan, blocks);
  else tiled<T, false, false>(q, plan, blocks);
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_matrix_multiply(const kiln_matrix_multiply_params* p,
                                                            kiln_stream stream) {
  const char* where = "kiln_launch_matrix_multiply";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  if (p->m <= 0 || p->n <= 0 || p->k <= 0 || !p->a || !p->b || !p->y || p->batch_rank < 0 ||
      p->batch_rank > KILN_MAX_RANK || !kiln::valid_activation(p->act) ||
      (p->residual_mode != KILN_RESIDUAL_NONE && !p->residual)) {
    return kiln::fail(KILN_INVALID_ARGUMENT,
                      "%s: bad parameters (m %d, n %d, k %d, batch rank %d, act %d)", where, p->m,
                      p->n, p->k, p->batch_rank, p->act);
  }
  Problem q{p, {}, 1, {}, stream->stream};
  q.bm.rank = p->batch_rank;
  for (int d = 0; d < p->batch_rank; ++d) {
    if (p->batch_dims[d] <= 0) {
      return kiln::fail(KILN_INVALID_ARGUMENT, "%s: batch dim %d is %lld", where, d,
                        (long long)p->batch_dims[d]);
    }
    q.bm.dims[d] = p->batch_dims[d];
    q.bm.a[d] = p->a_strides[d];
    q.bm.b[d] = p->b_strides[d];
    q.mats *= p->batch_dims[d];
  }
  q.ep = kiln::Epilogue{p->bias, p->residual_mode != KILN_RESIDUAL_NONE ? p->residual : nullptr,
                        p->act, p->alpha, p->beta, p->residual_mode};
  if (p->m <= kGemvMaxRows && q.mats <= 65535) {
    if (p->m == 1) gemv_rows<1>(q);
    else if (p->m == 2) gemv_rows<2>(q);
    else if (p->m <= 4) gemv_rows<4>(q);
    else gemv_rows<8>(q);
    return kiln::check_launch(where);
  }
  const int sms = kiln::multiprocessors(stream->device);
  const kiln::GemmPlan plan = kiln::plan_gemm(p->m, p->n, p->k, q.mats, sms,
                                              p->workspace ? p->workspace_bytes : 0);
  const int64_t blocks = plan.blocks_m * plan.blocks_n * plan.splits * q.mats;
  if (blocks > 0x7fffffffLL) {
    return kiln::fail(KILN_UNSUPPORTED, "%s: %lld thread blocks exceed the grid limit", where,
                      (long long)blocks);
  }
  switch (plan.tile) {
    case 0:
      tiled_any<kiln::Tile64x64>(q, plan, blocks);
      break;
    case 1:
      tiled_any<kiln::Tile32x128>(q, plan, blocks);
      break;
    case 2:
      tiled_any<kiln::Tile32x64>(q, plan, blocks);
      break;
    default:
      tiled_any<kiln::Tile32x32>(q, plan, blocks);
      break;
  }
  KILN_TRY(kiln::check_launch(where));
  if (plan.splits > 1) {
    const int64_t total = q.mats * p->m * p->n;
    mm_reduce<<<kiln::blocks_for(total, 256, (int64_t)sms * 8), 256, 0, q.s>>>(
        (const float*)p->workspace, p->y, total, p->n, plan.splits, q.ep);
    KILN_TRY(kiln::check_launch(where));
  }
  return KILN_OK;
}
