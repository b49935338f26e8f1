/**
 * Tactic entry points of kiln.h: the tactic kinds, the optional vendor libraries (opened by
 * absolute path, never linked) and the workspace / algorithm queries the builder's tuner asks.
 */
import { check, lastError, type NativeLibrary } from "./library.ts";
import { STATUS } from "./symbols.ts";

/** KILN_TACTIC_* (kiln.h). */
export const TACTIC_KIND = {
  default: 0,
  igemm: 1,
  pointwise: 2,
  direct: 3,
  gemm: 4,
  cudnn: 5,
  cublaslt: 6,
} as const;
export type TacticKind = keyof typeof TACTIC_KIND;

/** KILN_VENDOR_* (kiln.h). */
export const VENDOR = { cublaslt: 1, cudnn: 2 } as const;
export type Vendor = keyof typeof VENDOR;

/** Bytes of one cuBLASLt algorithm (cublasLtMatmulAlgo_t: 8 words). */
export const CUBLASLT_ALGO_WORDS = 8;

function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** Opens a vendor library; throws a KilnError with dlopen's message when it cannot. */
export function vendorLoad(lib: NativeLibrary, vendor: Vendor, path: string): void {
  check(lib, lib.symbols.kiln_vendor_load(VENDOR[vendor], cString(path)), `opening ${path}`);
}

export function vendorLoaded(lib: NativeLibrary, vendor: Vendor): boolean {
  const out = new Int32Array(1);
  check(lib, lib.symbols.kiln_vendor_loaded(VENDOR[vendor], out), "kiln_vendor_loaded");
  return out[0] === 1;
}

/** A tactic as the native side takes it. */
export interface NativeTactic {
  kind: TacticKind;
  variant: number;
  splits: number;
  /** The cuBLASLt algorithm (8 words) for kind "cublaslt". */
  algo?: BigUint64Array<ArrayBuffer>;
}

/**
 * Workspace bytes a tactic needs for the packed parameters `params` of a layer family, or the
 * reason it does not apply (the native message of a KILN_UNSUPPORTED status).
 */
export function tacticWorkspace(
  lib: NativeLibrary,
  family: "convolution" | "fully_connected",
  params: Uint8Array<ArrayBuffer>,
  t: NativeTactic,
  device: number,
): { bytes: number } | { unsupported: string } {
  const out = new BigUint64Array(1);
  const kind = TACTIC_KIND[t.kind];
  const st = family === "convolution"
    ? lib.symbols.kiln_tactic_convolution_workspace(params, kind, t.variant, t.splits, device, out)
    : lib.symbols.kiln_tactic_fully_connected_workspace(
      params,
      kind,
      t.variant,
      t.splits,
      t.algo ?? null,
      device,
      out,
    );
  if (st === STATUS.UNSUPPORTED) return { unsupported: lastError(lib) };
  check(lib, st, `kiln_tactic_${family}_workspace`);
  return { bytes: Number(out[0]) };
}

/** Enqueues one tactic on `stream` (a raw kiln_stream handle). */
export function tacticLaunch(
  lib: NativeLibrary,
  family: "convolution" | "fully_connected",
  params: Uint8Array<ArrayBuffer>,
  t: NativeTactic,
  stream: Deno.PointerValue,
): number {
  const kind = TACTIC_KIND[t.kind];
  return family === "convolution"
    ? lib.symbols.kiln_tactic_convolution_launch(params, kind, t.variant, t.splits, stream)
    : lib.symbols.kiln_tactic_fully_connected_launch(
      params,
      kind,
      t.variant,
      t.splits,
      t.algo ?? null,
      stream,
    );
}

/** cuBLASLt's heuristic algorithms for a fully connected problem, best first. */
export function cublasLtAlgorithms(
  lib: NativeLibrary,
  params: Uint8Array<ArrayBuffer>,
  device: number,
  maxWorkspace: number,
  maxCount: number,
): { algo: BigUint64Array<ArrayBuffer>; workspace: number }[] | { unsupported: string } {
  const algos = new BigUint64Array(maxCount * CUBLASLT_ALGO_WORDS);
  const ws = new BigUint64Array(maxCount);
  const count = new Int32Array(1);
  const st = lib.symbols.kiln_tactic_cublaslt_algorithms(
    params,
    device,
    BigInt(maxWorkspace),
    maxCount,
    algos,
    ws,
    count,
  );
  if (st === STATUS.UNSUPPORTED) return { unsupported: lastError(lib) };
  check(lib, st, "kiln_tactic_cublaslt_algorithms");
  return Array.from({ length: count[0] }, (_, i) => ({
    algo: algos.slice(i * CUBLASLT_ALGO_WORDS, (i + 1) * CUBLASLT_ALGO_WORDS),
    workspace: Number(ws[i]),
  }));
}
