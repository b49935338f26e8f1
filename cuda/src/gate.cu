// Gates: a one-thread kernel that holds a stream until the host sets a flag in mapped pinned
// memory, so that work enqueued behind it runs back to back (see kiln.h).
#include <new>

#include "common.cuh"

struct kiln_gate_s {
  int* host;    // mapped, page-locked
  int* device;  // the same word as the GPU sees it
};

namespace {

__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void gate_wait(const volatile int* flag) {
  const unsigned long long start = global_ns();
  while (*flag == 0) {
    __nanosleep(500);
    if (global_ns() - start > 1000000000ull) break;  // never hold a stream longer than 1 s
  }
}

}  // namespace

extern "C" {

KILN_API kiln_status kiln_gate_create(kiln_gate* out) {
  const char* where = "kiln_gate_create";
  if (!out) return kiln::fail(KILN_INVALID_ARGUMENT, "%s: out is NULL", where);
  *out = nullptr;
  void* host = nullptr;
  KILN_TRY_CUDA(cudaHostAlloc(&host, sizeof(int), cudaHostAllocMapped | cudaHostAllocPortable),
                where);
  void* device = nullptr;
  cudaError_t e = cudaHostGetDevicePointer(&device, host, 0);
  if (e != cudaSuccess) {
    cudaFreeHost(host);
    return kiln::cuda_fail(e, where);
  }
  *(volatile int*)host = 1;
  kiln_gate g = new (std::nothrow) kiln_gate_s{(int*)host, (int*)device};
  if (!g) {
    cudaFreeHost(host);
    return kiln::fail(KILN_HOST_OUT_OF_MEMORY, "%s: out of host memory", where);
  }
  *out = g;
  return KILN_OK;
}

KILN_API kiln_status kiln_gate_destroy(kiln_gate g) {
  if (!g) return KILN_OK;
  __atomic_store_n(g->host, 1, __ATOMIC_SEQ_CST);
  cudaError_t e = cudaFreeHost(g->host);
  delete g;
  if (e != cudaSuccess) return kiln::cuda_fail(e, "kiln_gate_destroy");
  return KILN_OK;
}

KILN_API kiln_status kiln_gate_close(kiln_gate g, kiln_stream s) {
  const char* where = "kiln_gate_close";
  if (!g || !s) return kiln::fail(KILN_INVALID_ARGUMENT, "%s: NULL gate or stream", where);
  KILN_TRY(kiln::use_device(s->device, where));
  kiln::clear_stale_error();
  __atomic_store_n(g->host, 0, __ATOMIC_SEQ_CST);
  gate_wait<<<1, 1, 0, s->stream>>>(g->device);
  kiln_status st = kiln::check_launch(where);
  if (st != KILN_OK) __atomic_store_n(g->host, 1, __ATOMIC_SEQ_CST);
  return st;
}

KILN_API kiln_status kiln_gate_open(kiln_gate g) {
  if (!g) return kiln::fail(KILN_INVALID_ARGUMENT, "kiln_gate_open: gate is NULL");
  __atomic_store_n(g->host, 1, __ATOMIC_SEQ_CST);
  return KILN_OK;
}

}  // extern "C"
