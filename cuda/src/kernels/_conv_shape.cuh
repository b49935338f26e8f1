// The implicit-GEMM view of a convolution shared by the default kernel (convolution.cu) and the
// tactics (conv_tactics.cu): the problem's shape with its fast divisors, the gather of one
// im2col column, the parameter check and the shape built from kiln_convolution_params.
#pragma once

#include "../common.cuh"
#include "_fastdiv.cuh"

namespace kiln {

struct ConvShape {
  const float* x;
  const float* w;
  float* y;
  int c, h, w_in, k, out_h, out_w;
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int cg, kg;     // channels and outputs per group
  int gemm_k;     // cg·kernel_h·kernel_w
  int gemm_n;     // n·out_h·out_w
  // Divisions of the index arithmetic, by multiply and shift.
  kiln::FastDiv by_taps;   // kernel_h·kernel_w
  kiln::FastDiv by_kw;     // kernel_w
  kiln::FastDiv by_plane;  // out_h·out_w
  kiln::FastDiv by_ow;     // out_w
  kiln::FastDiv by_n;      // gemm_n
  // Elements from one image to the next: c·h·w and k·plane unless x or y is a channel slice of
  // a wider tensor (plan/views.ts). The residual is always dense.
  int64_t x_batch, y_batch;
};

// B(k, p) of one group: the input pixel under kernel tap k for output pixel p (0 in padding).
struct ConvGather {
  static constexpr bool kNContiguous = true;
  const ConvShape* s;
  int group;
  const float* xg;  // this thread's image and group
  int iy0, ix0;
  bool valid;

  __device__ __forceinline__ void set_column(int p) {
    valid = p < s->gemm_n;
    int pix = 0, ox = 0;
    const int b = valid ? s->by_plane.divmod(p, pix) : 0;
    const int oy = s->by_ow.divmod(pix, ox);
    iy0 = oy * s->stride_h - s->pad_h;
    ix0 = ox * s->stride_w - s->pad_w;
    xg = s->x + (int64_t)b * s->x_batch + (int64_t)group * s->cg * s->h * s->w_in;
  }

  __device__ __forceinline__ float operator()(int k) const {
    if (!valid || k >= s->gemm_k) return 0.f;
    int rs, q;
    const int ci = s->by_taps.divmod(k, rs);
    const int r = s->by_kw.divmod(rs, q);
    const int iy = iy0 + r * s->dilation_h, ix = ix0 + q * s->dilation_w;
    if ((unsigned)iy >= (unsigned)s->h || (unsigned)ix >= (unsigned)s->w_in) return 0.f;
    return __ldg(xg + ((int64_t)ci * s->h + iy) * s->w_in + ix);
  }
};

// Rejects parameters no convolution kernel can run (and sizes past 32-bit indexing).
inline kiln_status validate_convolution(const kiln_convolution_params* p, const char* where) {
  const bool shape_ok = p->n > 0 && p->c > 0 && p->in_h > 0 && p->in_w > 0 && p->k > 0 &&
                        p->out_h > 0 && p->out_w > 0 && p->kernel_h > 0 && p->kernel_w > 0 &&
                        p->stride_h > 0 && p->stride_w > 0 && p->pad_h >= 0 && p->pad_w >= 0 &&
                        p->dilation_h > 0 && p->dilation_w > 0 && p->groups > 0 &&
                        p->c % p->groups == 0 && p->k % p->groups == 0;
  const int64_t x_dense = (int64_t)p->c * p->in_h * p->in_w;
  const int64_t y_dense = (int64_t)p->k * p->out_h * p->out_w;
  const bool strides_ok = (p->x_batch_stride == 0 || p->x_batch_stride >= x_dense) &&
                          (p->y_batch_stride == 0 || p->y_batch_stride >= y_dense);
  if (!shape_ok || !strides_ok || !p->x || !p->w || !p->y || !valid_activation(p->act) ||
      (p->residual_mode != KILN_RESIDUAL_NONE && !p->residual)) {
    return fail(KILN_INVALID_ARGUMENT,
                "%s: bad parameters (n %d, c %d, %dx%d -> k %d, %dx%d, kernel %dx%d, groups %d)",
                where, p->n, p->c, p->in_h, p->in_w, p->k, p->out_h, p->out_w, p->kernel_h,
                p->kernel_w, p->groups);
  }
  const int64_t gemm_n = (int64_t)p->n * p->out_h * p->out_w;
  const int64_t gemm_k = (int64_t)(p->c / p->groups) * p->kernel_h * p->kernel_w;
  if (gemm_n >= (1ll << 31) || gemm_k >= (1ll << 31)) {
    return fail(KILN_UNSUPPORTED, "%s: %lld output pixels x %lld taps exceed 32-bit indexing",
                where, (long long)gemm_n, (long long)gemm_k);
  }
  return KILN_OK;
}

// The shape of validated parameters (validate_convolution first).
inline ConvShape conv_shape_of(const kiln_convolution_params* p) {
  const int gemm_n = p->n * p->out_h * p->out_w;
  const int gemm_k = (p->c / p->groups) * p->kernel_h * p->kernel_w;
  return ConvShape{p->x,        p->w,        p->y,          p->c,          p->in_h,
                   p->in_w,     p->k,        p->out_h,      p->out_w,      p->kernel_h,
                   p->kernel_w, p->stride_h, p->stride_w,   p->pad_h,      p->pad_w,
                   p->dilation_h, p->dilation_w, p->c / p->groups, p->k / p->groups, gemm_k,
                   gemm_n,      FastDiv(p->kernel_h * p->kernel_w), FastDiv(p->kernel_w),
                   FastDiv(p->out_h * p->out_w), FastDiv(p->out_w), FastDiv(gemm_n),
                   p->x_batch_stride ? p->x_batch_stride : (int64_t)p->c * p->in_h * p->in_w,
                   p->y_batch_stride ? p->y_batch_stride : (int64_t)p->k * p->out_h * p->out_w};
}

}  // namespace kiln
