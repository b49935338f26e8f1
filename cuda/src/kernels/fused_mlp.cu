// FusedMlp: a chain of fully connected stages y_s = act_s(y_{s-1} · W_sᵀ + b_s) as one layer.
//
// Small batches (m ≤ 8 rows) on sm_90: ONE kernel for the whole chain, run by one thread-block
// cluster. Each CTA keeps the full activation matrix of the current stage in its own shared
// memory; the stage's output features are dealt out to the cluster's warps (a warp per feature:
// it streams that weight row once with 16-byte loads, as the FC GEMV does, against the rows
// held in shared memory) and every warp writes its results into the next-stage buffer of every
// CTA of the cluster through distributed shared memory. One cluster barrier per stage; the
// last stage writes global memory. Nothing between stages touches global memory and there is
// one launch instead of one per stage, which is what a batch-1 MLP is made of.
//
// Larger batches (or no cluster support, or activations too wide for shared memory): one
// FullyConnected launch per stage (kiln_launch_fully_connected: tiled GEMM with split-K),
// intermediate activations ping-ponging in the workspace.
#include <cooperative_groups.h>

#include "../common.cuh"
#include "_epilogue.cuh"

namespace cg = cooperative_groups;

namespace {

// 16 warps: with a 16-CTA cluster, one feature per warp for 256-wide stages (all of a weight
// row's loads in flight at once).
constexpr int kWarps = 16;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxClusterRows = 8;
// Shared memory the cluster path may take per CTA (two activation buffers).
constexpr int64_t kMaxSharedBytes = 160 * 1024;

struct Stages {
  const float* w[KILN_MLP_MAX_STAGES];
  const float* bias[KILN_MLP_MAX_STAGES];
  int k[KILN_MLP_MAX_STAGES];
  int n[KILN_MLP_MAX_STAGES];
  int act[KILN_MLP_MAX_STAGES];
  float alpha[KILN_MLP_MAX_STAGES];
  float beta[KILN_MLP_MAX_STAGES];
  int count;
  int m;
  int pitch;  // floats per row of a shared activation buffer (a multiple of 4)
};

template <int MR, bool VEC4>
__global__ void __launch_bounds__(kThreads)
    mlp_cluster(const float* __restrict__ x, float* __restrict__ y, const __grid_constant__ Stages st) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(16) float smem[];
  cg::cluster_group cluster = cg::this_cluster();
  const unsigned rank = cluster.block_rank();
  const unsigned csize = cluster.num_blocks();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int m = st.m, pitch = st.pitch;
  float* const buf0 = smem;
  float* const buf1 = smem + m * pitch;

  // Every CTA holds the whole input.
  const int k0 = st.k[0];
  for (int i = threadIdx.x; i < m * k0; i += kThreads) buf0[(i / k0) * pitch + i % k0] = x[i];
  // All CTAs have started (their shared memory may be written) and the input is in place.
  cluster.sync();

  const int warps_total = (int)csize * kWarps;
  for (int s = 0; s < st.count; ++s) {
    const float* in = (s & 1) ? buf1 : buf0;
    float* out = (s & 1) ? buf0 : buf1;
    const int K = st.k[s], N = st.n[s];
    const bool last = s + 1 == st.count;
    const float* __restrict__ W = st.w[s];
    for (int f = (int)rank * kWarps + warp; f < N; f += warps_total) {
      const float* wr = W + (int64_t)f * K;
      float acc[MR];
#pragma unroll
      for (int r = 0; r < MR; ++r) acc[r] = 0.f;
      if (VEC4) {
        const float4* w4 = reinterpret_cast<const float4*>(wr);
        const int k4 = K / 4;
#pragma unroll 8
        for (int i = lane; i < k4; i += 32) {
          const float4 wv = __ldg(w4 + i);
#pragma unroll
          for (int r = 0; r < MR; ++r) {
            if (r < m) {
              const float4 xv = reinterpret_cast<const float4*>(in + r * pitch)[i];
              acc[r] = fmaf(wv.x, xv.x, acc[r]);
              acc[r] = fmaf(wv.y, xv.y, acc[r]);
              acc[r] = fmaf(wv.z, xv.z, acc[r]);
              acc[r] = fmaf(wv.w, xv.w, acc[r]);
            }
          }
        }
      } else {
#pragma unroll 4
        for (int i = lane; i < K; i += 32) {
          const float wv = __ldg(wr + i);
#pragma unroll
          for (int r = 0; r < MR; ++r) {
            if (r < m) acc[r] = fmaf(wv, in[r * pitch + i], acc[r]);
          }
        }
      }
      // Butterfly: every lane ends with the full sums (fixed order: deterministic).
#pragma unroll
      for (int r = 0; r < MR; ++r) {
#pragma unroll
        for (int off = 16; off > 0; off /= 2) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
      }
      const float b = st.bias[s] ? __ldg(st.bias[s] + f) : 0.f;
#pragma unroll
      for (int r = 0; r < MR; ++r) {
        if (r >= m) break;
        const float v = kiln::activate(acc[r] + b, st.act[s], st.alpha[s], st.beta[s]);
        if (last) {
          if (lane == 0) y[(int64_t)r * N + f] = v;
        } else if (lane < (int)csize) {
          // Lane c delivers the value to CTA c of the cluster.
          float* dst = cluster.map_shared_rank(out, (unsigned)lane);
          dst[r * pitch + f] = v;
        }
      }
    }
    // The next stage reads what every CTA wrote (no remote writes after the last barrier, so
    // no CTA exits while another may still write its shared memory).
    if (!last) cluster.sync();
  }
#endif
}

bool cluster_capable(int device) {
  int v = 0;
  return cudaDeviceGetAttribute(&v, cudaDevAttrClusterLaunch, device) == cudaSuccess && v != 0;
}

template <int MR, bool VEC4>
kiln_status launch_cluster(const kiln_fused_mlp_params* p, const Stages& st, int64_t smem_bytes,
                           cudaStream_t s, bool* launched, const char* where) {
  auto kernel = mlp_cluster<MR, VEC4>;
  // A GPU that refuses these settings runs the per-stage path instead.
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           (int)smem_bytes) != cudaSuccess ||
      cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) !=
          cudaSuccess) {
    kiln::clear_stale_error();
    return KILN_OK;
  }
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  cudaLaunchConfig_t cfg = {};
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = (size_t)smem_bytes;
  cfg.stream = s;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  // The widest cluster the GPU can place (16 on H100 with the non-portable size, else 8...).
  for (unsigned c = 16; c >= 2; c /= 2) {
    cfg.gridDim = dim3(c);
    attr[0].val.clusterDim.x = c;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    int clusters = 0;
    if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg) != cudaSuccess) {
      kiln::clear_stale_error();
      continue;
    }
    if (clusters < 1) continue;
    KILN_TRY_CUDA(cudaLaunchKernelEx(&cfg, kernel, p->x, p->y, st), where);
    *launched = true;
    return kiln::check_launch(where);
  }
  return KILN_OK;
}

kiln_status launch_small(const kiln_fused_mlp_params* p, const Stages& st, int64_t smem_bytes,
                         cudaStream_t s, bool* launched, const char* where) {
  bool vec4 = ((uintptr_t)p->x & 15) == 0;
  for (int i = 0; i < st.count; ++i) vec4 = vec4 && st.k[i] % 4 == 0 && ((uintptr_t)st.w[i] & 15) == 0;
  // x is copied into shared memory element by element; only the weights need alignment, but
  // the shared rows are read as float4 too, hence K % 4 for every stage.
  const int m = st.m;
  if (vec4) {
    if (m == 1) return launch_cluster<1, true>(p, st, smem_bytes, s, launched, where);
    if (m == 2) return launch_cluster<2, true>(p, st, smem_bytes, s, launched, where);
    if (m <= 4) return launch_cluster<4, true>(p, st, smem_bytes, s, launched, where);
    return launch_cluster<8, true>(p, st, smem_bytes, s, launched, where);
  }
  if (m == 1) return launch_cluster<1, false>(p, st, smem_bytes, s, launched, where);
  if (m == 2) return launch_cluster<2, false>(p, st, smem_bytes, s, launched, where);
  if (m <= 4) return launch_cluster<4, false>(p, st, smem_bytes, s, launched, where);
  return launch_cluster<8, false>(p, st, smem_bytes, s, launched, where);
}

int64_t align256(int64_t b) { return (b + 255) / 256 * 256; }

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_fused_mlp(const kiln_fused_mlp_params* p,
                                                      kiln_stream stream) {
  const char* where = "kiln_launch_fused_mlp";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  if (p->m <= 0 || p->k <= 0 || p->stages < 1 || p->stages > KILN_MLP_MAX_STAGES || !p->x ||
      !p->y) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (m %d, k %d, stages %d)", where,
                      p->m, p->k, p->stages);
  }
  Stages st{};
  st.count = p->stages;
  st.m = p->m;
  int widest_in = 0, widest_hidden = 0;
  for (int i = 0; i < p->stages; ++i) {
    st.w[i] = p->w[i];
    st.bias[i] = p->bias[i];
    st.k[i] = i == 0 ? p->k : p->n[i - 1];
    st.n[i] = p->n[i];
    st.act[i] = p->act[i];
    st.alpha[i] = p->alpha[i];
    st.beta[i] = p->beta[i];
    if (!p->w[i] || p->n[i] <= 0 || !kiln::valid_activation(p->act[i])) {
      return kiln::fail(KILN_INVALID_ARGUMENT, "%s: stage %d: bad parameters (n %d, act %d)",
                        where, i, p->n[i], p->act[i]);
    }
    widest_in = st.k[i] > widest_in ? st.k[i] : widest_in;
    if (i + 1 < p->stages && p->n[i] > widest_hidden) widest_hidden = p->n[i];
  }
  cudaStream_t s = stream->stream;

  const int pitch = (widest_in + 3) / 4 * 4;
  const int64_t smem_bytes = 2ll * p->m * pitch * (int64_t)sizeof(float);
  if (p->m <= kMaxClusterRows && smem_bytes <= kMaxSharedBytes &&
      cluster_capable(stream->device)) {
    st.pitch = pitch;
    bool launched = false;
    KILN_TRY(launch_small(p, st, smem_bytes, s, &launched, where));
    if (launched) return KILN_OK;
  }

  // One GEMM per stage; intermediates ping-pong in the workspace, the rest is split-K scratch.
  const int64_t buffer = align256((int64_t)p->m * widest_hidden * (int64_t)sizeof(float));
  if (p->stages > 1 && (!p->workspace || p->workspace_bytes < 2 * buffer)) {
    return kiln::fail(KILN_INVALID_ARGUMENT,
                      "%s: the workspace holds %lld bytes; %d rows of up to %d features need %lld",
                      where, (long long)p->workspace_bytes, p->m, widest_hidden,
                      (long long)(2 * buffer));
  }
  char* ws = (char*)p->workspace;
  float* ping[2] = {(float*)ws, (float*)(ws + buffer)};
  for (int i = 0; i < p->stages; ++i) {
    kiln_fully_connected_params fc{};
    fc.x = i == 0 ? p->x : ping[(i - 1) & 1];
    fc.w = p->w[i];
    fc.bias = p->bias[i];
    fc.residual = nullptr;
    fc.y = i + 1 == p->stages ? p->y : ping[i & 1];
    fc.workspace = p->workspace_bytes > 2 * buffer ? ws + 2 * buffer : nullptr;
    fc.workspace_bytes = p->workspace_bytes > 2 * buffer ? p->workspace_bytes - 2 * buffer : 0;
    fc.m = p->m;
    fc.n = p->n[i];
    fc.k = st.k[i];
    fc.act = p->act[i];
    fc.alpha = p->alpha[i];
    fc.beta = p->beta[i];
    fc.residual_mode = KILN_RESIDUAL_NONE;
    KILN_TRY(kiln_launch_fully_connected(&fc, stream));
  }
  return KILN_OK;
}
