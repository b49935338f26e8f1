// Convolution as an implicit GEMM per group:
//   y[g·kg + m, pixel p] = sum_k W_g[m, k] · col[k, p],  k = (ci, r, s), p = (b, oy, ox)
// The batch folds into the GEMM's N dimension, so batch 1 and batch 256 share one kernel and
// small images still fill the GPU at larger batches. The im2col matrix is gathered into shared
// memory tile by tile and never stored. Epilogue: bias, residual (pre/post) and activation.
#include "../common.cuh"
#include "_epilogue.cuh"
#include "_gemm.cuh"

namespace {

struct ConvShape {
  const float* x;
  const float* w;
  float* y;
  int c, h, w_in, k, out_h, out_w;
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int cg, kg;     // channels and outputs per group
  int gemm_k;     // cg·kernel_h·kernel_w
  int gemm_n;     // n·out_h·out_w
};

// B(k, p) of one group: the input pixel under kernel tap k for output pixel p (0 in padding).
struct ConvGather {
  static constexpr bool kNContiguous = true;
  const ConvShape* s;
  const float* xg;  // this thread's image and group
  int iy0, ix0;
  bool valid;

  __device__ __forceinline__ void set_column(int p) {
    valid = p < s->gemm_n;
    const int plane = s->out_h * s->out_w;
    const int b = valid ? p / plane : 0;
    const int pix = valid ? p - b * plane : 0;
    const int oy = pix / s->out_w, ox = pix - oy * s->out_w;
    iy0 = oy * s->stride_h - s->pad_h;
    ix0 = ox * s->stride_w - s->pad_w;
    xg = s->x + ((int64_t)b * s->c + (int64_t)blockIdx.z * s->cg) * s->h * s->w_in;
  }

  __device__ __forceinline__ float operator()(int k) const {
    if (!valid || k >= s->gemm_k) return 0.f;
    const int taps = s->kernel_h * s->kernel_w;
    const int ci = k / taps;
    const int rs = k - ci * taps;
    const int r = rs / s->kernel_w, q = rs - r * s->kernel_w;
    const int iy = iy0 + r * s->dilation_h, ix = ix0 + q * s->dilation_w;
    if ((unsigned)iy >= (unsigned)s->h || (unsigned)ix >= (unsigned)s->w_in) return 0.f;
    return __ldg(xg + ((int64_t)ci * s->h + iy) * s->w_in + ix);
  }
};

template <class T>
__global__ void __launch_bounds__(T::THREADS)
    conv_kernel(const __grid_constant__ ConvShape s, const kiln::Epilogue ep) {
  const int g = blockIdx.z;
  const int m0 = blockIdx.y * T::BM, n0 = blockIdx.x * T::BN;
  kiln::RowsK load_a{s.w + (int64_t)g * s.kg * s.gemm_k, s.kg, s.gemm_k};
  ConvGather load_b{&s, nullptr, 0, 0, false};
  float acc[T::TM][T::TN];
  kiln::gemm_mainloop<T>(s.gemm_k, m0, n0, load_a, load_b, acc);

  const int plane = s.out_h * s.out_w;
  const int tx = threadIdx.x % T::RX, ty = threadIdx.x / T::RX;
#pragma unroll
  for (int j = 0; j < T::TN; ++j) {
    const int p = n0 + tx + j * T::RX;
    if (p >= s.gemm_n) continue;
    const int b = p / plane, pix = p - b * plane;
#pragma unroll
    for (int i = 0; i < T::TM; ++i) {
      const int m = m0 + ty + i * T::RY;
      if (m >= s.kg) continue;
      const int oc = g * s.kg + m;
      const int64_t idx = ((int64_t)b * s.k + oc) * plane + pix;
      s.y[idx] = ep.apply(acc[i][j], oc, idx);
    }
  }
}

template <class T>
kiln_status launch(const ConvShape& s, const kiln::Epilogue& ep, int groups, cudaStream_t stream) {
  dim3 grid((s.gemm_n + T::BN - 1) / T::BN, (s.kg + T::BM - 1) / T::BM, groups);
  conv_kernel<T><<<grid, T::THREADS, 0, stream>>>(s, ep);
  return kiln::check_launch("kiln_launch_convolution");
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_convolution(const kiln_convolution_params* p,
                                                        kiln_stream stream) {
  const char* where = "kiln_launch_convolution";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  const bool shape_ok = p->n > 0 && p->c > 0 && p->in_h > 0 && p->in_w > 0 && p->k > 0 &&
                        p->out_h > 0 && p->out_w > 0 && p->kernel_h > 0 && p->kernel_w > 0 &&
                        p->stride_h > 0 && p->stride_w > 0 && p->pad_h >= 0 && p->pad_w >= 0 &&
                        p->dilation_h > 0 && p->dilation_w > 0 && p->groups > 0 &&
                        p->c % p->groups == 0 && p->k % p->groups == 0;
  if (!shape_ok || !p->x || !p->w || !p->y || !kiln::valid_activation(p->act) ||
      (p->residual_mode != KILN_RESIDUAL_NONE && !p->residual)) {
    return kiln::fail(KILN_INVALID_ARGUMENT,
                      "%s: bad parameters (n %d, c %d, %dx%d -> k %d, %dx%d, kernel %dx%d, groups %d)",
                      where, p->n, p->c, p->in_h, p->in_w, p->k, p->out_h, p->out_w, p->kernel_h,
                      p->kernel_w, p->groups);
  }
  const int64_t gemm_n = (int64_t)p->n * p->out_h * p->out_w;
  const int64_t gemm_k = (int64_t)(p->c / p->groups) * p->kernel_h * p->kernel_w;
  if (gemm_n >= (1ll << 31) || gemm_k >= (1ll << 31)) {
    return kiln::fail(KILN_UNSUPPORTED, "%s: %lld output pixels x %lld taps exceed 32-bit indexing",
                      where, (long long)gemm_n, (long long)gemm_k);
  }
  ConvShape s{p->x,        p->w,        p->y,        p->c,        p->in_h,     p->in_w,
              p->k,        p->out_h,    p->out_w,    p->kernel_h, p->kernel_w, p->stride_h,
              p->stride_w, p->pad_h,    p->pad_w,    p->dilation_h, p->dilation_w,
              p->c / p->groups, p->k / p->groups, (int)gemm_k, (int)gemm_n};
  kiln::Epilogue ep{p->bias, p->residual_mode != KILN_RESIDUAL_NONE ? p->residual : nullptr,
                    p->act, p->alpha, p->beta, p->residual_mode};
  // Large tiles when they alone fill the GPU, small tiles otherwise (latency-bound sizes).
  const int64_t large_blocks = ((gemm_n + 63) / 64) * ((s.kg + 63) / 64) * p->groups;
  if (large_blocks >= kiln::multiprocessors(stream->device)) {
    return launch<kiln::TileLarge>(s, ep, p->groups, stream->stream);
  }
  return launch<kiln::TileSmall>(s, ep, p->groups, stream->stream);
}
