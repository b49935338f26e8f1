// Alternative convolution implementations ("tactics"), timed against each other by the builder
// (builder/tune) on the real shapes; the plan records the winner per layer. All read the same
// kiln_convolution_params as kiln_launch_convolution and compute the same function:
//
//   IGEMM      implicit GEMM with a chosen tile (128x128, 128x64, 64x128 with 8x8/8x4/4x8
//              micro-tiles: more FMAs per shared-memory load than the default kernel's tiles)
//              and a chosen K split (partial sums in the workspace, reduced in a fixed order);
//   POINTWISE  1x1 convolution without padding as a plain GEMM per image: the B operand is the
//              input itself (no tap arithmetic), stride folded into the column address;
//   DIRECT     a block computes 32 output channels of 128 output pixels with the filters in
//              shared memory, for small C·kh·kw (the first layer of an image network), where
//              the implicit GEMM's K loop is too short to hide its gather.
#include "../common.cuh"
#include "_epilogue.cuh"
#include "_fastdiv.cuh"
#include "_conv_shape.cuh"
#include "_gemm.cuh"
#include "_tactics.cuh"

namespace {

using Shape = kiln::ConvShape;
using Gather = kiln::ConvGather;

// B(k, p) of a 1x1 convolution without padding: input channel k at the pixel under p.
struct PointwiseGather {
  static constexpr bool kNContiguous = true;
  const Shape* s;
  int group;
  const float* xp;
  int64_t in_plane;
  bool valid;

  __device__ __forceinline__ void set_column(int p) {
    valid = p < s->gemm_n;
    int pix = 0, ox = 0;
    const int b = valid ? s->by_plane.divmod(p, pix) : 0;
    const int oy = s->by_ow.divmod(pix, ox);
    in_plane = (int64_t)s->h * s->w_in;
    xp = s->x + (int64_t)b * s->x_batch + (int64_t)group * s->cg * in_plane +
         (int64_t)oy * s->stride_h * s->w_in + (int64_t)ox * s->stride_w;
  }

  __device__ __forceinline__ float operator()(int k) const {
    return valid && k < s->gemm_k ? __ldg(xp + k * in_plane) : 0.f;
  }
};

template <class T, class G>
__global__ void __launch_bounds__(T::THREADS)
    igemm(const __grid_constant__ Shape s, const kiln::Epilogue ep, float* partial, int splits,
          int k_chunk) {
  const int g = blockIdx.z / splits, split = blockIdx.z % splits;
  const int m0 = blockIdx.y * T::BM, n0 = blockIdx.x * T::BN;
  const int k_begin = split * k_chunk, k_end = min(s.gemm_k, k_begin + k_chunk);
  kiln::RowsK load_a{s.w + (int64_t)g * s.kg * s.gemm_k, s.kg, s.gemm_k};
  G load_b{};
  load_b.s = &s;
  load_b.group = g;
  float acc[T::TM][T::TN];
  kiln::gemm_mainloop<T>(k_begin, k_end, m0, n0, load_a, load_b, acc);

  const int plane = s.out_h * s.out_w;
  const int tx = threadIdx.x % T::RX, ty = threadIdx.x / T::RX;
  const int p_first = n0 + tx * T::TN;
  int pix_first = 0;
  const int b_first = s.by_plane.divmod(min(p_first, s.gemm_n - 1), pix_first);
#pragma unroll
  for (int i = 0; i < T::TM; ++i) {
    const int m = m0 + ty * T::TM + i;
    if (m >= s.kg) continue;
    const int oc = g * s.kg + m;
#pragma unroll
    for (int j = 0; j < T::TN; ++j) {
      const int p = p_first + j;
      if (p >= s.gemm_n) continue;
      if (splits > 1) {
        partial[((int64_t)(g * splits + split) * s.kg + m) * s.gemm_n + p] = acc[i][j];
      } else {
        int b = b_first, pix = pix_first + j;
        if (pix >= plane) b = s.by_plane.divmod(p, pix);
        const int64_t idx = ((int64_t)b * s.k + oc) * plane + pix;
        s.y[(int64_t)b * s.y_batch + (int64_t)oc * plane + pix] = ep.apply(acc[i][j], oc, idx);
      }
    }
  }
}

// Adds the split-K partial sums in split order, then applies the epilogue.
__global__ void reduce_splits(const __grid_constant__ Shape s, const kiln::Epilogue ep,
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
    const int64_t idx = ((int64_t)b * s.k + oc) * plane + pix;
    s.y[(int64_t)b * s.y_batch + (int64_t)oc * plane + pix] = ep.apply(v, oc, idx);
  }
}

// Direct convolution: block (pixels of 128, 32 output channels of one group). The block's
// filters sit in shared memory tap-major ([tap][channel]) so that a thread reads the 32 weights
// of one tap as eight 16-byte broadcasts; each thread owns one output pixel.
constexpr int kDirectChannels = 32;
constexpr int kDirectPixels = 128;
constexpr int kDirectMaxTaps = 256;  // 32 KiB of filters

__global__ void __launch_bounds__(kDirectPixels)
    direct(const __grid_constant__ Shape s, const kiln::Epilogue ep) {
  __shared__ __align__(16) float ws[kDirectMaxTaps][kDirectChannels];
  const int g = blockIdx.z;
  const int m0 = blockIdx.y * kDirectChannels;
  const int taps = s.gemm_k;
  for (int e = threadIdx.x; e < taps * kDirectChannels; e += blockDim.x) {
    const int t = e / kDirectChannels, m = e % kDirectChannels;
    ws[t][m] = m0 + m < s.kg ? __ldg(s.w + ((int64_t)g * s.kg + m0 + m) * taps + t) : 0.f;
  }
  __syncthreads();
  const int p = blockIdx.x * kDirectPixels + threadIdx.x;
  if (p >= s.gemm_n) return;
  int pix, ox;
  const int b = s.by_plane.divmod(p, pix);
  const int oy = s.by_ow.divmod(pix, ox);
  const int iy0 = oy * s.stride_h - s.pad_h, ix0 = ox * s.stride_w - s.pad_w;
  const float* xg = s.x + (int64_t)b * s.x_batch + (int64_t)g * s.cg * s.h * s.w_in;
  float acc[kDirectChannels];
#pragma unroll
  for (int m = 0; m < kDirectChannels; ++m) acc[m] = 0.f;
  int t = 0;
  for (int ci = 0; ci < s.cg; ++ci) {
    const float* xc = xg + (int64_t)ci * s.h * s.w_in;
    for (int r = 0; r < s.kernel_h; ++r) {
      const int iy = iy0 + r * s.dilation_h;
      const bool row_ok = (unsigned)iy < (unsigned)s.h;
      for (int q = 0; q < s.kernel_w; ++q, ++t) {
        const int ix = ix0 + q * s.dilation_w;
        const float v =
            row_ok && (unsigned)ix < (unsigned)s.w_in ? __ldg(xc + (int64_t)iy * s.w_in + ix) : 0.f;
        const float4* w4 = reinterpret_cast<const float4*>(&ws[t][0]);
#pragma unroll
        for (int m4 = 0; m4 < kDirectChannels / 4; ++m4) {
          const float4 wv = w4[m4];
          acc[4 * m4] = fmaf(v, wv.x, acc[4 * m4]);
          acc[4 * m4 + 1] = fmaf(v, wv.y, acc[4 * m4 + 1]);
          acc[4 * m4 + 2] = fmaf(v, wv.z, acc[4 * m4 + 2]);
          acc[4 * m4 + 3] = fmaf(v, wv.w, acc[4 * m4 + 3]);
        }
      }
    }
  }
  const int plane = s.out_h * s.out_w;
#pragma unroll
  for (int m = 0; m < kDirectChannels; ++m) {
    if (m0 + m >= s.kg) break;
    const int oc = g * s.kg + m0 + m;
    const int64_t idx = ((int64_t)b * s.k + oc) * plane + pix;
    s.y[(int64_t)b * s.y_batch + (int64_t)oc * plane + pix] = ep.apply(acc[m], oc, idx);
  }
}

bool pointwise_applies(const kiln_convolution_params* p) {
  return p->kernel_h == 1 && p->kernel_w == 1 && p->pad_h == 0 && p->pad_w == 0;
}

// Checks a tactic against the problem; fills the K chunk and the workspace it needs.
kiln_status plan_tactic(const kiln_convolution_params* p, int32_t kind, int32_t variant,
                        int32_t splits, int* k_chunk, uint64_t* workspace, const char* where) {
  const int64_t gemm_k = (int64_t)(p->c / p->groups) * p->kernel_h * p->kernel_w;
  const int64_t kg = p->k / p->groups, gemm_n = (int64_t)p->n * p->out_h * p->out_w;
  *k_chunk = (int)gemm_k;
  *workspace = 0;
  switch (kind) {
    case KILN_TACTIC_POINTWISE:
      if (!pointwise_applies(p)) {
        return kiln::fail(KILN_UNSUPPORTED, "%s: pointwise needs a 1x1 kernel without padding",
                          where);
      }
      [[fallthrough]];
    case KILN_TACTIC_IGEMM: {
      if (variant < 0 || variant >= kiln::kTacticTileCount) {
        return kiln::fail(KILN_INVALID_ARGUMENT, "%s: no tile %d", where, variant);
      }
      const int64_t k_tiles = (gemm_k + 15) / 16;
      if (splits < 1 || splits > kiln::kMaxSplits || (splits > 1 && splits * 2 > k_tiles)) {
        return kiln::fail(KILN_UNSUPPORTED, "%s: %d splits of %lld taps", where, splits,
                          (long long)gemm_k);
      }
      *k_chunk = (int)(((k_tiles + splits - 1) / splits) * 16);
      if (splits > 1) *workspace = (uint64_t)splits * p->groups * kg * gemm_n * sizeof(float);
      return KILN_OK;
    }
    case KILN_TACTIC_DIRECT:
      if (gemm_k > kDirectMaxTaps) {
        return kiln::fail(KILN_UNSUPPORTED, "%s: direct takes at most %d taps, not %lld", where,
                          kDirectMaxTaps, (long long)gemm_k);
      }
      return KILN_OK;
    default:
      return kiln::fail(KILN_UNSUPPORTED, "%s: tactic kind %d is not a convolution tactic", where,
                        kind);
  }
}

template <class T, class G>
void launch_igemm(const Shape& s, const kiln::Epilogue& ep, int groups, int splits, int k_chunk,
                  float* partial, cudaStream_t stream) {
  dim3 grid((unsigned)((s.gemm_n + T::BN - 1) / T::BN), (unsigned)((s.kg + T::BM - 1) / T::BM),
            (unsigned)(groups * splits));
  igemm<T, G><<<grid, T::THREADS, 0, stream>>>(s, ep, partial, splits, k_chunk);
}

template <class G>
void launch_tile(int variant, const Shape& s, const kiln::Epilogue& ep, int groups, int splits,
                 int k_chunk, float* partial, cudaStream_t stream) {
  switch (variant) {
    case 0:
      return launch_igemm<kiln::TacticTile128x128, G>(s, ep, groups, splits, k_chunk, partial,
                                                      stream);
    case 1:
      return launch_igemm<kiln::TacticTile128x64, G>(s, ep, groups, splits, k_chunk, partial,
                                                     stream);
    case 2:
      return launch_igemm<kiln::TacticTile64x128, G>(s, ep, groups, splits, k_chunk, partial,
                                                     stream);
    case 3:
      return launch_igemm<kiln::Tile64x64, G>(s, ep, groups, splits, k_chunk, partial, stream);
    default:
      return launch_igemm<kiln::Tile32x32, G>(s, ep, groups, splits, k_chunk, partial, stream);
  }
}

}  // namespace

extern "C" KILN_API kiln_status kiln_tactic_convolution_workspace(const kiln_convolution_params* p,
                                                                  int32_t kind, int32_t variant,
                                                                  int32_t splits, int32_t device,
                                                                  uint64_t* bytes) {
  const char* where = "kiln_tactic_convolution_workspace";
  if (!p || !bytes) return kiln::fail(KILN_INVALID_ARGUMENT, "%s: NULL argument", where);
  *bytes = 0;
  KILN_TRY(kiln::validate_convolution(p, where));
  if (kind == KILN_TACTIC_CUDNN) return kiln::cudnn_convolution_workspace(p, variant, device, bytes);
  int k_chunk;
  return plan_tactic(p, kind, variant, splits, &k_chunk, bytes, where);
}

extern "C" KILN_API kiln_status kiln_tactic_convolution_launch(const kiln_convolution_params* p,
                                                               int32_t kind, int32_t variant,
                                                               int32_t splits,
                                                               kiln_stream stream) {
  const char* where = "kiln_tactic_convolution_launch";
  if (kind == KILN_TACTIC_DEFAULT) return kiln_launch_convolution(p, stream);
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  KILN_TRY(kiln::validate_convolution(p, where));
  if (kind == KILN_TACTIC_CUDNN) {
    // The algorithm was timed at maxBatchSize; a batch for which it does not apply or needs more
    // workspace than the context holds runs the built-in kernel instead of failing.
    uint64_t vendor_need = 0;
    if (kiln::cudnn_convolution_workspace(p, variant, stream->device, &vendor_need) != KILN_OK ||
        (vendor_need > 0 && (!p->workspace || (uint64_t)p->workspace_bytes < vendor_need))) {
      return kiln_launch_convolution(p, stream);
    }
    return kiln::cudnn_convolution(p, variant, stream);
  }
  int k_chunk;
  uint64_t need;
  KILN_TRY(plan_tactic(p, kind, variant, splits, &k_chunk, &need, where));
  if (need > 0 && (!p->workspace || (uint64_t)p->workspace_bytes < need)) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: the tactic needs %llu bytes of workspace, has %lld",
                      where, (unsigned long long)need, (long long)p->workspace_bytes);
  }
  const Shape s = kiln::conv_shape_of(p);
  const kiln::Epilogue ep{p->bias, p->residual_mode != KILN_RESIDUAL_NONE ? p->residual : nullptr,
                          p->act, p->alpha, p->beta, p->residual_mode};
  float* partial = (float*)p->workspace;
  cudaStream_t st = stream->stream;
  if (kind == KILN_TACTIC_DIRECT) {
    dim3 grid((unsigned)((s.gemm_n + kDirectPixels - 1) / kDirectPixels),
              (unsigned)((s.kg + kDirectChannels - 1) / kDirectChannels), (unsigned)p->groups);
    direct<<<grid, kDirectPixels, 0, st>>>(s, ep);
    return kiln::check_launch(where);
  }
  if (kind == KILN_TACTIC_POINTWISE) {
    launch_tile<PointwiseGather>(variant, s, ep, p->groups, splits, k_chunk, partial, st);
  } else {
    launch_tile<Gather>(variant, s, ep, p->groups, splits, k_chunk, partial, st);
  }
  KILN_TRY(kiln::check_launch(where));
  if (splits > 1) {
    const int64_t total = (int64_t)s.kg * s.gemm_n * p->groups;
    reduce_splits<<<kiln::blocks_for(total, 256, (int64_t)kiln::multiprocessors(stream->device) * 8),
                    256, 0, st>>>(s, ep, partial, p->groups, splits);
    KILN_TRY(kiln::check_launch(where));
  }
  return KILN_OK;
}
