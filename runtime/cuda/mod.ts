/**
 * The CUDA backend entry point, loaded on demand by `runtime/device.ts`. The native library,
 * its FFI bindings and the backend over them are the subject of the GPU work; until they land
 * this module exports no `createCudaBackend`, and device selection reports that clearly.
 */
export {};
