// FusedMlp: a chain of fully connected stages y_s = act_s(y_{s-1} · W_sᵀ + b_s) as one layer,
// intermediates in the workspace or on chip. Three paths (KILN_FUSED_MLP_PATH=chain|cluster|gemm
// forces one, for tests and diagnostics; KILN_FUSED_MLP_TRACE=1 prints the choice):
//
// chain (default for m ≤ 2 rows on sm_90): one GEMV kernel per stage, each launched with
//   programmatic dependent launch. A stage starts while the previous one runs, loads its weight
//   rows (which do not depend on the previous stage) into registers, then waits for the
//   previous grid's results: the launch gaps and weight fetches overlap, and every stage still
//   spreads its weights over n/8 SMs. H100, sampleMLP b1: 7.4 µs device vs 8.6 µs for three
//   FullyConnected layers.
// cluster (m ≤ 8, sm_90): ONE kernel for the whole chain, run by one thread-block cluster of up
//   to 16 CTAs. Every global read (input, all weight rows a CTA needs, biases) is requested up
//   front with cp.async; each CTA keeps the whole activation matrix in shared memory, a warp
//   per output feature, results delivered to every CTA through distributed shared memory, one
//   cluster barrier per stage. Measured slower than chain on H100 (11.3 µs at b1): one cluster
//   streams all weights through at most 16 SMs, and its fixed cost alone is ~9.9 µs.
// gemm (larger batches): one kiln_launch_fully_connected per stage (tiled GEMM, split-K).
#include <cooperative_groups.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.cuh"
#include "_epilogue.cuh"

namespace cg = cooperative_groups;

namespace {

// 16 warps: with a 16-CTA cluster, one feature per warp for 256-wide stages (all of a weight
// row's loads in flight at once).
constexpr int kWarps = 16;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxClusterRows = 8;
// Rows up to which the chain path is the default (it measured faster than per-stage GEMMs at
// 1 and 2 rows on H100, not at 4 and 8).
constexpr int kChainMaxRows = 2;
// Shared memory the cluster path may take per CTA: activations plus prefetched weights.
constexpr int64_t kMaxSharedBytes = 200 * 1024;

struct Stages {
  const float* w[KILN_MLP_MAX_STAGES];
  const float* bias[KILN_MLP_MAX_STAGES];
  int k[KILN_MLP_MAX_STAGES];
  int n[KILN_MLP_MAX_STAGES];
  int act[KILN_MLP_MAX_STAGES];
  float alpha[KILN_MLP_MAX_STAGES];
  float beta[KILN_MLP_MAX_STAGES];
  // Where stage s's weight rows of this CTA start in shared memory (floats), s < prefetched.
  int woff[KILN_MLP_MAX_STAGES];
  // Where stage s's biases of this CTA's rows start (floats), s < prefetched and bias[s] set.
  int boff[KILN_MLP_MAX_STAGES];
  int count;
  int m;
  int pitch;       // floats per row of a shared activation buffer (a multiple of 4)
  int prefetched;  // leading stages whose weights are copied to shared memory up front
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void cp_async16(float* smem_dst, const float* gmem_src) {
  const unsigned dst = (unsigned)__cvta_generic_to_shared(smem_dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src) : "memory");
}

__device__ __forceinline__ void cp_async4(float* smem_dst, const float* gmem_src) {
  const unsigned dst = (unsigned)__cvta_generic_to_shared(smem_dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(gmem_src) : "memory");
}

// Waits until at most `pending` committed copy groups are still in flight.
__device__ __forceinline__ void cp_async_wait(int pending) {
  switch (pending) {
    case 0: asm volatile("cp.async.wait_group 0;\n" ::: "memory"); break;
    case 1: asm volatile("cp.async.wait_group 1;\n" ::: "memory"); break;
    case 2: asm volatile("cp.async.wait_group 2;\n" ::: "memory"); break;
    case 3: asm volatile("cp.async.wait_group 3;\n" ::: "memory"); break;
    case 4: asm volatile("cp.async.wait_group 4;\n" ::: "memory"); break;
    case 5: asm volatile("cp.async.wait_group 5;\n" ::: "memory"); break;
    case 6: asm volatile("cp.async.wait_group 6;\n" ::: "memory"); break;
    default: asm volatile("cp.async.wait_group 7;\n" ::: "memory"); break;
  }
}
#endif

// acc[r] += dot(W row, activation row r) over this lane's share of K: float4 steps when VEC4.
template <int MR, bool VEC4, bool GLOBAL>
__device__ __forceinline__ void dot_rows(const float* wr, const float* in, int pitch, int K, int m,
                                         int lane, float (&acc)[MR]) {
  if (VEC4) {
    // Two float4 steps per iteration into two accumulators: half the dependent FMA chain.
    const float4* w4 = reinterpret_cast<const float4*>(wr);
    const int k4 = K / 4;
    float acc2[MR];
#pragma unroll
    for (int r = 0; r < MR; ++r) acc2[r] = 0.f;
#pragma unroll 4
    for (int i = lane; i < k4; i += 64) {
      const bool two = i + 32 < k4;
      const float4 wa = GLOBAL ? __ldg(w4 + i) : w4[i];
      const float4 wb = two ? (GLOBAL ? __ldg(w4 + i + 32) : w4[i + 32]) : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
      for (int r = 0; r < MR; ++r) {
        if (r < m) {
          const float4* row = reinterpret_cast<const float4*>(in + r * pitch);
          const float4 xa = row[i];
          const float4 xb = two ? row[i + 32] : make_float4(0.f, 0.f, 0.f, 0.f);
          acc[r] = fmaf(wa.x, xa.x, acc[r]);
          acc2[r] = fmaf(wb.x, xb.x, acc2[r]);
          acc[r] = fmaf(wa.y, xa.y, acc[r]);
          acc2[r] = fmaf(wb.y, xb.y, acc2[r]);
          acc[r] = fmaf(wa.z, xa.z, acc[r]);
          acc2[r] = fmaf(wb.z, xb.z, acc2[r]);
          acc[r] = fmaf(wa.w, xa.w, acc[r]);
          acc2[r] = fmaf(wb.w, xb.w, acc2[r]);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < MR; ++r) acc[r] += acc2[r];
  } else {
#pragma unroll 4
    for (int i = lane; i < K; i += 32) {
      const float wv = GLOBAL ? __ldg(wr + i) : wr[i];
#pragma unroll
      for (int r = 0; r < MR; ++r) {
        if (r < m) acc[r] = fmaf(wv, in[r * pitch + i], acc[r]);
      }
    }
  }
}

// Feature f of stage s belongs to warp (f % warps_total) of the cluster: CTA rank r owns
// f = r·kWarps + w + j·warps_total, kept in its shared memory as row j·kWarps + w.
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
  const int warps_total = (int)csize * kWarps;
  const int first = (int)rank * kWarps + warp;
  float* const buf0 = smem;
  float* const buf1 = smem + m * pitch;

  // Nothing here depends on the activations, so every global read is requested at once, in
  // copy groups: group 0 the input (each CTA keeps all of it) and stage 0's rows, group s stage
  // s's weight rows and biases. Stages then wait only for their own group: one round trip to
  // memory in all, later stages' weights arriving while earlier stages compute.
  const int k0 = st.k[0];
  for (int i = threadIdx.x; i < m * k0; i += kThreads) {
    cp_async4(buf0 + (i / k0) * pitch + i % k0, x + i);
  }
  for (int s = 0; s < st.prefetched; ++s) {
    const int K = st.k[s], k4 = K / 4;
    const float* W = st.w[s];
    const float* bias = st.bias[s];
    for (int f = first, j = 0; f < st.n[s]; f += warps_total, ++j) {
      const int row = j * kWarps + warp;
      float* dst = smem + st.woff[s] + row * K;
      const float* src = W + (int64_t)f * K;
      for (int i = lane; i < k4; i += 32) cp_async16(dst + 4 * i, src + 4 * i);
      if (bias && lane == 0) cp_async4(smem + st.boff[s] + row, bias + f);
    }
    if (s + 1 < st.prefetched) asm volatile("cp.async.commit_group;\n" ::: "memory");
  }
  asm volatile("cp.async.commit_group;\n" ::: "memory");
  const int groups = st.prefetched > 1 ? st.prefetched : 1;
  // All CTAs have started: their shared memory may be written from now on.
  cluster.sync();

  for (int s = 0; s < st.count; ++s) {
    const float* in = (s & 1) ? buf1 : buf0;
    float* out = (s & 1) ? buf0 : buf1;
    const int K = st.k[s], N = st.n[s];
    const bool last = s + 1 == st.count;
    const bool local = s < st.prefetched;
    if (s == 0) {
      // The input (copied by all threads) and stage 0's rows have landed.
      cp_async_wait(groups - 1);
      __syncthreads();
    } else if (local) {
      // This warp's rows of stage s have landed (a warp reads only rows its lanes copied).
      cp_async_wait(groups - 1 - s);
      __syncwarp();
    }
    for (int f = first, j = 0; f < N; f += warps_total, ++j) {
      const float b = !st.bias[s] ? 0.f
                      : local     ? smem[st.boff[s] + j * kWarps + warp]
                                  : __ldg(st.bias[s] + f);
      float acc[MR];
#pragma unroll
      for (int r = 0; r < MR; ++r) acc[r] = 0.f;
      if (local) {
        dot_rows<MR, VEC4, false>(smem + st.woff[s] + (j * kWarps + warp) * K, in, pitch, K, m,
                                  lane, acc);
      } else {
        dot_rows<MR, VEC4, true>(st.w[s] + (int64_t)f * K, in, pitch, K, m, lane, acc);
      }
      // Butterfly: every lane ends with the full sums (fixed order: deterministic).
#pragma unroll
      for (int r = 0; r < MR; ++r) {
#pragma unroll
        for (int off = 16; off > 0; off /= 2) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
      }
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

// KILN_FUSED_MLP_TRACE=1 prints each launch's path to stderr (why a small batch did not get
// the one-kernel path, for instance).
bool trace() {
  static int on = -1;
  if (on < 0) {
    const char* e = getenv("KILN_FUSED_MLP_TRACE");
    on = e && *e && *e != '0';
  }
  return on != 0;
}

// One stage of the small-batch chain as its own kernel, launched with programmatic dependent
// launch (sm_90): it starts while the previous stage still runs, loads its weight row into
// registers (weights do not depend on the previous stage), and only then waits for the
// previous grid's results (griddepcontrol.wait: that grid has completed and its writes are
// visible). It lets its own successor start at once. A warp per output feature, as the FC GEMV.
constexpr int kStageWarps = 8;
constexpr int kStageMaxSteps = 8;  // float4 steps per lane held in registers: K ≤ 1024

template <int MR>
__global__ void __launch_bounds__(kStageWarps * 32)
    mlp_stage(const float* __restrict__ x, const float* __restrict__ w,
              const float* __restrict__ bias, float* __restrict__ y, int m, int n, int K, int act,
              float alpha, float beta) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
  const int feature = blockIdx.x * kStageWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const bool active = feature < n;
  const int k4 = K / 4;
  float4 wv[kStageMaxSteps];
  float b = 0.f;
  if (active) {
    const float4* w4 = reinterpret_cast<const float4*>(w + (int64_t)feature * K);
#pragma unroll
    for (int t = 0; t < kStageMaxSteps; ++t) {
      const int i = lane + 32 * t;
      wv[t] = i < k4 ? __ldg(w4 + i) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    if (bias) b = __ldg(bias + feature);
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  if (!active) return;
  float acc[MR];
#pragma unroll
  for (int r = 0; r < MR; ++r) acc[r] = 0.f;
#pragma unroll
  for (int t = 0; t < kStageMaxSteps; ++t) {
    const int i = lane + 32 * t;
    if (i < k4) {
#pragma unroll
      for (int r = 0; r < MR; ++r) {
        if (r < m) {
          // Plain loads: x was written by the previous grid (not read-only for this kernel).
          const float4 xv = reinterpret_cast<const float4*>(x + (int64_t)r * K)[i];
          acc[r] = fmaf(wv[t].x, xv.x, acc[r]);
          acc[r] = fmaf(wv[t].y, xv.y, acc[r]);
          acc[r] = fmaf(wv[t].z, xv.z, acc[r]);
          acc[r] = fmaf(wv[t].w, xv.w, acc[r]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < MR; ++r) {
#pragma unroll
    for (int off = 16; off > 0; off /= 2) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
  }
  if (lane < MR && lane < m) {
    float v = acc[0];
#pragma unroll
    for (int r = 1; r < MR; ++r)
      if (lane == r) v = acc[r];
    y[(int64_t)lane * n + feature] = kiln::activate(v + b, act, alpha, beta);
  }
}

template <int MR>
kiln_status launch_stage(const float* x, const float* w, const float* bias, float* y, int m,
                         int n, int K, int act, float alpha, float beta, cudaStream_t s,
                         const char* where) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)((n + kStageWarps - 1) / kStageWarps));
  cfg.blockDim = dim3(kStageWarps * 32);
  cfg.stream = s;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  KILN_TRY_CUDA(cudaLaunchKernelEx(&cfg, mlp_stage<MR>, x, w, bias, y, m, n, K, act, alpha, beta),
                where);
  return kiln::check_launch(where);
}

bool cluster_capable(int device) {
  int v = 0;
  return cudaDeviceGetAttribute(&v, cudaDevAttrClusterLaunch, device) == cudaSuccess && v != 0;
}

// Shared-memory layout for a cluster of `c` CTAs: the two activation buffers, then (VEC4 only)
// the weight rows of as many leading stages as fit under kMaxSharedBytes. Returns the bytes.
int64_t plan_shared(Stages& st, unsigned c, bool vec4) {
  int64_t off = 2ll * st.m * st.pitch;  // floats
  st.prefetched = 0;
  if (vec4) {
    const int warps_total = (int)c * kWarps;
    for (int s = 0; s < st.count; ++s) {
      const int64_t rows = (int64_t)((st.n[s] + warps_total - 1) / warps_total) * kWarps;
      const int64_t need = rows * st.k[s] + (st.bias[s] ? rows : 0);
      if ((off + need) * (int64_t)sizeof(float) > kMaxSharedBytes) break;
      st.woff[s] = (int)off;
      st.boff[s] = (int)(off + rows * st.k[s]);
      off += need;
      st.prefetched = s + 1;
    }
  }
  return off * (int64_t)sizeof(float);
}

template <int MR, bool VEC4>
kiln_status launch_cluster(const kiln_fused_mlp_params* p, const Stages& stages, cudaStream_t s,
                           bool* launched, const char* where) {
  auto kernel = mlp_cluster<MR, VEC4>;
  // A GPU that refuses these settings runs the per-stage path instead.
  const cudaError_t e1 =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)kMaxSharedBytes);
  const cudaError_t e2 =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
  if (e1 != cudaSuccess || e2 != cudaSuccess) {
    if (trace()) {
      fprintf(stderr, "[kiln] fused_mlp: function attributes refused (%s, %s)\n",
              cudaGetErrorName(e1), cudaGetErrorName(e2));
    }
    kiln::clear_stale_error();
    return KILN_OK;
  }
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  cudaLaunchConfig_t cfg = {};
  cfg.blockDim = dim3(kThreads);
  cfg.stream = s;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  // The widest cluster the GPU can place (16 on H100 with the non-portable size, else 8...):
  // time goes with the weight rows one SM streams, so wider is faster.
  for (unsigned c = 16; c >= 1; c /= 2) {
    Stages st = stages;
    const int64_t bytes = plan_shared(st, c, VEC4);
    cfg.gridDim = dim3(c);
    cfg.dynamicSmemBytes = (size_t)bytes;
    attr[0].val.clusterDim.x = c;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    int clusters = 0;
    const cudaError_t e = cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg);
    if (trace()) {
      fprintf(stderr,
              "[kiln] fused_mlp: m %d, cluster %u, %lld shared bytes, %d of %d stage(s) "
              "prefetched: %s, %d active cluster(s)\n",
              st.m, c, (long long)bytes, st.prefetched, st.count, cudaGetErrorName(e), clusters);
    }
    if (e != cudaSuccess) {
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

kiln_status launch_small(const kiln_fused_mlp_params* p, const Stages& st, cudaStream_t s,
                         bool* launched, const char* where) {
  bool vec4 = ((uintptr_t)p->x & 15) == 0;
  for (int i = 0; i < st.count; ++i) vec4 = vec4 && st.k[i] % 4 == 0 && ((uintptr_t)st.w[i] & 15) == 0;
  // Rows are read (and weights copied) 16 bytes at a time: K % 4 and aligned weights.
  const int m = st.m;
  if (vec4) {
    if (m == 1) return launch_cluster<1, true>(p, st, s, launched, where);
    if (m == 2) return launch_cluster<2, true>(p, st, s, launched, where);
    if (m <= 4) return launch_cluster<4, true>(p, st, s, launched, where);
    return launch_cluster<8, true>(p, st, s, launched, where);
  }
  if (m == 1) return launch_cluster<1, false>(p, st, s, launched, where);
  if (m == 2) return launch_cluster<2, false>(p, st, s, launched, where);
  if (m <= 4) return launch_cluster<4, false>(p, st, s, launched, where);
  return launch_cluster<8, false>(p, st, s, launched, where);
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

  // The path (see the top of this file): forced by KILN_FUSED_MLP_PATH, else chain for few rows.
  const char* forced = getenv("KILN_FUSED_MLP_PATH");
  const bool want_cluster = forced && !strcmp(forced, "cluster");
  const bool want_gemm = forced && !strcmp(forced, "gemm");
  const bool want_chain = forced && !strcmp(forced, "chain");
  const int pitch = (widest_in + 3) / 4 * 4;
  const int64_t smem_bytes = 2ll * p->m * pitch * (int64_t)sizeof(float);
  bool chain = !want_cluster && !want_gemm &&
               p->m <= (want_chain ? kMaxClusterRows : kChainMaxRows) &&
               cluster_capable(stream->device) && ((uintptr_t)p->x & 15) == 0;
  for (int i = 0; chain && i < p->stages; ++i) {
    chain = st.k[i] % 4 == 0 && st.k[i] / 4 <= 32 * kStageMaxSteps && ((uintptr_t)p->w[i] & 15) == 0;
  }
  if (chain) {
    const int64_t buffer = align256((int64_t)p->m * widest_hidden * (int64_t)sizeof(float));
    if (p->stages == 1 || (p->workspace && p->workspace_bytes >= 2 * buffer)) {
      if (trace()) fprintf(stderr, "[kiln] fused_mlp: m %d: chained stage kernels\n", p->m);
      char* ws = (char*)p->workspace;
      float* ping[2] = {(float*)ws, (float*)(ws + buffer)};
      for (int i = 0; i < p->stages; ++i) {
        const float* in = i == 0 ? p->x : ping[(i - 1) & 1];
        float* out = i + 1 == p->stages ? p->y : ping[i & 1];
        const int m = p->m;
        auto go = [&](auto launcher) {
          return launcher(in, p->w[i], p->bias[i], out, m, p->n[i], st.k[i], p->act[i],
                          p->alpha[i], p->beta[i], s, where);
        };
        if (m == 1) KILN_TRY(go(launch_stage<1>));
        else if (m == 2) KILN_TRY(go(launch_stage<2>));
        else if (m <= 4) KILN_TRY(go(launch_stage<4>));
        else KILN_TRY(go(launch_stage<8>));
      }
      return KILN_OK;
    }
  }
  if (want_cluster && p->m <= kMaxClusterRows && smem_bytes <= kMaxSharedBytes &&
      cluster_capable(stream->device)) {
    st.pitch = pitch;
    bool launched = false;
    KILN_TRY(launch_small(p, st, s, &launched, where));
    if (launched) return KILN_OK;
  }
  if (trace()) {
    fprintf(stderr, "[kiln] fused_mlp: m %d, %d stage(s): one GEMM per stage (shared %lld bytes)\n",
            p->m, p->stages, (long long)smem_bytes);
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
