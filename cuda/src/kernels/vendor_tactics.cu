// Tactics from NVIDIA's libraries, opened at run time with dlopen from an absolute path (found
// by the TypeScript side: an environment variable, else PyTorch's site-packages). Never linked,
// never required: when a library is absent its tactics are simply not offered.
//
//   cuDNN     convolution through the legacy cudnnConvolutionForward API, FMA math (no TF32),
//             bias + ReLU fused with cudnnConvolutionBiasActivationForward, other epilogues
//             applied in place by a small kernel;
//   cuBLASLt  fully connected as one matmul, FP32 compute (no TF32), bias / ReLU / pre-residual
//             in cuBLASLt's epilogue; the algorithm (64 bytes) is recorded in the plan.
//
// The prototypes and enum values below are those of cudnn.h 9 and cublasLt.h 13 (only what is
// used). Handles are created once per device, under relaxed stream-capture mode, so that a
// first use inside a CUDA graph capture is allowed.
#include <dirent.h>
#include <dlfcn.h>

#include <cstring>
#include <mutex>
#include <string>

#include "../common.cuh"
#include "_epilogue.cuh"
#include "_tactics.cuh"

namespace {

constexpr int kMaxDevices = 64;
std::mutex vendor_mutex;

// ---- cuDNN ----
enum {
  CUDNN_DATA_FLOAT = 0,
  CUDNN_TENSOR_NCHW = 0,
  CUDNN_CROSS_CORRELATION = 1,
  CUDNN_FMA_MATH = 3,
  CUDNN_ACTIVATION_RELU = 1,
  CUDNN_NOT_PROPAGATE_NAN = 0,
  CUDNN_ALGO_COUNT = 8,
};
using Desc = void*;
struct Cudnn {
  void* lib = nullptr;
  int (*create)(Desc*);
  int (*set_stream)(Desc, cudaStream_t);
  int (*create_tensor)(Desc*);
  int (*set_tensor)(Desc, int, int, int, int, int, int, int, int, int);
  int (*destroy_tensor)(Desc);
  int (*create_filter)(Desc*);
  int (*set_filter)(Desc, int, int, int, int, int, int);
  int (*destroy_filter)(Desc);
  int (*create_conv)(Desc*);
  int (*set_conv)(Desc, int, int, int, int, int, int, int, int);
  int (*set_groups)(Desc, int);
  int (*set_math)(Desc, int);
  int (*destroy_conv)(Desc);
  int (*create_act)(Desc*);
  int (*set_act)(Desc, int, int, double);
  int (*destroy_act)(Desc);
  int (*workspace)(Desc, Desc, Desc, Desc, Desc, int, size_t*);
  int (*forward)(Desc, const void*, Desc, const void*, Desc, const void*, Desc, int, void*, size_t,
                 const void*, Desc, void*);
  int (*bias_act)(Desc, const void*, Desc, const void*, Desc, const void*, Desc, int, void*,
                  size_t, const void*, Desc, const void*, Desc, const void*, Desc, Desc, void*);
  const char* (*error_string)(int);
  Desc handles[kMaxDevices] = {};
} cudnn;

// ---- cuBLASLt ----
enum {
  CUBLAS_COMPUTE_32F = 68,
  CUDA_R_32F = 0,
  CUBLAS_OP_N = 0,
  CUBLAS_OP_T = 1,
  DESC_TRANSA = 3,
  DESC_TRANSB = 4,
  DESC_EPILOGUE = 7,
  DESC_BIAS_POINTER = 8,
  PREF_MAX_WORKSPACE_BYTES = 1,
  PREF_MIN_ALIGNMENT_A = 5,  // ..._D = 8
  EPILOGUE_DEFAULT = 1,
  EPILOGUE_RELU = 2,
  EPILOGUE_BIAS = 4,
  EPILOGUE_RELU_BIAS = 6,
};
struct LtAlgo {
  uint64_t data[8];
};
struct LtHeuristic {
  LtAlgo algo;
  size_t workspace;
  int state;
  float waves;
  int reserved[4];
};
struct Lt {
  void* lib = nullptr;
  int (*create)(Desc*);
  int (*desc_create)(Desc*, int, int);
  int (*desc_destroy)(Desc);
  int (*desc_set)(Desc, int, const void*, size_t);
  int (*layout_create)(Desc*, int, uint64_t, uint64_t, int64_t);
  int (*layout_destroy)(Desc);
  int (*pref_create)(Desc*);
  int (*pref_destroy)(Desc);
  int (*pref_set)(Desc, int, const void*, size_t);
  int (*heuristic)(Desc, Desc, Desc, Desc, Desc, Desc, Desc, int, LtHeuristic*, int*);
  int (*check)(Desc, Desc, Desc, Desc, Desc, Desc, const LtAlgo*, LtHeuristic*);
  int (*matmul)(Desc, Desc, const void*, const void*, Desc, const void*, Desc, const void*,
                const void*, Desc, void*, Desc, const LtAlgo*, void*, size_t, cudaStream_t);
  Desc handles[kMaxDevices] = {};
} lt;

template <class F>
bool resolve(void* lib, const char* name, F& f, std::string& missing) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  if (!f) missing += std::string(missing.empty() ? "" : ", ") + name;
  return f != nullptr;
}

// cuDNN 9's libcudnn.so.9 loads its sub-libraries by name: opening them first by absolute path
// (several passes, as they need one another) makes those names resolve to these files.
void preload_cudnn_siblings(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  std::string names[32];
  int count = 0;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (count < 32 && n.rfind("libcudnn_", 0) == 0 && n.find(".so.9") != std::string::npos &&
        n.size() - n.find(".so.9") == 5) {
      names[count++] = n;
    }
  }
  closedir(d);
  bool loaded[32] = {};
  for (int pass = 0; pass < 4; ++pass) {
    for (int i = 0; i < count; ++i) {
      if (!loaded[i]) loaded[i] = dlopen((dir + "/" + names[i]).c_str(), RTLD_NOW | RTLD_GLOBAL);
    }
  }
}

kiln_status load_cudnn(const char* path) {
  const std::string p = path;
  const size_t slash = p.rfind('/');
  if (slash != std::string::npos) preload_cudnn_siblings(p.substr(0, slash));
  void* lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
  if (!lib) return kiln::fail(KILN_UNSUPPORTED, "kiln_vendor_load: %s", dlerror());
  Cudnn c;
  std::string missing;
  resolve(lib, "cudnnCreate", c.create, missing);
  resolve(lib, "cudnnSetStream", c.set_stream, missing);
  resolve(lib, "cudnnCreateTensorDescriptor", c.create_tensor, missing);
  resolve(lib, "cudnnSetTensor4dDescriptorEx", c.set_tensor, missing);
  resolve(lib, "cudnnDestroyTensorDescriptor", c.destroy_tensor, missing);
  resolve(lib, "cudnnCreateFilterDescriptor", c.create_filter, missing);
  resolve(lib, "cudnnSetFilter4dDescriptor", c.set_filter, missing);
  resolve(lib, "cudnnDestroyFilterDescriptor", c.destroy_filter, missing);
  resolve(lib, "cudnnCreateConvolutionDescriptor", c.create_conv, missing);
  resolve(lib, "cudnnSetConvolution2dDescriptor", c.set_conv, missing);
  resolve(lib, "cudnnSetConvolutionGroupCount", c.set_groups, missing);
  resolve(lib, "cudnnSetConvolutionMathType", c.set_math, missing);
  resolve(lib, "cudnnDestroyConvolutionDescriptor", c.destroy_conv, missing);
  resolve(lib, "cudnnCreateActivationDescriptor", c.create_act, missing);
  resolve(lib, "cudnnSetActivationDescriptor", c.set_act, missing);
  resolve(lib, "cudnnDestroyActivationDescriptor", c.destroy_act, missing);
  resolve(lib, "cudnnGetConvolutionForwardWorkspaceSize", c.workspace, missing);
  resolve(lib, "cudnnConvolutionForward", c.forward, missing);
  resolve(lib, "cudnnConvolutionBiasActivationForward", c.bias_act, missing);
  resolve(lib, "cudnnGetErrorString", c.error_string, missing);
  if (!missing.empty()) {
    return kiln::fail(KILN_UNSUPPORTED, "kiln_vendor_load: %s lacks %s", path, missing.c_str());
  }
  c.lib = lib;
  cudnn = c;
  return KILN_OK;
}

kiln_status load_cublaslt(const char* path) {
  void* lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
  if (!lib) return kiln::fail(KILN_UNSUPPORTED, "kiln_vendor_load: %s", dlerror());
  Lt l;
  std::string missing;
  resolve(lib, "cublasLtCreate", l.create, missing);
  resolve(lib, "cublasLtMatmulDescCreate", l.desc_create, missing);
  resolve(lib, "cublasLtMatmulDescDestroy", l.desc_destroy, missing);
  resolve(lib, "cublasLtMatmulDescSetAttribute", l.desc_set, missing);
  resolve(lib, "cublasLtMatrixLayoutCreate", l.layout_create, missing);
  resolve(lib, "cublasLtMatrixLayoutDestroy", l.layout_destroy, missing);
  resolve(lib, "cublasLtMatmulPreferenceCreate", l.pref_create, missing);
  resolve(lib, "cublasLtMatmulPreferenceDestroy", l.pref_destroy, missing);
  resolve(lib, "cublasLtMatmulPreferenceSetAttribute", l.pref_set, missing);
  resolve(lib, "cublasLtMatmulAlgoGetHeuristic", l.heuristic, missing);
  resolve(lib, "cublasLtMatmulAlgoCheck", l.check, missing);
  resolve(lib, "cublasLtMatmul", l.matmul, missing);
  if (!missing.empty()) {
    return kiln::fail(KILN_UNSUPPORTED, "kiln_vendor_load: %s lacks %s", path, missing.c_str());
  }
  l.lib = lib;
  lt = l;
  return KILN_OK;
}

// The library handle of `device`, created on first use (relaxed capture mode: the first use
// may be inside a graph capture).
template <class Lib>
kiln_status handle_for(Lib& lib, int device, Desc* out, const char* what) {
  if (device < 0 || device >= kMaxDevices) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: device %d", what, device);
  }
  std::lock_guard<std::mutex> lock(vendor_mutex);
  if (!lib.handles[device]) {
    KILN_TRY(kiln::use_device(device, what));
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    cudaThreadExchangeStreamCaptureMode(&mode);
    Desc h = nullptr;
    const int st = lib.create(&h);
    cudaThreadExchangeStreamCaptureMode(&mode);
    if (st != 0 || !h) return kiln::fail(KILN_INTERNAL, "%s: creating a handle failed (%d)", what, st);
    lib.handles[device] = h;
  }
  *out = lib.handles[device];
  return KILN_OK;
}

// cuDNN descriptors of one convolution, destroyed with the object.
struct ConvDescs {
  Desc x = nullptr, y = nullptr, w = nullptr, conv = nullptr, bias = nullptr, act = nullptr;
  int status = 0;

  explicit ConvDescs(const kiln_convolution_params* p) {
    const int cg = p->c / p->groups;
    const int plane = p->out_h * p->out_w, in_plane = p->in_h * p->in_w;
    ok(cudnn.create_tensor(&x));
    // Batch strides beyond int range are refused by validate(); a channel slice of a wider
    // tensor (plan/views.ts) is a larger image stride.
    const int x_batch = (int)(p->x_batch_stride ? p->x_batch_stride : (int64_t)p->c * in_plane);
    const int y_batch = (int)(p->y_batch_stride ? p->y_batch_stride : (int64_t)p->k * plane);
    ok(cudnn.set_tensor(x, CUDNN_DATA_FLOAT, p->n, p->c, p->in_h, p->in_w, x_batch, in_plane,
                        p->in_w, 1));
    ok(cudnn.create_tensor(&y));
    ok(cudnn.set_tensor(y, CUDNN_DATA_FLOAT, p->n, p->k, p->out_h, p->out_w, y_batch, plane,
                        p->out_w, 1));
    ok(cudnn.create_filter(&w));
    ok(cudnn.set_filter(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, p->k, cg, p->kernel_h,
                        p->kernel_w));
    ok(cudnn.create_conv(&conv));
    ok(cudnn.set_conv(conv, p->pad_h, p->pad_w, p->stride_h, p->stride_w, p->dilation_h,
                      p->dilation_w, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    ok(cudnn.set_groups(conv, p->groups));
    ok(cudnn.set_math(conv, CUDNN_FMA_MATH));
  }
  void ok(int st) {
    if (status == 0) status = st;
  }
  // The bias and ReLU descriptors of cudnnConvolutionBiasActivationForward.
  void add_bias_relu(int k) {
    ok(cudnn.create_tensor(&bias));
    ok(cudnn.set_tensor(bias, CUDNN_DATA_FLOAT, 1, k, 1, 1, k, 1, 1, 1));
    ok(cudnn.create_act(&act));
    ok(cudnn.set_act(act, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  }
  ~ConvDescs() {
    if (x) cudnn.destroy_tensor(x);
    if (y) cudnn.destroy_tensor(y);
    if (bias) cudnn.destroy_tensor(bias);
    if (w) cudnn.destroy_filter(w);
    if (conv) cudnn.destroy_conv(conv);
    if (act) cudnn.destroy_act(act);
  }
};

kiln_status cudnn_fail(int st, const char* what) {
  // CUDNN_STATUS_NOT_SUPPORTED is 9 in cuDNN 8, the 3000 family in cuDNN 9.
  return kiln::fail(st == 9 || st / 1000 == 3 ? KILN_UNSUPPORTED : KILN_INTERNAL,
                    "%s: cuDNN: %s (%d)", what, cudnn.error_string ? cudnn.error_string(st) : "?",
                    st);
}

// y = act(y + bias [+ r]) [+ r], in place over an NCHW output (what cuDNN's call left out);
// i runs over the dense layout (the residual's), images lie y_batch apart in y.
__global__ void conv_epilogue(float* y, int64_t total, int k, int plane, int64_t y_batch,
                              const kiln::Epilogue ep) {
  const int64_t image = (int64_t)k * plane;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t b = i / image, r = i - b * image;
    float* out = y + b * y_batch + r;
    *out = ep.apply(*out, (int)(r / plane), i);
  }
}

// cuDNN's 4-d descriptors take int strides.
kiln_status cudnn_applies(const kiln_convolution_params* p, const char* where) {
  const int64_t x_batch = p->x_batch_stride ? p->x_batch_stride : (int64_t)p->c * p->in_h * p->in_w;
  const int64_t y_batch = p->y_batch_stride ? p->y_batch_stride : (int64_t)p->k * p->out_h * p->out_w;
  if (x_batch > INT32_MAX || y_batch > INT32_MAX) {
    return kiln::fail(KILN_UNSUPPORTED, "%s: an image of over 2^31 elements", where);
  }
  return KILN_OK;
}

// ---- cuBLASLt descriptors of y = x · wᵀ (column-major: yᵀ[n×m] = op_T(w[k×n]) · xᵀ[k×m]) ----
struct FcDescs {
  Desc op = nullptr, a = nullptr, b = nullptr, c = nullptr, d = nullptr;
  int status = 0;
  explicit FcDescs(const kiln_fully_connected_params* p) {
    ok(lt.desc_create(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const int32_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    ok(lt.desc_set(op, DESC_TRANSA, &ta, sizeof ta));
    ok(lt.desc_set(op, DESC_TRANSB, &tb, sizeof tb));
    uint32_t epilogue = p->act == KILN_ACT_RELU ? (p->bias ? EPILOGUE_RELU_BIAS : EPILOGUE_RELU)
                                                : (p->bias ? EPILOGUE_BIAS : EPILOGUE_DEFAULT);
    ok(lt.desc_set(op, DESC_EPILOGUE, &epilogue, sizeof epilogue));
    if (p->bias) {
      const void* bias = p->bias;
      ok(lt.desc_set(op, DESC_BIAS_POINTER, &bias, sizeof bias));
    }
    ok(lt.layout_create(&a, CUDA_R_32F, (uint64_t)p->k, (uint64_t)p->n, p->k));
    ok(lt.layout_create(&b, CUDA_R_32F, (uint64_t)p->k, (uint64_t)p->m, p->k));
    ok(lt.layout_create(&c, CUDA_R_32F, (uint64_t)p->n, (uint64_t)p->m, p->n));
    ok(lt.layout_create(&d, CUDA_R_32F, (uint64_t)p->n, (uint64_t)p->m, p->n));
  }
  void ok(int st) {
    if (status == 0) status = st;
  }
  ~FcDescs() {
    if (op) lt.desc_destroy(op);
    for (Desc l : {a, b, c, d})
      if (l) lt.layout_destroy(l);
  }
};

// cuBLASLt's epilogue covers bias, ReLU and a residual added before the activation (as C).
kiln_status cublaslt_applies(const kiln_fully_connected_params* p, const char* where) {
  if (!lt.lib) return kiln::fail(KILN_UNSUPPORTED, "%s: cuBLASLt is not loaded", where);
  if ((p->act != KILN_ACT_NONE && p->act != KILN_ACT_RELU) ||
      p->residual_mode == KILN_RESIDUAL_POST) {
    return kiln::fail(KILN_UNSUPPORTED, "%s: cuBLASLt's epilogue lacks activation %d / residual %d",
                      where, p->act, p->residual_mode);
  }
  return KILN_OK;
}

}  // namespace

namespace kiln {

kiln_status cudnn_convolution_workspace(const kiln_convolution_params* p, int algo, int device,
                                        uint64_t* bytes) {
  const char* where = "kiln_tactic_convolution_workspace (cuDNN)";
  if (!cudnn.lib) return fail(KILN_UNSUPPORTED, "%s: cuDNN is not loaded", where);
  KILN_TRY(cudnn_applies(p, where));
  if (algo < 0 || algo >= CUDNN_ALGO_COUNT) return fail(KILN_INVALID_ARGUMENT, "%s: algo %d", where, algo);
  Desc h = nullptr;
  KILN_TRY(handle_for(cudnn, device, &h, where));
  ConvDescs d(p);
  if (d.status) return cudnn_fail(d.status, where);
  size_t ws = 0;
  const int st = cudnn.workspace(h, d.x, d.w, d.conv, d.y, algo, &ws);
  if (st) return fail(KILN_UNSUPPORTED, "%s: algorithm %d: %s", where, algo, cudnn.error_string(st));
  *bytes = ws;
  return KILN_OK;
}

kiln_status cudnn_convolution(const kiln_convolution_params* p, int algo, kiln_stream stream) {
  const char* where = "kiln_tactic_convolution_launch (cuDNN)";
  if (!cudnn.lib) return fail(KILN_UNSUPPORTED, "%s: cuDNN is not loaded", where);
  KILN_TRY(cudnn_applies(p, where));
  Desc h = nullptr;
  KILN_TRY(handle_for(cudnn, stream->device, &h, where));
  ConvDescs d(p);
  if (d.status) return cudnn_fail(d.status, where);
  size_t need = 0;
  int st = cudnn.workspace(h, d.x, d.w, d.conv, d.y, algo, &need);
  if (st) return cudnn_fail(st, where);
  if (need > 0 && (!p->workspace || (uint64_t)p->workspace_bytes < need)) {
    return fail(KILN_INVALID_ARGUMENT, "%s: algorithm %d needs %zu bytes of workspace, has %lld",
                where, algo, need, (long long)p->workspace_bytes);
  }
  st = cudnn.set_stream(h, stream->stream);
  if (st) return cudnn_fail(st, where);
  const float one = 1.f, zero = 0.f;
  const bool fused = p->act == KILN_ACT_RELU && p->bias && p->residual_mode == KILN_RESIDUAL_NONE;
  if (fused) {
    d.add_bias_relu(p->k);
    if (d.status) return cudnn_fail(d.status, where);
    st = cudnn.bias_act(h, &one, d.x, p->x, d.w, p->w, d.conv, algo, p->workspace, need, &zero,
                        d.y, p->y, d.bias, p->bias, d.act, d.y, p->y);
  } else {
    st = cudnn.forward(h, &one, d.x, p->x, d.w, p->w, d.conv, algo, p->workspace, need, &zero, d.y,
                       p->y);
  }
  if (st) return cudnn_fail(st, where);
  if (!fused && (p->bias || p->act != KILN_ACT_NONE || p->residual_mode != KILN_RESIDUAL_NONE)) {
    const Epilogue ep{p->bias, p->residual_mode != KILN_RESIDUAL_NONE ? p->residual : nullptr,
                      p->act, p->alpha, p->beta, p->residual_mode};
    const int plane = p->out_h * p->out_w;
    const int64_t total = (int64_t)p->n * p->k * plane;
    const int64_t y_batch = p->y_batch_stride ? p->y_batch_stride : (int64_t)p->k * plane;
    conv_epilogue<<<blocks_for(total, 256, (int64_t)multiprocessors(stream->device) * 8), 256, 0,
                    stream->stream>>>(p->y, total, p->k, plane, y_batch, ep);
    return check_launch(where);
  }
  return KILN_OK;
}

kiln_status cublaslt_fc_workspace(const kiln_fully_connected_params* p, const uint64_t* algo,
                                  int device, uint64_t* bytes) {
  const char* where = "kiln_tactic_fully_connected_workspace (cuBLASLt)";
  KILN_TRY(cublaslt_applies(p, where));
  if (!algo) return fail(KILN_INVALID_ARGUMENT, "%s: no algorithm", where);
  Desc h = nullptr;
  KILN_TRY(handle_for(lt, device, &h, where));
  FcDescs d(p);
  if (d.status) return fail(KILN_INTERNAL, "%s: descriptor status %d", where, d.status);
  LtHeuristic r{};
  const int st = lt.check(h, d.op, d.a, d.b, d.c, d.d, reinterpret_cast<const LtAlgo*>(algo), &r);
  if (st) return fail(KILN_UNSUPPORTED, "%s: the algorithm does not fit (status %d)", where, st);
  *bytes = r.workspace;
  return KILN_OK;
}

kiln_status cublaslt_fc(const kiln_fully_connected_params* p, const uint64_t* algo,
                        kiln_stream stream) {
  const char* where = "kiln_tactic_fully_connected_launch (cuBLASLt)";
  KILN_TRY(cublaslt_applies(p, where));
  if (!algo) return fail(KILN_INVALID_ARGUMENT, "%s: no algorithm", where);
  Desc h = nullptr;
  KILN_TRY(handle_for(lt, stream->device, &h, where));
  FcDescs d(p);
  if (d.status) return fail(KILN_INTERNAL, "%s: descriptor status %d", where, d.status);
  const float one = 1.f;
  const float beta = p->residual_mode == KILN_RESIDUAL_PRE ? 1.f : 0.f;
  const void* c = p->residual_mode == KILN_RESIDUAL_PRE ? (const void*)p->residual : (void*)p->y;
  const int st = lt.matmul(h, d.op, &one, p->w, d.a, p->x, d.b, &beta, c, d.c, p->y, d.d,
                           reinterpret_cast<const LtAlgo*>(algo), p->workspace,
                           (size_t)p->workspace_bytes, stream->stream);
  if (st) return fail(KILN_INTERNAL, "%s: cublasLtMatmul status %d", where, st);
  return KILN_OK;
}

}  // namespace kiln

extern "C" KILN_API kiln_status kiln_vendor_load(int32_t library, const char* path) {
  if (!path || path[0] != '/') {
    return kiln::fail(KILN_INVALID_ARGUMENT, "kiln_vendor_load: an absolute path is required");
  }
  std::lock_guard<std::mutex> lock(vendor_mutex);
  if (library == KILN_VENDOR_CUDNN) return cudnn.lib ? KILN_OK : load_cudnn(path);
  if (library == KILN_VENDOR_CUBLASLT) return lt.lib ? KILN_OK : load_cublaslt(path);
  return kiln::fail(KILN_INVALID_ARGUMENT, "kiln_vendor_load: unknown library %d", library);
}

extern "C" KILN_API kiln_status kiln_vendor_loaded(int32_t library, int32_t* loaded) {
  if (!loaded) return kiln::fail(KILN_INVALID_ARGUMENT, "kiln_vendor_loaded: loaded is NULL");
  std::lock_guard<std::mutex> lock(vendor_mutex);
  *loaded = library == KILN_VENDOR_CUDNN ? cudnn.lib != nullptr
            : library == KILN_VENDOR_CUBLASLT ? lt.lib != nullptr
                                              : 0;
  return KILN_OK;
}

extern "C" KILN_API kiln_status kiln_tactic_cublaslt_algorithms(const kiln_fully_connected_params* p,
                                                            int32_t device, uint64_t max_workspace,
                                                            int32_t max_count, uint64_t* algos,
                                                            uint64_t* workspace, int32_t* count) {
  const char* where = "kiln_tactic_cublaslt_algorithms";
  if (!p || !algos || !workspace || !count || max_count < 1 || max_count > 64) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad arguments", where);
  }
  *count = 0;
  KILN_TRY(cublaslt_applies(p, where));
  Desc h = nullptr;
  KILN_TRY(handle_for(lt, device, &h, where));
  FcDescs d(p);
  if (d.status) return kiln::fail(KILN_INTERNAL, "%s: descriptor status %d", where, d.status);
  Desc pref = nullptr;
  if (lt.pref_create(&pref)) return kiln::fail(KILN_INTERNAL, "%s: preference", where);
  int st = lt.pref_set(pref, PREF_MAX_WORKSPACE_BYTES, &max_workspace, sizeof max_workspace);
  // Plan tensors are 16-byte aligned (not the 256 of a fresh allocation): only such algorithms.
  const uint32_t align = 16;
  for (int a = 0; a < 4 && !st; ++a) st = lt.pref_set(pref, PREF_MIN_ALIGNMENT_A + a, &align, sizeof align);
  LtHeuristic results[64];
  int n = 0;
  if (!st) st = lt.heuristic(h, d.op, d.a, d.b, d.c, d.d, pref, max_count, results, &n);
  lt.pref_destroy(pref);
  if (st) return kiln::fail(KILN_UNSUPPORTED, "%s: no algorithm (status %d)", where, st);
  for (int i = 0; i < n; ++i) {
    std::memcpy(algos + 8 * i, results[i].algo.data, sizeof(LtAlgo));
    workspace[i] = results[i].workspace;
  }
  *count = n;
  return KILN_OK;
}
