/**
 * Loading libkiln.so: discovery ($KILN_LIB, then cuda/build/libkiln.so next to this checkout),
 * the ABI handshake (version and every struct layout), and native status → KilnError.
 */
import { KilnError } from "../errors.ts";
import type { StructLayout } from "./_layout.ts";
import { ALL_STRUCTS } from "./structs.ts";
import { ABI_VERSION, type KilnSymbols, STATUS, SYMBOLS } from "./symbols.ts";

export interface NativeLibrary {
  readonly path: string;
  readonly symbols: KilnSymbols;
}

let loaded: NativeLibrary | undefined;

/** Where the library is looked for: $KILN_LIB, else the local build. */
export function libraryPath(): string {
  let env: string | undefined;
  try {
    env = Deno.env.get("KILN_LIB");
  } catch {
    // no --allow-env: use the local build
  }
  return env || new URL("../cuda/build/libkiln.so", import.meta.url).pathname;
}

/** Opens the library once per process (from `libraryPath()`) and checks its ABI. */
export function loadLibrary(): NativeLibrary {
  loaded ??= openLibrary(libraryPath());
  return loaded;
}

/**
 * Opens the library at `path` and checks that it speaks this ABI (version and every struct
 * layout); a failure is a NATIVE_ERROR whose `cause` is the loader's own error.
 */
export function openLibrary(path: string): NativeLibrary & { close(): void } {
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen(path, SYMBOLS);
  } catch (e) {
    throw new KilnError(
      "NATIVE_ERROR",
      `failed to load the native library ${path}: ${(e as Error).message} ` +
        `(build it with "deno task build:native", or point KILN_LIB at a libkiln.so)`,
      { cause: e, file: path },
    );
  }
  const version = lib.symbols.kiln_abi_version();
  if (version !== ABI_VERSION) {
    lib.close();
    throw new KilnError(
      "NATIVE_ERROR",
      `${path} speaks C ABI version ${version}, but this Kiln needs version ${ABI_VERSION}: ` +
        `rebuild it ("deno task build:native") or point KILN_LIB at a matching build`,
      { file: path },
    );
  }
  const native = { path, symbols: lib.symbols, close: () => lib.close() };
  const problems = ALL_STRUCTS.flatMap((s) => layoutMismatches(native, s));
  if (problems.length) {
    lib.close();
    throw new KilnError(
      "NATIVE_ERROR",
      `${path}: struct layouts differ from ffi/structs.ts: ${problems.join("; ")}`,
      { file: path },
    );
  }
  return native;
}

/** Differences between a TypeScript struct mirror and the library's compiled layout. */
export function layoutMismatches(lib: NativeLibrary, s: StructLayout): string[] {
  const out = new BigInt64Array(1);
  const query = (field: number): number => {
    const st = lib.symbols.kiln_abi_layout(s.id, field, out);
    if (st !== STATUS.OK) return -1;
    return Number(out[0]);
  };
  const problems: string[] = [];
  const size = query(-1);
  if (size < 0) return [`${s.cName}: the library does not know struct id ${s.id}`];
  if (size !== s.size) problems.push(`${s.cName}: size ${size} in C, ${s.size} in TS`);
  const count = query(-2);
  if (count !== s.fields.length) {
    problems.push(`${s.cName}: ${count} fields in C, ${s.fields.length} in TS`);
  }
  s.fields.forEach((f, i) => {
    if (i >= count) return;
    const off = query(i);
    if (off !== f.offset) {
      problems.push(`${s.cName}.${f.name} (field ${i}): offset ${off} in C, ${f.offset} in TS`);
    }
  });
  return problems;
}

/** The calling thread's last native error message. */
export function lastError(lib: NativeLibrary): string {
  const p = lib.symbols.kiln_last_error();
  return p ? Deno.UnsafePointerView.getCString(p) : "";
}

/** A status's static description (usable for calls that ran on another thread). */
export function statusString(lib: NativeLibrary, status: number): string {
  const p = lib.symbols.kiln_status_string(status);
  return p ? Deno.UnsafePointerView.getCString(p) : `status ${status}`;
}

/**
 * Throws a KilnError for a failed blocking call: CUDA_ERROR (with the CUDA error name) for CUDA
 * failures, NATIVE_ERROR otherwise, with the library's own message.
 */
export function check(lib: NativeLibrary, status: number, what: string): void {
  if (status === STATUS.OK) return;
  throw statusError(status, what, lastError(lib) || statusString(lib, status));
}

/** As `check`, for a `nonblocking` call (its thread-local message is on a worker thread). */
export function checkAsync(lib: NativeLibrary, status: number, what: string): void {
  if (status === STATUS.OK) return;
  throw statusError(status, what, `${what}: ${statusString(lib, status)}`);
}

function statusError(status: number, what: string, message: string): KilnError {
  const code = status >= STATUS.CUDA_ERROR_BASE ? "CUDA_ERROR" : "NATIVE_ERROR";
  return new KilnError(code, `${what} failed: ${message}`);
}
