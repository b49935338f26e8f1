// Deconvolution (transposed convolution) as a gather, so that no two threads write the same
// output and no atomics are needed: output pixel (oy, ox) of channel ko sums, over the input
// channels of ko's group and the taps (i, j) whose input position
//   y = (oy + pad_h - i·dilation_h) / stride_h   (exact division, inside the input)
// exists, x[c, y, x] · w[c, ko mod (k/groups), i, j]. One thread per output element, adjacent
// threads on adjacent output columns (coalesced stores; input reads coalesce for stride 1 and
// are cached otherwise), the valid taps of a row found once per thread before the channel loop.
#include "../common.cuh"
#include "_epilogue.cuh"

namespace {

constexpr int kMaxTaps = 16;  // per axis

__global__ void deconv_gather(const kiln_deconvolution_params p, const kiln::Epilogue ep,
                              int64_t total) {
  const int cg = p.c / p.groups, kg = p.k / p.groups;
  const int taps = p.kernel_h * p.kernel_w;
  const int64_t plane = (int64_t)p.in_h * p.in_w;
  for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < total;
       o += (int64_t)gridDim.x * blockDim.x) {
    const int ox = (int)(o % p.out_w);
    int64_t t = o / p.out_w;
    const int oy = (int)(t % p.out_h);
    t /= p.out_h;
    const int ko = (int)(t % p.k);
    const int n = (int)(t / p.k);
    const int g = ko / kg, kl = ko % kg;
    // Valid taps along each axis: (tap, input coordinate).
    int ti[kMaxTaps], yi[kMaxTaps], tj[kMaxTaps], xj[kMaxTaps];
    int nh = 0, nw = 0;
    for (int i = 0; i < p.kernel_h; ++i) {
      const int v = oy + p.pad_h - i * p.dilation_h;
      if (v < 0 || v % p.stride_h != 0 || v / p.stride_h >= p.in_h) continue;
      ti[nh] = i, yi[nh] = v / p.stride_h, ++nh;
    }
    for (int j = 0; j < p.kernel_w; ++j) {
      const int v = ox + p.pad_w - j * p.dilation_w;
      if (v < 0 || v % p.stride_w != 0 || v / p.stride_w >= p.in_w) continue;
      tj[nw] = j, xj[nw] = v / p.stride_w, ++nw;
    }
    float acc = 0.f;
    const float* xb = p.x + ((int64_t)n * p.c + (int64_t)g * cg) * plane;
    const float* wb = p.w + ((int64_t)g * cg * kg + kl) * taps;
    for (int c = 0; c < cg; ++c) {
      const float* xc = xb + c * plane;
      const float* wc = wb + (int64_t)c * kg * taps;
      for (int a = 0; a < nh; ++a) {
        const float* xr = xc + (int64_t)yi[a] * p.in_w;
        const float* wr = wc + ti[a] * p.kernel_w;
        for (int b = 0; b < nw; ++b) acc = fmaf(__ldg(xr + xj[b]), __ldg(wr + tj[b]), acc);
      }
    }
    p.y[o] = ep.apply(acc, ko, o);
  }
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_deconvolution(const kiln_deconvolution_params* p,
                                                          kiln_stream stream) {
  const char* where = "kiln_launch_deconvolution";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  if (!p->x || !p->w || !p->y || p->n < 0 || p->c <= 0 || p->k <= 0 || p->groups <= 0 ||
      p->c % p->groups != 0 || p->k % p->groups != 0 || p->in_h <= 0 || p->in_w <= 0 ||
      p->out_h <= 0 || p->out_w <= 0 || p->kernel_h <= 0 || p->kernel_w <= 0 ||
      p->stride_h <= 0 || p->stride_w <= 0 || p->dilation_h <= 0 || p->dilation_w <= 0 ||
      !kiln::valid_activation(p->act) ||
      (p->residual_mode != KILN_RESIDUAL_NONE && !p->residual)) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (c %d, k %d, groups %d)", where,
                      p->c, p->k, p->groups);
  }
  // The valid taps of an axis are kept in registers: kernels wider than that are refused.
  if (p->kernel_h > kMaxTaps || p->kernel_w > kMaxTaps) {
    return kiln::fail(KILN_UNSUPPORTED, "%s: kernel %dx%d (at most %d per axis)", where,
                      p->kernel_h, p->kernel_w, kMaxTaps);
  }
  const int64_t total = (int64_t)p->n * p->k * p->out_h * p->out_w;
  if (total == 0) return KILN_OK;
  kiln::Epilogue ep{p->bias, p->residual_mode != KILN_RESIDUAL_NONE ? p->residual : nullptr,
                    p->act, p->alpha, p->beta, p->residual_mode};
  const int sms = kiln::multiprocessors(stream->device);
  deconv_gather<<<kiln::blocks_for(total, 256, (int64_t)sms * 32), 256, 0, stream->stream>>>(
      *p, ep, total);
  return kiln::check_launch(where);
}
