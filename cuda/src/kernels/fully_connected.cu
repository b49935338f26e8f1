// FullyConnected: y[m×n] = epilogue(x[m×k] · w[n×k]ᵀ + bias).
// Few rows (batch ≤ 8): a warp per output feature streams its weight row once with 16-byte
// loads and reduces with shuffles (a GEMV: bandwidth-bound, so every weight byte is read once).
// More rows: the shared-memory tiled GEMM of _gemm.cuh, split along K (with a deterministic
// reduction) when there are too few tiles to fill the GPU.
#include "../common.cuh"
#include "_epilogue.cuh"
#include "_fc_gemm.cuh"
#include "_gemm.cuh"

namespace {

constexpr int kGemvMaxRows = 8;
constexpr int kGemvWarps = 8;

template <int MR, bool VEC4>
__global__ void __launch_bounds__(kGemvWarps * 32)
    fc_gemv(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y, int m,
            int n, int K, const kiln::Epilogue ep) {
  const int feature = blockIdx.x * kGemvWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (feature >= n) return;
  const float* wr = w + (int64_t)feature * K;
  float acc[MR];
#pragma unroll
  for (int r = 0; r < MR; ++r) acc[r] = 0.f;
  if (VEC4) {
    const int k4 = K / 4;
    const float4* w4 = reinterpret_cast<const float4*>(wr);
#pragma unroll 2
    for (int i = lane; i < k4; i += 32) {
      const float4 wv = __ldg(w4 + i);
#pragma unroll
      for (int r = 0; r < MR; ++r) {
        if (r < m) {
          const float4 xv = __ldg(reinterpret_cast<const float4*>(x + (int64_t)r * K) + i);
          acc[r] = fmaf(wv.x, xv.x, acc[r]);
          acc[r] = fmaf(wv.y, xv.y, acc[r]);
          acc[r] = fmaf(wv.z, xv.z, acc[r]);
          acc[r] = fmaf(wv.w, xv.w, acc[r]);
        }
      }
    }
  } else {
    for (int k = lane; k < K; k += 32) {
      const float wv = __ldg(wr + k);
#pragma unroll
      for (int r = 0; r < MR; ++r) {
        if (r < m) acc[r] = fmaf(wv, __ldg(x + (int64_t)r * K + k), acc[r]);
      }
    }
  }
  // Butterfly reduction: a fixed order, so results are deterministic.
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
    const int64_t idx = (int64_t)lane * n + feature;
    y[idx] = ep.apply(v, feature, idx);
  }
}

template <int MR>
void gemv(const kiln_fully_connected_params* p, const kiln::Epilogue& ep, cudaStream_t s) {
  const bool vec4 = p->k % 4 == 0 && (((uintptr_t)p->x | (uintptr_t)p->w) & 15) == 0;
  const unsigned blocks = (unsigned)((p->n + kGemvWarps - 1) / kGemvWarps);
  if (vec4) {
    fc_gemv<MR, true><<<blocks, kGemvWarps * 32, 0, s>>>(p->x, p->w, p->y, p->m, p->n, p->k, ep);
  } else {
    fc_gemv<MR, false><<<blocks, kGemvWarps * 32, 0, s>>>(p->x, p->w, p->y, p->m, p->n, p->k, ep);
  }
}

template <class T>
void tiled(const kiln_fully_connected_params* p, const kiln::Epilogue& ep,
           const kiln::GemmPlan& plan, cudaStream_t s) {
  dim3 grid((unsigned)plan.blocks_n, (unsigned)plan.blocks_m, (unsigned)plan.splits);
  kiln::fc_tiled<T><<<grid, T::THREADS, 0, s>>>(p->x, p->w, p->y, p->m, p->n, p->k, ep,
                                          (float*)p->workspace, plan.splits, plan.k_chunk);
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_fully_connected(const kiln_fully_connected_params* p,
                                                            kiln_stream stream) {
  const char* where = "kiln_launch_fully_connected";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  KILN_TRY(kiln::validate_fully_connected(p, where));
  kiln::Epilogue ep{p->bias, p->residual_mode != KILN_RESIDUAL_NONE ? p->residual : nullptr,
                    p->act, p->alpha, p->beta, p->residual_mode};
  cudaStream_t s = stream->stream;
  if (p->m <= kGemvMaxRows) {
    if (p->m == 1) gemv<1>(p, ep, s);
    else if (p->m == 2) gemv<2>(p, ep, s);
    else if (p->m <= 4) gemv<4>(p, ep, s);
    else gemv<8>(p, ep, s);
    return kiln::check_launch(where);
  }
  const int sms = kiln::multiprocessors(stream->device);
  const kiln::GemmPlan plan =
      kiln::plan_gemm(p->m, p->n, p->k, 1, sms, p->workspace ? p->workspace_bytes : 0);
  switch (plan.tile) {
    case 0:
      tiled<kiln::Tile64x64>(p, ep, plan, s);
      break;
    case 1:
      tiled<kiln::Tile32x128>(p, ep, plan, s);
      break;
    case 2:
      tiled<kiln::Tile32x64>(p, ep, plan, s);
      break;
    default:
      tiled<kiln::Tile32x32>(p, ep, plan, s);
      break;
  }
  KILN_TRY(kiln::check_launch(where));
  if (plan.splits > 1) {
    kiln::fc_reduce<<<kiln::blocks_for((int64_t)p->m * p->n, 256, (int64_t)sms * 8), 256, 0, s>>>(
        (const float*)p->workspace, p->y, p->m, p->n, plan.splits, ep);
    KILN_TRY(kiln::check_launch(where));
  }
  return KILN_OK;
}
