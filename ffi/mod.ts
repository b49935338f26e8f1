/** The FFI layer over libkiln.so (used by runtime/cuda only). */
export {
  check,
  checkAsync,
  lastError,
  layoutMismatches,
  libraryPath,
  loadLibrary,
  type NativeLibrary,
  openLibrary,
  statusString,
} from "./library.ts";
export {
  deviceCount,
  type DeviceProps,
  deviceProps,
  gemmWorkspaceBytes,
  memInfo,
} from "./device.ts";
export { DeviceBuffer, PinnedBuffer } from "./memory.ts";
export { Event, Gate, Graph, Stream } from "./stream.ts";
export { StructLayout } from "./_layout.ts";
export * from "./structs.ts";
export { ABI_VERSION, STATUS, SYMBOLS } from "./symbols.ts";
export * from "./tactics.ts";
