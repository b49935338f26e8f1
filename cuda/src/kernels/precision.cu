// Reduced precision on tensor cores: the Reformat kernel and FP16 / INT8 Convolution (implicit
// GEMM) and FullyConnected, with the exact rounding rules of runtime/cpu/_quant.ts.
//
// Storage: as on the CPU, a reduced-precision tensor lives in its float32 slot holding exactly the
// values its format represents (half(x) for FP16, fround(q·s) for INT8). The kernels convert on
// load, exactly: a half value to __half, an INT8 value to its step q = quantize(x, s). So every
// FP32 kernel can still read any tensor, views keep their float strides, and the CPU and GPU agree
// tensor by tensor (INT8 bit for bit, see the rules below).
//
// GEMM: C[i][j] = Σ_p A[i][p] · B[p][j] with A the weights (output channel i of a group, p over
// c·kh·kw or the FC inputs) and B the activations (implicit im2col for a convolution: column j an
// output pixel of the batch; for FullyConnected column j a row of x). 64×64 tiles, K in steps of
// 32, four warps each owning a 32×32 quarter as 2×2 WMMA 16×16×16 fragments (FP32 accumulation for
// half, int32 for int8: IMMA).
//
// INT8 rules (all float ops correctly rounded, no fused multiply-add):
//   quantize(x, s) = clamp(rint(x / s), −127, 127), NaN → 0;
//   weight scale per output channel s_w = max|W_k| / 127 (1 for an all-zero channel);
//   y = fround(fround(acc) · fround(s_x · s_w)) + bias, activation, then the output's format.
#include <cuda_fp16.h>
#include <mma.h>

#include "../common.cuh"
#include "_epilogue.cuh"
#include "kiln.h"

namespace {

using namespace nvcuda;

constexpr int BM = 64, BN = 64, BK = 32, THREADS = 128;
enum { FMT_F32 = 0, FMT_F16 = 1, FMT_I8 = 2 };

// INT8 workspace: per-channel weight scales (padded to 256 bytes), then the quantized weights.
// runtime/cuda/precision.ts computes the same size.
int64_t int8_workspace_bytes(int64_t rows, int64_t cols) {
  return ((rows * 4 + 255) / 256) * 256 + rows * cols;
}

__device__ __forceinline__ float quantize_step(float x, float s) {
  float q = rintf(__fdiv_rn(x, s));  // rint: round half to even
  if (q != q) return 0.f;
  return fminf(127.f, fmaxf(-127.f, q));
}

// The value an output format stores for y (see _quant.ts: finishOutput).
__device__ __forceinline__ float to_format(float y, int format, float scale) {
  if (format == FMT_F16) return __half2float(__float2half_rn(y));
  if (format == FMT_I8) return __fmul_rn(quantize_step(y, scale), scale);
  return y;
}

__global__ void reformat_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t count,
                                int format, float scale) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
       i += (int64_t)gridDim.x * blockDim.x) {
    y[i] = to_format(x[i], format, scale);
  }
}

// Per output channel: the weight step and the quantized row (INT8 weights for the IMMA kernels).
__global__ void quantize_weights_kernel(const float* __restrict__ w, int64_t cols,
                                        int8_t* __restrict__ q, float* __restrict__ scales) {
  const int64_t row = blockIdx.x;
  const float* wr = w + row * cols;
  float amax = 0.f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) amax = fmaxf(amax, fabsf(wr[j]));
  __shared__ float part[256];
  part[threadIdx.x] = amax;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) part[threadIdx.x] = fmaxf(part[threadIdx.x], part[threadIdx.x + s]);
    __syncthreads();
  }
  const float sw = part[0] > 0.f ? __fdiv_rn(part[0], 127.f) : 1.f;
  if (threadIdx.x == 0) scales[row] = sw;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    q[row * cols + j] = (int8_t)quantize_step(wr[j], sw);
  }
}

struct LowpShape {
  const float* x;
  const float* w;        // FP16: float weights holding half values
  const int8_t* wq;      // INT8: quantized weights [k][gemm_k]
  const float* w_scale;  // INT8: per output channel
  float* y;
  bool conv;
  // Convolution geometry (conv == true).
  int c, in_h, in_w, k, out_h, out_w, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  int dilation_h, dilation_w, cg, kg;
  int64_t x_batch_stride, y_batch_stride;
  // GEMM sizes: rows (output channels per group), columns (pixels or FC rows), depth.
  int gemm_m, gemm_n, gemm_k;
  float x_scale;
  int y_format;
  float y_scale;
};

template <class T>
struct Lowp;
template <>
struct Lowp<half> {
  using Acc = float;
  static __device__ __forceinline__ half from(float v, float) { return __float2half_rn(v); }
};
template <>
struct Lowp<int8_t> {
  using Acc = int;
  static __device__ __forceinline__ int8_t from(float v, float s) {
    return (int8_t)quantize_step(v, s);
  }
};

// Shared tiles in 16-deep K chunks: A as [chunk][row i][p], B as [chunk][column j][p], so every
// fragment starts 256-bit aligned for half and int8 alike (LD·sizeof(T) = 48 or 32 bytes).
template <class T>
struct Tiles {
  static constexpr int LD = 16 + 16 / (int)sizeof(T);
  T a[BK / 16][BM][LD];
  T b[BK / 16][BN][LD];
};

template <class T>
__global__ void __launch_bounds__(THREADS) lowp_gemm_kernel(LowpShape s, kiln::Epilogue ep) {
  using Acc = typename Lowp<T>::Acc;
  constexpr int LD = Tiles<T>::LD;
  __shared__ __align__(32) Tiles<T> tile;
  __shared__ __align__(32) Acc out[BM][BN + 4];
  const int tid = threadIdx.x, warp = tid >> 5;
  const int i0 = blockIdx.y * BM, j0 = blockIdx.x * BN, group = blockIdx.z;
  const int wi = (warp >> 1) * 32, wj = (warp & 1) * 32;

  // Column j of this thread's B loads (convolution: one pixel, 16 depths; FC: 16 rows, one depth).
  const int bj = s.conv ? (tid & 63) : 0;
  int img = 0, oy = 0, ox = 0;
  bool col_ok = false;
  if (s.conv) {
    const int j = j0 + bj;
    col_ok = j < s.gemm_n;
    if (col_ok) {
      const int plane = s.out_h * s.out_w;
      img = j / plane;
      const int pix = j - img * plane;
      oy = pix / s.out_w;
      ox = pix - oy * s.out_w;
    }
  }
  const int taps = s.kernel_h * s.kernel_w;

  wmma::fragment<wmma::accumulator, 16, 16, 16, Acc> acc[2][2];
#pragma unroll
  for (int a = 0; a < 2; a++)
#pragma unroll
    for (int b = 0; b < 2; b++) wmma::fill_fragment(acc[a][b], (Acc)0);

  for (int p0 = 0; p0 < s.gemm_k; p0 += BK) {
    // A: weights, 16 rows per thread, depth tid & 31 (coalesced along p).
    {
      const int p = p0 + (tid & 31);
#pragma unroll 4
      for (int t = 0; t < 16; t++) {
        const int i = (tid >> 5) + 4 * t;
        const int gi = i0 + i;
        T v = T(0);
        if (gi < s.gemm_m && p < s.gemm_k) {
          const int64_t idx = (int64_t)(group * s.kg + gi) * s.gemm_k + p;
          if constexpr (sizeof(T) == 1) {
            v = s.wq[idx];
          } else {
            v = __float2half_rn(__ldg(s.w + idx));
          }
        }
        tile.a[(p - p0) >> 4][i][(p - p0) & 15] = v;
      }
    }
    // B: activations converted on load.
    if (s.conv) {
      const int pb = (tid >> 6) * 16;
#pragma unroll 4
      for (int t = 0; t < 16; t++) {
        const int p = p0 + pb + t;
        float v = 0.f;
        if (col_ok && p < s.gemm_k) {
          const int cc = p / taps, r = p - cc * taps;
          const int ky = r / s.kernel_w, kx = r - ky * s.kernel_w;
          const int iy = oy * s.stride_h - s.pad_h + ky * s.dilation_h;
          const int ix = ox * s.stride_w - s.pad_w + kx * s.dilation_w;
          if (iy >= 0 && iy < s.in_h && ix >= 0 && ix < s.in_w) {
            v = __ldg(s.x + img * s.x_batch_stride +
                      ((int64_t)(group * s.cg + cc) * s.in_h + iy) * s.in_w + ix);
          }
        }
        tile.b[(pb + t) >> 4][bj][(pb + t) & 15] = Lowp<T>::from(v, s.x_scale);
      }
    } else {
      const int p = p0 + (tid & 31);
#pragma unroll 4
      for (int t = 0; t < 16; t++) {
        const int j = (tid >> 5) + 4 * t;
        const int gj = j0 + j;
        float v = 0.f;
        if (gj < s.gemm_n && p < s.gemm_k) v = __ldg(s.x + (int64_t)gj * s.gemm_k + p);
        tile.b[(p - p0) >> 4][j][(p - p0) & 15] = Lowp<T>::from(v, s.x_scale);
      }
    }
    __syncthreads();
#pragma unroll
    for (int kc = 0; kc < BK / 16; kc++) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb[2];
#pragma unroll
      for (int a = 0; a < 2; a++) wmma::load_matrix_sync(fa[a], &tile.a[kc][wi + 16 * a][0], LD);
#pragma unroll
      for (int b = 0; b < 2; b++) wmma::load_matrix_sync(fb[b], &tile.b[kc][wj + 16 * b][0], LD);
#pragma unroll
      for (int a = 0; a < 2; a++)
#pragma unroll
        for (int b = 0; b < 2; b++) wmma::mma_sync(acc[a][b], fa[a], fb[b], acc[a][b]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int a = 0; a < 2; a++)
#pragma unroll
    for (int b = 0; b < 2; b++) {
      wmma::store_matrix_sync(&out[wi + 16 * a][wj + 16 * b], acc[a][b], BN + 4,
                              wmma::mem_row_major);
    }
  __syncthreads();

  // Epilogue: convolution writes along pixels (j fastest), FullyConnected along features (i).
  for (int e = tid; e < BM * BN; e += THREADS) {
    const int i = s.conv ? e / BN : e % BM;
    const int j = s.conv ? e % BN : e / BM;
    const int gi = i0 + i, gj = j0 + j;
    if (gi >= s.gemm_m || gj >= s.gemm_n) continue;
    const int channel = group * s.kg + gi;
    int64_t yi, dense;
    if (s.conv) {
      const int plane = s.out_h * s.out_w;
      const int im = gj / plane, pix = gj - im * plane;
      yi = im * s.y_batch_stride + (int64_t)channel * plane + pix;
      dense = ((int64_t)im * s.k + channel) * plane + pix;  // the residual is dense
    } else {
      yi = dense = (int64_t)gj * s.gemm_m + gi;
    }
    float v;
    if constexpr (sizeof(T) == 1) {
      const float m = __fmul_rn(s.x_scale, __ldg(s.w_scale + channel));
      v = __fmul_rn(__int2float_rn(out[i][j]), m);
      if (ep.bias) v = __fadd_rn(v, __ldg(ep.bias + channel));
      v = kiln::activate(v, ep.act, ep.alpha, ep.beta);
    } else {
      v = ep.apply(out[i][j], channel, dense);
    }
    s.y[yi] = to_format(v, s.y_format, s.y_scale);
  }
}

template <class T>
kiln_status launch_lowp(LowpShape& s, const kiln::Epilogue& ep, int groups, void* workspace,
                        int64_t workspace_bytes, int rows_total, cudaStream_t stream,
                        const char* where) {
  if constexpr (sizeof(T) == 1) {
    const int64_t need = int8_workspace_bytes(rows_total, s.gemm_k);
    if (!workspace || workspace_bytes < need) {
      return kiln::fail(KILN_INVALID_ARGUMENT, "%s: needs %lld workspace bytes, got %lld", where,
                        (long long)need, (long long)workspace_bytes);
    }
    float* scales = (float*)workspace;
    int8_t* q = (int8_t*)workspace + (((int64_t)rows_total * 4 + 255) / 256) * 256;
    quantize_weights_kernel<<<rows_total, 256, 0, stream>>>(s.w, s.gemm_k, q, scales);
    KILN_TRY(kiln::check_launch(where));
    s.wq = q;
    s.w_scale = scales;
  }
  dim3 grid((unsigned)((s.gemm_n + BN - 1) / BN), (unsigned)((s.gemm_m + BM - 1) / BM),
            (unsigned)groups);
  lowp_gemm_kernel<T><<<grid, THREADS, 0, stream>>>(s, ep);
  return kiln::check_launch(where);
}

kiln_status conv_lowp(const kiln_convolution_params* p, int precision, float x_scale,
                      int32_t y_format, float y_scale, kiln_stream stream, const char* where) {
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  const bool shape_ok = p->n > 0 && p->c > 0 && p->in_h > 0 && p->in_w > 0 && p->k > 0 &&
                        p->out_h > 0 && p->out_w > 0 && p->kernel_h > 0 && p->kernel_w > 0 &&
                        p->stride_h > 0 && p->stride_w > 0 && p->pad_h >= 0 && p->pad_w >= 0 &&
                        p->dilation_h > 0 && p->dilation_w > 0 && p->groups > 0 &&
                        p->c % p->groups == 0 && p->k % p->groups == 0;
  const int64_t x_dense = (int64_t)p->c * p->in_h * p->in_w;
  const int64_t y_dense = (int64_t)p->k * p->out_h * p->out_w;
  const bool int8 = precision == KILN_I8;
  if (!shape_ok || !p->x || !p->w || !p->y || !kiln::valid_activation(p->act) ||
      (p->x_batch_stride != 0 && p->x_batch_stride < x_dense) ||
      (p->y_batch_stride != 0 && p->y_batch_stride < y_dense) || y_format < 0 || y_format > 2 ||
      (int8 && (!(x_scale > 0.f) || p->residual_mode != KILN_RESIDUAL_NONE)) ||
      (y_format == FMT_I8 && !(y_scale > 0.f)) ||
      (p->residual_mode != KILN_RESIDUAL_NONE && !p->residual)) {
    return kiln::fail(KILN_INVALID_ARGUMENT,
                      "%s: bad parameters (n %d, c %d, %dx%d -> k %d, %dx%d, groups %d, x scale %g, "
                      "output format %d, scale %g)",
                      where, p->n, p->c, p->in_h, p->in_w, p->k, p->out_h, p->out_w, p->groups,
                      (double)x_scale, y_format, (double)y_scale);
  }
  const int64_t gemm_n = (int64_t)p->n * p->out_h * p->out_w;
  const int64_t gemm_k = (int64_t)(p->c / p->groups) * p->kernel_h * p->kernel_w;
  if (gemm_n >= (1ll << 31) || gemm_k >= (1ll << 31)) {
    return kiln::fail(KILN_UNSUPPORTED, "%s: problem too large for 32-bit GEMM indexing", where);
  }
  LowpShape s{};
  s.x = p->x;
  s.w = p->w;
  s.y = p->y;
  s.conv = true;
  s.c = p->c, s.in_h = p->in_h, s.in_w = p->in_w, s.k = p->k, s.out_h = p->out_h;
  s.out_w = p->out_w, s.kernel_h = p->kernel_h, s.kernel_w = p->kernel_w;
  s.stride_h = p->stride_h, s.stride_w = p->stride_w, s.pad_h = p->pad_h, s.pad_w = p->pad_w;
  s.dilation_h = p->dilation_h, s.dilation_w = p->dilation_w;
  s.cg = p->c / p->groups, s.kg = p->k / p->groups;
  s.x_batch_stride = p->x_batch_stride ? p->x_batch_stride : x_dense;
  s.y_batch_stride = p->y_batch_stride ? p->y_batch_stride : y_dense;
  s.gemm_m = s.kg, s.gemm_n = (int)gemm_n, s.gemm_k = (int)gemm_k;
  s.x_scale = x_scale, s.y_format = y_format, s.y_scale = y_scale;
  kiln::Epilogue ep{p->bias, p->residual_mode != KILN_RESIDUAL_NONE ? p->residual : nullptr,
                    p->act, p->alpha, p->beta, p->residual_mode};
  return int8 ? launch_lowp<int8_t>(s, ep, p->groups, p->workspace, p->workspace_bytes, p->k,
                                    stream->stream, where)
              : launch_lowp<half>(s, ep, p->groups, p->workspace, p->workspace_bytes, p->k,
                                  stream->stream, where);
}

kiln_status fc_lowp(const kiln_fully_connected_params* p, int precision, float x_scale,
                    int32_t y_format, float y_scale, kiln_stream stream, const char* where) {
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  const bool int8 = precision == KILN_I8;
  if (p->m <= 0 || p->n <= 0 || p->k <= 0 || !p->x || !p->w || !p->y ||
      !kiln::valid_activation(p->act) || y_format < 0 || y_format > 2 ||
      (int8 && (!(x_scale > 0.f) || p->residual_mode != KILN_RESIDUAL_NONE)) ||
      (y_format == FMT_I8 && !(y_scale > 0.f)) ||
      (p->residual_mode != KILN_RESIDUAL_NONE && !p->residual)) {
    return kiln::fail(KILN_INVALID_ARGUMENT,
                      "%s: bad parameters (m %d, n %d, k %d, x scale %g, output format %d, scale %g)",
                      where, p->m, p->n, p->k, (double)x_scale, y_format, (double)y_scale);
  }
  LowpShape s{};
  s.x = p->x;
  s.w = p->w;
  s.y = p->y;
  s.conv = false;
  s.kernel_h = s.kernel_w = 1;
  s.gemm_m = p->n, s.gemm_n = p->m, s.gemm_k = p->k, s.kg = p->n, s.k = p->n;
  s.x_scale = x_scale, s.y_format = y_format, s.y_scale = y_scale;
  kiln::Epilogue ep{p->bias, p->residual_mode != KILN_RESIDUAL_NONE ? p->residual : nullptr,
                    p->act, p->alpha, p->beta, p->residual_mode};
  return int8 ? launch_lowp<int8_t>(s, ep, 1, p->workspace, p->workspace_bytes, p->n,
                                    stream->stream, where)
              : launch_lowp<half>(s, ep, 1, p->workspace, p->workspace_bytes, p->n,
                                  stream->stream, where);
}

}  // namespace

extern "C" KILN_API kiln_status kiln_lowp_reformat_launch(const float* x, float* y, int64_t count,
                                                     int32_t format, float scale,
                                                     kiln_stream stream) {
  const char* where = "kiln_lowp_reformat_launch";
  if (stream == nullptr) return kiln::fail(KILN_INVALID_ARGUMENT, "%s: stream is NULL", where);
  if (count < 0 || (count > 0 && (!x || !y)) || format < 0 || format > 2 ||
      (format == FMT_I8 && !(scale > 0.f && scale <= 3.4028235e38f))) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (count %lld, format %d, scale %g)",
                      where, (long long)count, format, (double)scale);
  }
  KILN_TRY(kiln::use_device(stream->device, where));
  kiln::clear_stale_error();
  if (count == 0) return KILN_OK;
  const unsigned blocks = kiln::blocks_for(count, 256, (int64_t)kiln::multiprocessors(stream->device) * 8);
  reformat_kernel<<<blocks, 256, 0, stream->stream>>>(x, y, count, format, scale);
  return kiln::check_launch(where);
}

extern "C" KILN_API kiln_status kiln_lowp_convolution_launch(const kiln_convolution_params* p,
                                                             int32_t precision, float x_scale,
                                                             int32_t y_format, float y_scale,
                                                             kiln_stream stream) {
  if (precision != KILN_F16 && precision != KILN_I8) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "kiln_lowp_convolution_launch: precision %d", precision);
  }
  return conv_lowp(p, precision, x_scale, y_format, y_scale, stream, "kiln_lowp_convolution_launch");
}

extern "C" KILN_API kiln_status kiln_lowp_fully_connected_launch(
    const kiln_fully_connected_params* p, int32_t precision, float x_scale, int32_t y_format,
    float y_scale, kiln_stream stream) {
  if (precision != KILN_F16 && precision != KILN_I8) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "kiln_lowp_fully_connected_launch: precision %d",
                      precision);
  }
  return fc_lowp(p, precision, x_scale, y_format, y_scale, stream,
                 "kiln_lowp_fully_connected_launch");
}
