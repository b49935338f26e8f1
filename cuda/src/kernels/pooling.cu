// Pooling (max / average) over planes of NCHW: one thread per output element, consecutive
// threads on consecutive outputs of a row, so stores coalesce and window reads share cache lines.
// Window clipping and the averaging divisor follow runtime/cpu/pooling.ts exactly.
#include "../common.cuh"

namespace {

template <bool MAX>
__global__ void pool_kernel(const __grid_constant__ kiln_pooling_params p, int64_t total) {
  for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < total;
       o += (int64_t)gridDim.x * blockDim.x) {
    const int ox = (int)(o % p.out_w);
    const int64_t t = o / p.out_w;
    const int oy = (int)(t % p.out_h);
    const int64_t plane = t / p.out_h;
    const float* xp = p.x + plane * p.in_h * p.in_w;
    const int y0 = oy * p.stride_h - p.pad_h;
    const int y1 = min(y0 + p.window_h, p.in_h + p.post_pad_h);
    const int ys = max(y0, 0), ye = min(y1, p.in_h);
    const int x0 = ox * p.stride_w - p.pad_w;
    const int x1 = min(x0 + p.window_w, p.in_w + p.post_pad_w);
    const int xs = max(x0, 0), xe = min(x1, p.in_w);
    float acc = MAX ? -INFINITY : 0.f;
    for (int iy = ys; iy < ye; ++iy) {
      const float* row = xp + iy * p.in_w;
      for (int ix = xs; ix < xe; ++ix) {
        const float v = __ldg(row + ix);
        if (MAX) {
          acc = (v > acc || v != v) ? v : acc;  // NaN propagates, as on the CPU
        } else {
          acc += v;
        }
      }
    }
    if (!MAX) {
      const int count = p.exclude_padding ? (ye - ys) * (xe - xs) : (y1 - y0) * (x1 - x0);
      acc = count > 0 ? acc / (float)count : 0.f;
    }
    if (p.y_batch_stride) {
      // A channel slice of a wider tensor: plane = (image, channel), images a stride apart.
      const int64_t image = plane / p.channels, pixel = o - plane * p.out_h * p.out_w;
      p.y[image * p.y_batch_stride + (plane - image * p.channels) * p.out_h * p.out_w + pixel] = acc;
    } else {
      p.y[o] = acc;
    }
  }
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_pooling(const kiln_pooling_params* p,
                                                    kiln_stream stream) {
  const char* where = "kiln_launch_pooling";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  if (p->planes <= 0 || p->in_h <= 0 || p->in_w <= 0 || p->out_h <= 0 || p->out_w <= 0 ||
      p->window_h <= 0 || p->window_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0 ||
      p->pad_h < 0 || p->pad_w < 0 || p->post_pad_h < 0 || p->post_pad_w < 0 || !p->x || !p->y ||
      (p->type != KILN_POOL_MAX && p->type != KILN_POOL_AVERAGE) ||
      (p->y_batch_stride != 0 &&
       (p->channels <= 0 || p->planes % p->channels != 0 ||
        p->y_batch_stride < (int64_t)p->channels * p->out_h * p->out_w))) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (planes %d, %dx%d -> %dx%d, type %d)",
                      where, p->planes, p->in_h, p->in_w, p->out_h, p->out_w, p->type);
  }
  const int64_t total = (int64_t)p->planes * p->out_h * p->out_w;
  const int threads = 256;
  const unsigned blocks =
      kiln::blocks_for(total, threads, (int64_t)kiln::multiprocessors(stream->device) * 32);
  if (p->type == KILN_POOL_MAX) {
    pool_kernel<true><<<blocks, threads, 0, stream->stream>>>(*p, total);
  } else {
    pool_kernel<false><<<blocks, threads, 0, stream->stream>>>(*p, total);
  }
  return kiln::check_launch(where);
}
