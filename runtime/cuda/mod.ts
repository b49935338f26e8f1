/**
 * The CUDA backend entry point, loaded on demand by runtime/device.ts: opens libkiln.so,
 * checks that the device exists, and returns a Backend for it.
 */
import { KilnError } from "../../errors.ts";
import { deviceCount, deviceProps, loadLibrary, type NativeLibrary } from "../../ffi/mod.ts";
import type { Backend } from "../backend.ts";
import { CudaBackend, type CudaBackendOptions } from "./backend.ts";

export { CudaBackend, type CudaBackendOptions, CudaEngine } from "./backend.ts";
export { CUDA_KERNELS } from "./kernels.ts";

/** A backend on `cuda:<ordinal>`; DEVICE_UNAVAILABLE without a library, a driver or that GPU. */
export function createCudaBackend(
  ordinal = 0,
  options: CudaBackendOptions = {},
): Promise<Backend> {
  let lib: NativeLibrary;
  try {
    lib = loadLibrary();
  } catch (e) {
    return Promise.reject(
      new KilnError("DEVICE_UNAVAILABLE", (e as Error).message, { cause: e }),
    );
  }
  const { count, reason } = deviceCount(lib);
  if (count === 0) {
    return Promise.reject(
      new KilnError(
        "DEVICE_UNAVAILABLE",
        `no CUDA device is available${reason ? ` (${reason})` : ""}`,
      ),
    );
  }
  if (!(Number.isInteger(ordinal) && ordinal >= 0 && ordinal < count)) {
    return Promise.reject(
      new KilnError(
        "DEVICE_UNAVAILABLE",
        `cuda:${ordinal} does not exist: this machine has ${count} CUDA device(s)`,
      ),
    );
  }
  return Promise.resolve(new CudaBackend(lib, deviceProps(lib, ordinal), options));
}
