/** Device queries: count (0 without a GPU or driver), properties, free memory. */
import { KilnError } from "../errors.ts";
import { check, lastError, type NativeLibrary } from "./library.ts";
import { DEVICE_PROPS } from "./structs.ts";

export interface DeviceProps {
  ordinal: number;
  name: string;
  /** Compute capability, e.g. 9.0 → major 9, minor 0. */
  major: number;
  minor: number;
  /** "sm_90" */
  arch: string;
  multiprocessors: number;
  totalMemory: number;
  l2CacheBytes: number;
  driverVersion: number;
  runtimeVersion: number;
}

/** Number of CUDA devices, and why it is 0 when CUDA reports a reason (no driver, no GPU). */
export function deviceCount(lib: NativeLibrary): { count: number; reason: string } {
  const out = new Int32Array(1);
  check(lib, lib.symbols.kiln_device_count(out), "kiln_device_count");
  return { count: out[0], reason: out[0] === 0 ? lastError(lib) : "" };
}

export function deviceProps(lib: NativeLibrary, ordinal: number): DeviceProps {
  const { count } = deviceCount(lib);
  if (!(Number.isInteger(ordinal) && ordinal >= 0 && ordinal < count)) {
    throw new KilnError(
      "DEVICE_UNAVAILABLE",
      `cuda:${ordinal} does not exist (${count} CUDA device(s))`,
    );
  }
  const buf = new Uint8Array(DEVICE_PROPS.size);
  check(lib, lib.symbols.kiln_device_props_get(ordinal, buf), "kiln_device_props_get");
  const n = (f: Parameters<typeof DEVICE_PROPS.readNumber>[1]) => DEVICE_PROPS.readNumber(buf, f);
  const major = n("major"), minor = n("minor");
  return {
    ordinal,
    name: DEVICE_PROPS.readString(buf, "name"),
    major,
    minor,
    arch: `sm_${major}${minor}`,
    multiprocessors: n("multiprocessors"),
    totalMemory: n("total_memory"),
    l2CacheBytes: n("l2_cache_bytes"),
    driverVersion: n("driver_version"),
    runtimeVersion: n("runtime_version"),
  };
}

/** Free and total device memory in bytes (cudaMemGetInfo). */
export function memInfo(lib: NativeLibrary, ordinal: number): { free: number; total: number } {
  const free = new BigUint64Array(1), total = new BigUint64Array(1);
  check(lib, lib.symbols.kiln_mem_get_info(ordinal, free, total), "kiln_mem_get_info");
  return { free: Number(free[0]), total: Number(total[0]) };
}

/** Bytes of scratch a context should own for split-K in the GEMM-based kernels. */
export function gemmWorkspaceBytes(lib: NativeLibrary, ordinal: number): number {
  const out = new BigUint64Array(1);
  check(lib, lib.symbols.kiln_gemm_workspace_bytes(ordinal, out), "kiln_gemm_workspace_bytes");
  return Number(out[0]);
}
