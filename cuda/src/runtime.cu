// Errors, devices, memory, streams, events and CUDA graphs: the primitives under every kernel.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <new>

#include "common.cuh"

namespace {

thread_local char g_last_error[1024] = "";

constexpr int kMaxDevices = 64;
int g_multiprocessors[kMaxDevices] = {0};

}  // namespace

namespace kiln {

kiln_status fail(kiln_status status, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(g_last_error, sizeof g_last_error, fmt, args);
  va_end(args);
  return status;
}

kiln_status cuda_fail(cudaError_t e, const char* where) {
  // Clear the runtime's own last-error slot so the next launch check sees only its own error.
  (void)cudaGetLastError();
  return fail(KILN_CUDA_ERROR_BASE + (int)e, "%s: %s: %s", where, cudaGetErrorName(e),
              cudaGetErrorString(e));
}

kiln_status use_device(int device, const char* where) {
  int current = -1;
  if (cudaGetDevice(&current) == cudaSuccess && current == device) return KILN_OK;
  KILN_TRY_CUDA(cudaSetDevice(device), where);
  return KILN_OK;
}

int multiprocessors(int device) {
  if (device < 0 || device >= kMaxDevices) return 1;
  int n = g_multiprocessors[device];
  if (n == 0) {
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || n <= 0) {
      (void)cudaGetLastError();
      n = 1;
    }
    g_multiprocessors[device] = n;
  }
  return n;
}

}  // namespace kiln

using kiln::fail;

extern "C" {

KILN_API int32_t kiln_abi_version(void) { return KILN_ABI_VERSION; }

KILN_API const char* kiln_last_error(void) { return g_last_error; }

KILN_API const char* kiln_status_string(kiln_status status) {
  switch (status) {
    case KILN_OK:
      return "ok";
    case KILN_INVALID_ARGUMENT:
      return "invalid argument";
    case KILN_NO_DEVICE:
      return "no CUDA device";
    case KILN_HOST_OUT_OF_MEMORY:
      return "out of host memory";
    case KILN_INTERNAL:
      return "internal error";
    case KILN_UNSUPPORTED:
      return "unsupported";
    default:
      break;
  }
  if (status >= KILN_CUDA_ERROR_BASE) {
    // Names and descriptions are static strings; one thread-local buffer joins them.
    static thread_local char buf[512];
    cudaError_t e = (cudaError_t)(status - KILN_CUDA_ERROR_BASE);
    snprintf(buf, sizeof buf, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
    return buf;
  }
  return "unknown status";
}

KILN_API kiln_status kiln_device_count(int32_t* count) {
  if (!count) return fail(KILN_INVALID_ARGUMENT, "kiln_device_count: count is NULL");
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    // No driver, no device, or a driver too old: report zero devices and say why.
    (void)cudaGetLastError();
    *count = 0;
    fail(KILN_OK, "kiln_device_count: %s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
    return KILN_OK;
  }
  *count = n;
  g_last_error[0] = '\0';
  return KILN_OK;
}

KILN_API kiln_status kiln_device_props_get(int32_t device, kiln_device_props* out) {
  const char* where = "kiln_device_props_get";
  if (!out) return fail(KILN_INVALID_ARGUMENT, "%s: out is NULL", where);
  memset(out, 0, sizeof *out);
  cudaDeviceProp p;
  KILN_TRY_CUDA(cudaGetDeviceProperties(&p, device), where);
  snprintf(out->name, sizeof out->name, "%s", p.name);
  out->major = p.major;
  out->minor = p.minor;
  out->multiprocessors = p.multiProcessorCount;
  out->max_threads_per_multiprocessor = p.maxThreadsPerMultiProcessor;
  out->total_memory = (uint64_t)p.totalGlobalMem;
  out->l2_cache_bytes = p.l2CacheSize;
  out->shared_memory_per_block_optin = (int32_t)p.sharedMemPerBlockOptin;
  out->pci_bus_id = p.pciBusID;
  out->pci_device_id = p.pciDeviceID;
  int v = 0;
  KILN_TRY_CUDA(cudaDriverGetVersion(&v), where);
  out->driver_version = v;
  KILN_TRY_CUDA(cudaRuntimeGetVersion(&v), where);
  out->runtime_version = v;
  return KILN_OK;
}

KILN_API kiln_status kiln_mem_get_info(int32_t device, uint64_t* free_bytes, uint64_t* total_bytes) {
  const char* where = "kiln_mem_get_info";
  if (!free_bytes || !total_bytes) return fail(KILN_INVALID_ARGUMENT, "%s: NULL output", where);
  KILN_TRY(kiln::use_device(device, where));
  size_t f = 0, t = 0;
  KILN_TRY_CUDA(cudaMemGetInfo(&f, &t), where);
  *free_bytes = f;
  *total_bytes = t;
  return KILN_OK;
}

KILN_API kiln_status kiln_device_synchronize(int32_t device) {
  const char* where = "kiln_device_synchronize";
  KILN_TRY(kiln::use_device(device, where));
  KILN_TRY_CUDA(cudaDeviceSynchronize(), where);
  return KILN_OK;
}

KILN_API kiln_status kiln_gemm_workspace_bytes(int32_t device, uint64_t* bytes) {
  if (!bytes) return fail(KILN_INVALID_ARGUMENT, "kiln_gemm_workspace_bytes: bytes is NULL");
  KILN_TRY(kiln::use_device(device, "kiln_gemm_workspace_bytes"));
  // plan_gemm splits only while every block fits in one wave: at most one 64x64 tile of
  // partial sums per multiprocessor.
  *bytes = (uint64_t)kiln::multiprocessors(device) * 64 * 64 * sizeof(float);
  return KILN_OK;
}

KILN_API kiln_status kiln_malloc(int32_t device, uint64_t bytes, void** out) {
  const char* where = "kiln_malloc";
  if (!out) return fail(KILN_INVALID_ARGUMENT, "%s: out is NULL", where);
  *out = nullptr;
  if (bytes == 0) return KILN_OK;
  KILN_TRY(kiln::use_device(device, where));
  cudaError_t e = cudaMalloc(out, bytes);
  if (e != cudaSuccess) {
    kiln::cuda_fail(e, where);
    return fail(KILN_CUDA_ERROR_BASE + (int)e, "kiln_malloc: %s allocating %llu bytes on device %d",
                cudaGetErrorName(e), (unsigned long long)bytes, device);
  }
  return KILN_OK;
}

KILN_API kiln_status kiln_free(void* ptr) {
  if (ptr) KILN_TRY_CUDA(cudaFree(ptr), "kiln_free");
  return KILN_OK;
}

KILN_API kiln_status kiln_host_alloc(uint64_t bytes, void** out) {
  const char* where = "kiln_host_alloc";
  if (!out) return fail(KILN_INVALID_ARGUMENT, "%s: out is NULL", where);
  *out = nullptr;
  if (bytes == 0) return KILN_OK;
  KILN_TRY_CUDA(cudaHostAlloc(out, bytes, cudaHostAllocPortable), where);
  return KILN_OK;
}

KILN_API kiln_status kiln_host_free(void* ptr) {
  if (ptr) KILN_TRY_CUDA(cudaFreeHost(ptr), "kiln_host_free");
  return KILN_OK;
}

KILN_API kiln_status kiln_memcpy(void* dst, const void* src, uint64_t bytes) {
  if (bytes == 0) return KILN_OK;
  if (!dst || !src) return fail(KILN_INVALID_ARGUMENT, "kiln_memcpy: NULL pointer");
  KILN_TRY_CUDA(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault), "kiln_memcpy");
  return KILN_OK;
}

KILN_API kiln_status kiln_memcpy_async(void* dst, const void* src, uint64_t bytes, kiln_stream s) {
  const char* where = "kiln_memcpy_async";
  if (bytes == 0) return KILN_OK;
  if (!dst || !src || !s) return fail(KILN_INVALID_ARGUMENT, "%s: NULL pointer or stream", where);
  KILN_TRY(kiln::use_device(s->device, where));
  KILN_TRY_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s->stream), where);
  return KILN_OK;
}

KILN_API kiln_status kiln_memset_async(void* dst, int32_t byte_value, uint64_t bytes, kiln_stream s) {
  const char* where = "kiln_memset_async";
  if (bytes == 0) return KILN_OK;
  if (!dst || !s) return fail(KILN_INVALID_ARGUMENT, "%s: NULL pointer or stream", where);
  KILN_TRY(kiln::use_device(s->device, where));
  KILN_TRY_CUDA(cudaMemsetAsync(dst, byte_value, bytes, s->stream), where);
  return KILN_OK;
}

KILN_API kiln_status kiln_stream_create(int32_t device, kiln_stream* out) {
  const char* where = "kiln_stream_create";
  if (!out) return fail(KILN_INVALID_ARGUMENT, "%s: out is NULL", where);
  *out = nullptr;
  KILN_TRY(kiln::use_device(device, where));
  cudaStream_t s;
  KILN_TRY_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), where);
  kiln_stream h = new (std::nothrow) kiln_stream_s{s, device};
  if (!h) {
    cudaStreamDestroy(s);
    return fail(KILN_HOST_OUT_OF_MEMORY, "%s: out of host memory", where);
  }
  *out = h;
  return KILN_OK;
}

KILN_API kiln_status kiln_stream_destroy(kiln_stream s) {
  if (!s) return KILN_OK;
  cudaError_t e = cudaStreamDestroy(s->stream);
  delete s;
  if (e != cudaSuccess) return kiln::cuda_fail(e, "kiln_stream_destroy");
  return KILN_OK;
}

KILN_API kiln_status kiln_stream_synchronize(kiln_stream s) {
  if (!s) return fail(KILN_INVALID_ARGUMENT, "kiln_stream_synchronize: stream is NULL");
  KILN_TRY_CUDA(cudaStreamSynchronize(s->stream), "kiln_stream_synchronize");
  return KILN_OK;
}

KILN_API kiln_status kiln_stream_query(kiln_stream s, int32_t* done) {
  if (!s || !done) return fail(KILN_INVALID_ARGUMENT, "kiln_stream_query: NULL argument");
  cudaError_t e = cudaStreamQuery(s->stream);
  if (e == cudaErrorNotReady) {
    (void)cudaGetLastError();
    *done = 0;
    return KILN_OK;
  }
  KILN_TRY_CUDA(e, "kiln_stream_query");
  *done = 1;
  return KILN_OK;
}

KILN_API kiln_status kiln_event_create(int32_t device, int32_t timing, kiln_event* out) {
  const char* where = "kiln_event_create";
  if (!out) return fail(KILN_INVALID_ARGUMENT, "%s: out is NULL", where);
  *out = nullptr;
  KILN_TRY(kiln::use_device(device, where));
  cudaEvent_t ev;
  KILN_TRY_CUDA(cudaEventCreateWithFlags(&ev, timing ? cudaEventDefault : cudaEventDisableTiming),
                where);
  kiln_event h = new (std::nothrow) kiln_event_s{ev, device};
  if (!h) {
    cudaEventDestroy(ev);
    return fail(KILN_HOST_OUT_OF_MEMORY, "%s: out of host memory", where);
  }
  *out = h;
  return KILN_OK;
}

KILN_API kiln_status kiln_event_destroy(kiln_event ev) {
  if (!ev) return KILN_OK;
  cudaError_t e = cudaEventDestroy(ev->event);
  delete ev;
  if (e != cudaSuccess) return kiln::cuda_fail(e, "kiln_event_destroy");
  return KILN_OK;
}

KILN_API kiln_status kiln_event_record(kiln_event ev, kiln_stream s) {
  if (!ev || !s) return fail(KILN_INVALID_ARGUMENT, "kiln_event_record: NULL event or stream");
  KILN_TRY_CUDA(cudaEventRecord(ev->event, s->stream), "kiln_event_record");
  return KILN_OK;
}

KILN_API kiln_status kiln_event_synchronize(kiln_event ev) {
  if (!ev) return fail(KILN_INVALID_ARGUMENT, "kiln_event_synchronize: event is NULL");
  KILN_TRY_CUDA(cudaEventSynchronize(ev->event), "kiln_event_synchronize");
  return KILN_OK;
}

KILN_API kiln_status kiln_event_elapsed_ms(kiln_event start, kiln_event end, float* ms) {
  if (!start || !end || !ms) return fail(KILN_INVALID_ARGUMENT, "kiln_event_elapsed_ms: NULL argument");
  KILN_TRY_CUDA(cudaEventElapsedTime(ms, start->event, end->event), "kiln_event_elapsed_ms");
  return KILN_OK;
}

KILN_API kiln_status kiln_stream_begin_capture(kiln_stream s) {
  const char* where = "kiln_stream_begin_capture";
  if (!s) return fail(KILN_INVALID_ARGUMENT, "%s: stream is NULL", where);
  KILN_TRY(kiln::use_device(s->device, where));
  // Thread-local mode: other threads' CUDA calls (other contexts, Deno's worker threads) are
  // unaffected by this capture.
  KILN_TRY_CUDA(cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal), where);
  return KILN_OK;
}

KILN_API kiln_status kiln_stream_end_capture(kiln_stream s, kiln_graph* out) {
  const char* where = "kiln_stream_end_capture";
  if (!s || !out) return fail(KILN_INVALID_ARGUMENT, "%s: NULL argument", where);
  *out = nullptr;
  cudaGraph_t graph = nullptr;
  KILN_TRY_CUDA(cudaStreamEndCapture(s->stream, &graph), where);
  cudaGraphExec_t exec = nullptr;
  cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) return kiln::cuda_fail(e, "kiln_stream_end_capture (instantiate)");
  // Uploading now keeps the first replay as cheap as the later ones.
  e = cudaGraphUpload(exec, s->stream);
  if (e != cudaSuccess) {
    cudaGraphExecDestroy(exec);
    return kiln::cuda_fail(e, "kiln_stream_end_capture (upload)");
  }
  kiln_graph h = new (std::nothrow) kiln_graph_s{exec, s->device};
  if (!h) {
    cudaGraphExecDestroy(exec);
    return fail(KILN_HOST_OUT_OF_MEMORY, "%s: out of host memory", where);
  }
  *out = h;
  return KILN_OK;
}

KILN_API kiln_status kiln_graph_launch(kiln_graph g, kiln_stream s) {
  if (!g || !s) return fail(KILN_INVALID_ARGUMENT, "kiln_graph_launch: NULL graph or stream");
  KILN_TRY_CUDA(cudaGraphLaunch(g->exec, s->stream), "kiln_graph_launch");
  return KILN_OK;
}

KILN_API kiln_status kiln_graph_destroy(kiln_graph g) {
  if (!g) return KILN_OK;
  cudaError_t e = cudaGraphExecDestroy(g->exec);
  delete g;
  if (e != cudaSuccess) return kiln::cuda_fail(e, "kiln_graph_destroy");
  return KILN_OK;
}

}  // extern "C"
