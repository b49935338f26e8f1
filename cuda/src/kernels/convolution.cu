// Convolution as an implicit GEMM per group:
//   y[g·kg + m, pixel p] = sum_k W_g[m, k] · col[k, p],  k = (ci, r, s), p = (b, oy, ox)
// The batch folds into the GEMM's N dimension, so batch 1 and batch 256 share one kernel and
// small images still fill the GPU at larger batches. The im2col matrix is gathered into shared
// memory tile by tile and never stored. Epilogue: bias, residual (pre/post) and activation.
#include "../common.cuh"
#include "_epilogue.cuh"
#include "_fastdiv.cuh"
#include "_conv_shape.cuh"
#include "_gemm.cuh"

namespace {

using kiln::ConvGather;
using kiln::ConvShape;

// Writes one output (or, with split-K, one partial sum) of output channel m, pixel p.
template <class T>
__global__ void __launch_bounds__(T::THREADS)
    conv_kernel(const __grid_constant__ ConvShape s, const kiln::Epilogue ep, float* partial,
                int splits, int k_chunk) {
  const int g = blockIdx.z / splits, split = blockIdx.z % splits;
  const int m0 = blockIdx.y * T::BM, n0 = blockIdx.x * T::BN;
  const int k_begin = split * k_chunk, k_end = min(s.gemm_k, k_begin + k_chunk);
  kiln::RowsK load_a{s.w + (int64_t)g * s.kg * s.gemm_k, s.kg, s.gemm_k};
  ConvGather load_b{&s, g, nullptr, 0, 0, false};
  float acc[T::TM][T::TN];
  kiln::gemm_mainloop<T>(k_begin, k_end, m0, n0, load_a, load_b, acc);

  const int plane = s.out_h * s.out_w;
  const int tx = threadIdx.x % T::RX, ty = threadIdx.x / T::RX;
  // This thread's output pixels: contiguous, so the image/pixel split is made once.
  int p_first = n0 + tx * T::TN, pix_first = 0;
  const int b_first = s.by_plane.divmod(min(p_first, s.gemm_n - 1), pix_first);
#pragma unroll
  for (int i = 0; i < T::TM; ++i) {
    const int m = m0 + ty * T::TM + i;
    if (m >= s.kg) continue;
    const int oc = g * s.kg + m;
#pragma unroll
    for (int j = 0; j < T::TN; ++j) {
      const int p = n0 + tx * T::TN + j;
      if (p >= s.gemm_n) continue;
      if (splits > 1) {
        partial[((int64_t)(g * splits + split) * s.kg + m) * s.gemm_n + p] = acc[i][j];
      } else {
        // Step from the thread's first pixel; past the end of its image, divide again.
        int b = b_first, pix = pix_first + (p - p_first);
        if (pix >= plane) b = s.by_plane.divmod(p, pix);
        const int64_t idx = ((int64_t)b * s.k + oc) * plane + pix;  // dense, as the residual
        s.y[(int64_t)b * s.y_batch + (int64_t)oc * plane + pix] = ep.apply(acc[i][j], oc, idx);
      }
    }
  }
}

// Adds the split-K partial sums in split order, then applies the epilogue.
__global__ void conv_reduce(const __grid_constant__ ConvShape s, const kiln::Epilogue ep,
                            const float* __restrict__ partial, int groups, int splits) {
  const int64_t per_group = (int64_t)s.kg * s.gemm_n;
  const int64_t total = per_group * groups;
  const int plane = s.out_h * s.out_w;
  for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < total;
       o += (int64_t)gridDim.x * blockDim.x) {
    const int64_t g = o / per_group, r = o - g * per_group;
    int p, pix;
    const int m = s.by_n.divmod((int)r, p);
    float v = 0.f;
    for (int sp = 0; sp < splits; ++sp) v += partial[(g * splits + sp) * per_group + r];
    const int oc = (int)g * s.kg + m;
    const int b = s.by_plane.divmod(p, pix);
    const int64_t idx = ((int64_t)b * s.k + oc) * plane + pix;  // dense, as the residual
    s.y[(int64_t)b * s.y_batch + (int64_t)oc * plane + pix] = ep.apply(v, oc, idx);
  }
}

template <class T>
void launch_tile(const ConvShape& s, const kiln::Epilogue& ep, int groups,
                 const kiln::GemmPlan& plan, float* partial, cudaStream_t stream) {
  dim3 grid((unsigned)plan.blocks_n, (unsigned)plan.blocks_m, (unsigned)(groups * plan.splits));
  conv_kernel<T><<<grid, T::THREADS, 0, stream>>>(s, ep, partial, plan.splits, plan.k_chunk);
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_convolution(const kiln_convolution_params* p,
                                                        kiln_stream stream) {
  const char* where = "kiln_launch_convolution";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  KILN_TRY(kiln::validate_convolution(p, where));
  const ConvShape s = kiln::conv_shape_of(p);
  kiln::Epilogue ep{p->bias, p->residual_mode != KILN_RESIDUAL_NONE ? p->residual : nullptr,
                    p->act, p->alpha, p->beta, p->residual_mode};
  float* partial = (float*)p->workspace;
  const kiln::GemmPlan plan =
      kiln::plan_gemm(s.kg, s.gemm_n, s.gemm_k, p->groups, kiln::multiprocessors(stream->device),
                      partial ? p->workspace_bytes : 0);
  switch (plan.tile) {
    case 0:
      launch_tile<kiln::Tile64x64>(s, ep, p->groups, plan, partial, stream->stream);
      break;
    case 1:
      launch_tile<kiln::Tile32x128>(s, ep, p->groups, plan, partial, stream->stream);
      break;
    case 2:
      launch_tile<kiln::Tile32x64>(s, ep, p->groups, plan, partial, stream->stream);
      break;
    default:
      launch_tile<kiln::Tile32x32>(s, ep, p->groups, plan, partial, stream->stream);
      break;
  }
  KILN_TRY(kiln::check_launch(where));
  if (plan.splits > 1) {
    const int64_t total = (int64_t)s.kg * s.gemm_n * p->groups;
    conv_reduce<<<kiln::blocks_for(total, 256, (int64_t)kiln::multiprocessors(stream->device) * 8),
                  256, 0, stream->stream>>>(s, ep, partial, p->groups, plan.splits);
    KILN_TRY(kiln::check_launch(where));
  }
  return KILN_OK;
}
