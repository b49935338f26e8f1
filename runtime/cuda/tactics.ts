/**
 * Tactics on the CUDA backend: the alternative implementations a Convolution or FullyConnected
 * layer may run (chosen by the builder's tuner, builder/tune, and recorded by name in the plan's
 * `tactic` field), their names, the kernel-table wrapper that dispatches on them, and the run-time
 * discovery of the optional vendor libraries (cuBLASLt, cuDNN).
 *
 * Tactic names: `default` (the kind's own kernel, also when the field is absent),
 * `igemm-<tile>[-k<splits>]`, `pointwise-<tile>[-k<splits>]`, `direct`, `gemm-<tile>[-k<splits>]`,
 * `cudnn-<algorithm>`, `cublaslt-<128 hex digits of the algorithm>`; any may end in `@ws=<bytes>`,
 * the workspace it needs at the plan's largest batch (the context allocates the largest).
 */
import { KilnError } from "../../errors.ts";
import {
  CUBLASLT_ALGO_WORDS,
  loadLibrary,
  type NativeLibrary,
  type NativeTactic,
  tacticLaunch,
  type Vendor,
  vendorLoad,
  vendorLoaded,
} from "../../ffi/mod.ts";
import type { ManifestLayer } from "../../plan/mod.ts";
import type { CudaKernel } from "./_launch.ts";

export type TacticFamily = "convolution" | "fully_connected";

/** Layer kinds with tactics, their native family and the launch symbol their entry calls. */
export const TACTIC_FAMILIES: Record<
  string,
  { family: TacticFamily; symbol: "kiln_launch_convolution" | "kiln_launch_fully_connected" }
> = {
  Convolution: { family: "convolution", symbol: "kiln_launch_convolution" },
  FullyConnected: { family: "fully_connected", symbol: "kiln_launch_fully_connected" },
};

/**
 * Whether every tactic of a layer kind reads and writes through the batch strides the backend
 * gives views (plan/views.ts): Convolution's do (conv_tactics.cu, cuDNN's descriptors);
 * FullyConnected takes no views.
 */
export function stridedTactics(kind: string): boolean {
  return kind === "Convolution";
}

/** Tile shapes by native variant index (_tactics.cuh). */
export const TILES = ["128x128", "128x64", "64x128", "64x64", "32x32"] as const;
/** cuDNN forward algorithms by cudnnConvolutionFwdAlgo_t value. */
export const CUDNN_ALGOS = [
  "implicit-gemm",
  "implicit-precomp-gemm",
  "gemm",
  "direct",
  "fft",
  "fft-tiling",
  "winograd",
  "winograd-nonfused",
] as const;

export interface Tactic extends NativeTactic {
  name: string;
  /** Workspace bytes at the plan's largest batch. */
  workspace: number;
}

const parsed = new Map<string, Tactic>();

/** The tactic a name stands for; a malformed name is a PLAN_INVALID error. */
export function parseTactic(name: string): Tactic {
  const hit = parsed.get(name);
  if (hit) return hit;
  const bad = (why: string) =>
    new KilnError("PLAN_INVALID", `invalid plan: tactic "${name}": ${why}`);
  const [base, ...rest] = name.split("@");
  let workspace = 0;
  for (const r of rest) {
    const m = /^ws=(\d+)$/.exec(r);
    if (!m) throw bad(`unknown suffix "@${r}"`);
    workspace = Number(m[1]);
  }
  let t: Omit<Tactic, "name" | "workspace">;
  let m: RegExpExecArray | null;
  if (base === "default") t = { kind: "default", variant: 0, splits: 1 };
  else if (base === "direct") t = { kind: "direct", variant: 0, splits: 1 };
  else if ((m = /^(igemm|pointwise|gemm)-(\d+x\d+)(?:-k(\d+))?$/.exec(base))) {
    const variant = (TILES as readonly string[]).indexOf(m[2]);
    if (variant < 0) throw bad(`no tile ${m[2]} (${TILES.join(", ")})`);
    const splits = m[3] ? Number(m[3]) : 1;
    if (!(splits >= 1 && splits <= 16)) throw bad(`${splits} K splits (1 to 16)`);
    t = { kind: m[1] as "igemm" | "pointwise" | "gemm", variant, splits };
  } else if ((m = /^cudnn-([a-z-]+)$/.exec(base))) {
    const variant = (CUDNN_ALGOS as readonly string[]).indexOf(m[1]);
    if (variant < 0) throw bad(`no cuDNN algorithm ${m[1]}`);
    t = { kind: "cudnn", variant, splits: 1 };
  } else if ((m = /^cublaslt-([0-9a-f]{128})$/.exec(base))) {
    const algo = new BigUint64Array(CUBLASLT_ALGO_WORDS);
    for (let i = 0; i < CUBLASLT_ALGO_WORDS; i++) {
      algo[i] = BigInt(`0x${m[1].slice(16 * i, 16 * i + 16)}`);
    }
    t = { kind: "cublaslt", variant: 0, splits: 1, algo };
  } else throw bad("not a known tactic");
  const tactic = { ...t, name, workspace };
  parsed.set(name, tactic);
  return tactic;
}

/** The name of a tactic (inverse of parseTactic). */
export function tacticName(t: NativeTactic, workspace = 0): string {
  const ws = workspace > 0 ? `@ws=${workspace}` : "";
  const k = t.splits > 1 ? `-k${t.splits}` : "";
  switch (t.kind) {
    case "default":
    case "direct":
      return t.kind + ws;
    case "cudnn":
      return `cudnn-${CUDNN_ALGOS[t.variant]}${ws}`;
    case "cublaslt":
      return `cublaslt-${[...t.algo!].map((w) => w.toString(16).padStart(16, "0")).join("")}${ws}`;
    default:
      return `${t.kind}-${TILES[t.variant]}${k}${ws}`;
  }
}

/** A short label for logs: cuBLASLt's opaque 64-byte algorithm as a 32-bit FNV-1a digest. */
export function tacticLabel(name: string): string {
  const m = /^cublaslt-([0-9a-f]{128})(@.*)?$/.exec(name);
  if (!m) return name;
  let h = 0x811c9dc5;
  for (let i = 0; i < m[1].length; i++) h = Math.imul(h ^ m[1].charCodeAt(i), 0x01000193) >>> 0;
  return `cublaslt#${h.toString(16).padStart(8, "0")}${m[2] ?? ""}`;
}

/** The largest workspace any layer's tactic needs (0 when none names one). */
export function tacticWorkspaceBytes(layers: readonly ManifestLayer[]): number {
  let most = 0;
  for (const l of layers) if (l.tactic) most = Math.max(most, parseTactic(l.tactic).workspace);
  return most;
}

const redirected = new WeakMap<NativeLibrary, Map<string, NativeLibrary>>();

/**
 * The library as `base.launch` should see it for tactic `t`: the same symbols, except the
 * family's launch, which runs the tactic on the parameters the entry packed. The entry's own
 * packing is reused as is, so a field added to its struct reaches every tactic.
 */
function redirect(lib: NativeLibrary, kind: string, t: Tactic): NativeLibrary {
  let byName = redirected.get(lib);
  if (!byName) redirected.set(lib, byName = new Map());
  const hit = byName.get(t.name);
  if (hit) return hit;
  const { family, symbol } = TACTIC_FAMILIES[kind];
  const symbols = Object.create(lib.symbols, {
    [symbol]: {
      value: (params: Uint8Array<ArrayBuffer>, stream: Deno.PointerValue) =>
        tacticLaunch(lib, family, params, t, stream),
    },
  });
  const out: NativeLibrary = { path: lib.path, symbols };
  byName.set(t.name, out);
  return out;
}

/** A kernel-table entry that runs `layer.tactic` when the plan names one, else `base`. */
export function withTactics(base: CudaKernel, kind: string): CudaKernel {
  return {
    ...base,
    unsupported(layer, manifest) {
      const why = base.unsupported?.(layer, manifest);
      if (why || !layer.tactic) return why;
      let t: Tactic;
      try {
        t = parseTactic(layer.tactic);
      } catch (e) {
        return (e as Error).message;
      }
      if (t.kind === "cudnn" || t.kind === "cublaslt") {
        const v = t.kind === "cudnn" ? "cudnn" : "cublaslt";
        const status = ensureVendor(loadLibrary(), v);
        if (!status.loaded) {
          return `tactic ${tacticLabel(t.name)} needs ${
            VENDOR_NAMES[v]
          }, which is not available here (${status.reason}); rebuild the plan on this machine`;
        }
      }
      return undefined;
    },
    launch(a) {
      const t = a.layer.tactic ? parseTactic(a.layer.tactic) : undefined;
      if (!t || t.kind === "default") return base.launch(a);
      base.launch({ ...a, lib: redirect(a.lib, kind, t) });
    },
  };
}

// ---- Optional vendor libraries ----

const VENDOR_NAMES: Record<Vendor, string> = { cublaslt: "cuBLASLt", cudnn: "cuDNN" };
/** Environment overrides: an absolute path, or "0" / "" to never use the library. */
export const VENDOR_ENV: Record<Vendor, string> = {
  cublaslt: "KILN_CUBLASLT",
  cudnn: "KILN_CUDNN",
};
/** Where the libraries lie under PyTorch's site-packages/nvidia. */
const VENDOR_FILES: Record<Vendor, string> = {
  cublaslt: "cu13/lib/libcublasLt.so.13",
  cudnn: "cudnn/lib/libcudnn.so.9",
};

const vendorStatus = new Map<Vendor, { loaded: boolean; path?: string; reason?: string }>();
let nvidiaDir: string | null | undefined;

/** site-packages/nvidia, asked of python3 once per process (null when there is none). */
function findNvidiaDir(): string | null {
  if (nvidiaDir !== undefined) return nvidiaDir;
  nvidiaDir = null;
  try {
    const r = new Deno.Command("python3", {
      args: ["-c", "import nvidia; print(list(nvidia.__path__)[0])"],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    const dir = new TextDecoder().decode(r.stdout).trim();
    if (r.success && dir.startsWith("/")) nvidiaDir = dir;
  } catch {
    // no python3, or no permission to run it
  }
  return nvidiaDir;
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Opens a vendor library once per process: the path in its environment variable, else PyTorch's
 * copy. Returns whether it is usable and, when not, why (for logs and load errors).
 */
export function ensureVendor(
  lib: NativeLibrary,
  vendor: Vendor,
): { loaded: boolean; path?: string; reason?: string } {
  const known = vendorStatus.get(vendor);
  if (known) return known;
  let status: { loaded: boolean; path?: string; reason?: string };
  let env: string | undefined;
  try {
    env = Deno.env.get(VENDOR_ENV[vendor]);
  } catch {
    env = undefined;
  }
  if (env === "0" || env === "") {
    status = { loaded: false, reason: `disabled by ${VENDOR_ENV[vendor]}=${env}` };
  } else {
    const dir = env ? undefined : findNvidiaDir();
    const path = env ?? (dir ? `${dir}/${VENDOR_FILES[vendor]}` : undefined);
    if (!path) {
      status = {
        loaded: false,
        reason: `${VENDOR_ENV[vendor]} is not set and python3 has no nvidia package`,
      };
    } else if (!path.startsWith("/") || !exists(path)) {
      status = { loaded: false, path, reason: `${path} is not an existing absolute path` };
    } else {
      try {
        if (!vendorLoaded(lib, vendor)) vendorLoad(lib, vendor, path);
        status = { loaded: true, path };
      } catch (e) {
        status = { loaded: false, path, reason: (e as Error).message };
      }
    }
  }
  vendorStatus.set(vendor, status);
  return status;
}
