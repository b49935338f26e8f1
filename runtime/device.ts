/** Device selection: "auto" | "cpu" | "cuda" | "cuda:N". */
import { KilnError } from "../errors.ts";
import type { Backend } from "./backend.ts";
import { CpuBackend } from "./cpu/backend.ts";
import type { Logger } from "./logger.ts";

export type DeviceSpec = "auto" | "cpu" | "cuda" | `cuda:${number}`;

export function parseDevice(device: string): { kind: "auto" | "cpu" | "cuda"; ordinal: number } {
  if (device === "auto" || device === "cpu") return { kind: device, ordinal: 0 };
  const m = /^cuda(?::(\d+))?$/.exec(device);
  if (m) return { kind: "cuda", ordinal: m[1] ? Number(m[1]) : 0 };
  throw new KilnError(
    "INVALID_ARGUMENT",
    `device must be "auto", "cpu", "cuda" or "cuda:N"; got ${JSON.stringify(device)}`,
  );
}

/**
 * The CUDA backend is loaded on demand (its module opens the native library). Until it is
 * present, asking for "cuda" is a clear error and "auto" falls back to the CPU with a warning.
 */
async function loadCuda(ordinal: number): Promise<Backend> {
  let mod: { createCudaBackend?: (ordinal: number) => Promise<Backend> };
  try {
    mod = await import("./cuda/mod.ts");
  } catch (e) {
    throw new KilnError(
      "DEVICE_UNAVAILABLE",
      `the CUDA backend could not be loaded: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (!mod.createCudaBackend) {
    throw new KilnError("DEVICE_UNAVAILABLE", "this build of Kiln has no CUDA backend");
  }
  return await mod.createCudaBackend(ordinal);
}

export async function selectBackend(device: string, logger: Logger): Promise<Backend> {
  const d = parseDevice(device);
  if (d.kind === "cpu") return new CpuBackend();
  if (d.kind === "cuda") return await loadCuda(d.ordinal);
  try {
    return await loadCuda(0);
  } catch (e) {
    const why = e instanceof KilnError ? e.message : String(e);
    logger.warning(`no usable CUDA device (${why}); running on the CPU`);
    return new CpuBackend();
  }
}
