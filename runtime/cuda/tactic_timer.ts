/**
 * Times a layer's tactics on the device for the builder's tuner (builder/tune): the layer's
 * real shapes at the plan's largest batch, its real weights, random inputs, the workspace limit.
 *
 * Each candidate is first run at a small batch and compared with the layer's default kernel
 * (normwise relative error ≤ 1e-3: FP32 sums in another order differ by ~1e-6, a wrong index
 * by ~1), so a tactic that computes something else is rejected, never chosen. It is then timed
 * with CUDA events around back-to-back launches held behind a gate (device time, no host gaps):
 * three launches to estimate, then as many as fit in ~4 ms (3 to 50), whose mean is the time.
 */
import { concreteDims, volume } from "../../dsl/ir/dims.ts";
import { bytesPerElement } from "../../dsl/ir/dtype.ts";
import { KilnError } from "../../errors.ts";
import {
  cublasLtAlgorithms,
  DeviceBuffer,
  Event,
  Gate,
  gemmWorkspaceBytes,
  type NativeLibrary,
  type NativeTactic,
  Stream,
  tacticWorkspace,
} from "../../ffi/mod.ts";
import type { Manifest, ManifestLayer } from "../../plan/mod.ts";
import { itemElements, viewByteOffset } from "../../plan/views.ts";
import type { CudaBackend } from "./backend.ts";
import { CUDA_KERNELS, type LaunchArgs, type LaunchTensor } from "./kernels.ts";
import { CUDNN_ALGOS, ensureVendor, TACTIC_FAMILIES, tacticName, TILES } from "./tactics.ts";

/** Largest normwise relative difference from the default kernel a tactic may show. */
export const TACTIC_TOLERANCE = 1e-3;
const TILE_M = [128, 128, 64, 64, 32], TILE_N = [128, 64, 128, 64, 32];
const SPLITS = [2, 4, 8, 16];
const CUBLASLT_CANDIDATES = 8;
/** Convolutions with more taps than this have no direct tactic (conv_tactics.cu). */
const DIRECT_MAX_TAPS = 256;

export interface TacticCandidates {
  tactics: string[];
  /** Tactics that do not apply, with the reason (logged verbosely). */
  skipped: { tactic: string; reason: string }[];
}

export type TacticTiming = { ms: number } | { rejected: string };

/** Layer kinds the tuner looks at. */
export function tunable(layer: ManifestLayer, m: Manifest): boolean {
  return Object.hasOwn(TACTIC_FAMILIES, layer.kind) && layer.precision === "fp32" &&
    [...layer.inputs, ...layer.outputs].every((t) => m.tensors[t].dtype === "float32") &&
    Object.values(layer.weights).every((w) => w.dtype === "float32");
}

export class CudaTacticTimer implements Disposable {
  readonly #lib: NativeLibrary;
  readonly #device: number;
  readonly #stream: Stream;
  readonly #gate: Gate;
  readonly #events: [Event, Event];
  readonly #weights: DeviceBuffer;
  /** Random inputs (read-only: every layer's inputs point into it), outputs, workspace. */
  readonly #inputs: DeviceBuffer;
  readonly #outputs: DeviceBuffer;
  readonly #workspace: DeviceBuffer;
  readonly #checkBatch: number;
  #reference = new Map<number, Float32Array>();

  /**
   * `workspaceLimit`: the most scratch memory a tactic may use (the build's workspaceBytes);
   * the default kernels' own split-K scratch is always provided.
   */
  constructor(
    readonly backend: CudaBackend,
    readonly manifest: Manifest,
    weights: Uint8Array,
    readonly workspaceLimit: number,
  ) {
    this.#lib = backend.lib;
    this.#device = backend.ordinal;
    const m = manifest, batch = m.maxBatchSize;
    this.#checkBatch = Math.min(batch, 2);
    let inputs = 0, outputs = 0;
    for (const l of m.layers.filter((l) => tunable(l, m))) {
      for (const t of l.inputs) inputs = Math.max(inputs, this.#extent(t, batch));
      for (const t of l.outputs) outputs = Math.max(outputs, this.#extent(t, batch));
    }
    const owned: Disposable[] = [];
    try {
      this.#stream = Stream.create(this.#lib, this.#device);
      owned.push(this.#stream);
      this.#gate = Gate.create(this.#lib);
      owned.push(this.#gate);
      this.#events = [Event.create(this.#lib, this.#device), Event.create(this.#lib, this.#device)];
      owned.push(...this.#events);
      this.#weights = DeviceBuffer.alloc(this.#lib, this.#device, weights.byteLength);
      owned.push(this.#weights);
      this.#weights.upload(weights);
      this.#inputs = DeviceBuffer.alloc(this.#lib, this.#device, inputs);
      owned.push(this.#inputs);
      this.#inputs.upload(randomFloats(inputs / 4, 0x9e3779b9));
      this.#outputs = DeviceBuffer.alloc(this.#lib, this.#device, outputs);
      owned.push(this.#outputs);
      this.#workspace = DeviceBuffer.alloc(
        this.#lib,
        this.#device,
        Math.max(workspaceLimit, gemmWorkspaceBytes(this.#lib, this.#device)),
      );
    } catch (e) {
      for (const o of owned.reverse()) o[Symbol.dispose]();
      throw e;
    }
  }

  /** What the tactics are keyed by besides the layer: the device, its driver and CUDA. */
  get deviceKey(): { name: string; arch: string; driver: number; runtime: number } {
    const p = this.backend.props;
    return { name: p.name, arch: p.arch, driver: p.driverVersion, runtime: p.runtimeVersion };
  }

  /**
   * Bytes from a buffer's start that a tensor reaches at `batch`. A view (a channel slice of a
   * wider tensor, plan/views.ts) is laid out as at run time: at its byte offset, one parent item
   * per batch item, so that tactics are timed (and their workspace measured) on the real strides.
   */
  #extent(t: number, batch: number): number {
    const d = this.manifest.tensors[t];
    const size = bytesPerElement(d.dtype);
    if (!d.view) return volume(concreteDims(d.dims, batch)) * size;
    const parent = this.manifest.tensors[d.view.of];
    return viewByteOffset({ ...d, view: d.view }) + batch * itemElements(parent.dims) * size;
  }

  #args(layer: ManifestLayer, batch: number, tactic?: string): LaunchArgs {
    const m = this.manifest;
    // As the backend hands them over (runtime/cuda/backend.ts), views with their batch stride.
    const tensor = (buf: DeviceBuffer) => (t: number): LaunchTensor => {
      const d = m.tensors[t];
      return {
        ptr: buf.at(d.view ? viewByteOffset({ ...d, view: d.view }) : 0),
        dims: concreteDims(d.dims, batch),
        dtype: d.dtype,
        batchStride: d.view ? itemElements(m.tensors[d.view.of].dims) : undefined,
      };
    };
    const weights: Record<string, Deno.PointerValue> = {};
    for (const [slot, ref] of Object.entries(layer.weights)) {
      weights[slot] = this.#weights.at(ref.offset);
    }
    return {
      lib: this.#lib,
      stream: this.#stream,
      layer: { ...layer, tactic },
      inputs: layer.inputs.map(tensor(this.#inputs)),
      outputs: layer.outputs.map(tensor(this.#outputs)),
      weights,
      workspace: { ptr: this.#workspace.at(0), bytes: this.#workspace.bytes },
      error: null, // convolution and fully connected report no data-dependent failures
    };
  }

  /** The parameter struct the layer's entry packs at the largest batch (nothing launched). */
  #params(layer: ManifestLayer): Uint8Array<ArrayBuffer> {
    const { symbol } = TACTIC_FAMILIES[layer.kind];
    let captured: Uint8Array<ArrayBuffer> | undefined;
    const symbols = Object.create(this.#lib.symbols, {
      [symbol]: {
        value: (p: Uint8Array<ArrayBuffer>) => {
          captured = p.slice();
          return 0;
        },
      },
    });
    const args = this.#args(layer, this.manifest.maxBatchSize);
    CUDA_KERNELS[layer.kind].launch({ ...args, lib: { path: this.#lib.path, symbols } });
    if (!captured) throw new KilnError("INTERNAL", `no parameters packed for "${layer.name}"`);
    return captured;
  }

  /** The tactics that apply to a layer and fit the workspace limit, default first. */
  candidates(layer: ManifestLayer, vendors: boolean): TacticCandidates {
    const { family } = TACTIC_FAMILIES[layer.kind];
    const params = this.#params(layer);
    const out: TacticCandidates = { tactics: ["default"], skipped: [] };
    const offer = (t: NativeTactic) => {
      const r = tacticWorkspace(this.#lib, family, params, t, this.#device);
      const name = tacticName(t);
      if ("unsupported" in r) out.skipped.push({ tactic: name, reason: r.unsupported });
      else if (r.bytes > this.workspaceLimit) {
        out.skipped.push({
          tactic: name,
          reason: `needs ${r.bytes} bytes of workspace, over the ${this.workspaceLimit}-byte limit`,
        });
      } else out.tactics.push(tacticName(t, r.bytes));
    };
    const sms = this.backend.props.multiprocessors;
    const gemmTactics = (
      kind: "igemm" | "pointwise" | "gemm",
      M: number,
      N: number,
      K: number,
      groups: number,
    ) => {
      TILES.forEach((_, variant) => {
        offer({ kind, variant, splits: 1 });
        const blocks = Math.ceil(M / TILE_M[variant]) * Math.ceil(N / TILE_N[variant]) * groups;
        // Splitting K only pays while the tiles alone leave multiprocessors idle.
        for (const splits of SPLITS) {
          if (blocks * splits > 2 * sms || splits * 2 > Math.ceil(K / 16)) break;
          offer({ kind, variant, splits });
        }
      });
    };
    const batch = this.manifest.maxBatchSize;
    if (layer.kind === "Convolution") {
      const a = layer.attrs as {
        kernel: [number, number];
        padding: [number, number];
        groups: number;
      };
      const x = concreteDims(this.manifest.tensors[layer.inputs[0]].dims, batch);
      const y = concreteDims(this.manifest.tensors[layer.outputs[0]].dims, batch);
      const M = y[1] / a.groups, N = y[0] * y[2] * y[3];
      const K = (x[1] / a.groups) * a.kernel[0] * a.kernel[1];
      gemmTactics("igemm", M, N, K, a.groups);
      if (a.kernel[0] === 1 && a.kernel[1] === 1 && a.padding[0] === 0 && a.padding[1] === 0) {
        gemmTactics("pointwise", M, N, K, a.groups);
      }
      if (K <= DIRECT_MAX_TAPS) offer({ kind: "direct", variant: 0, splits: 1 });
      if (vendors) {
        const v = ensureVendor(this.#lib, "cudnn");
        if (v.loaded) {
          CUDNN_ALGOS.forEach((_, variant) => offer({ kind: "cudnn", variant, splits: 1 }));
        } else out.skipped.push({ tactic: "cudnn-*", reason: v.reason ?? "not loaded" });
      }
    } else {
      const a = layer.attrs as { outputs: number; axis: number };
      const x = concreteDims(this.manifest.tensors[layer.inputs[0]].dims, batch);
      const M = volume(x, 0, a.axis), K = volume(x, a.axis);
      gemmTactics("gemm", M, a.outputs, K, 1);
      if (vendors) {
        const v = ensureVendor(this.#lib, "cublaslt");
        if (!v.loaded) out.skipped.push({ tactic: "cublaslt-*", reason: v.reason ?? "not loaded" });
        else {
          const algos = cublasLtAlgorithms(
            this.#lib,
            params,
            this.#device,
            this.workspaceLimit,
            CUBLASLT_CANDIDATES,
          );
          if ("unsupported" in algos) {
            out.skipped.push({ tactic: "cublaslt-*", reason: algos.unsupported });
          } else {
            for (const { algo } of algos) offer({ kind: "cublaslt", variant: 0, splits: 1, algo });
          }
        }
      }
    }
    return out;
  }

  /** Checks a tactic against the default kernel, then times it at the largest batch. */
  time(index: number, tactic: string): TacticTiming {
    const layer = this.manifest.layers[index];
    const checkBytes = this.#extent(layer.outputs[0], this.#checkBatch);
    const run = (batch: number, t: string | undefined) =>
      CUDA_KERNELS[layer.kind].launch(this.#args(layer, batch, t));
    try {
      let ref = this.#reference.get(index);
      if (!ref) {
        ref = this.#runOnce(() => run(this.#checkBatch, undefined), checkBytes);
        this.#reference.set(index, ref);
      }
      if (tactic !== "default") {
        const got = this.#runOnce(() => run(this.#checkBatch, tactic), checkBytes);
        const err = normwiseError(got, ref);
        if (!(err <= TACTIC_TOLERANCE)) {
          return {
            rejected: `differs from the default kernel (normwise error ${err.toExponential(1)})`,
          };
        }
      }
      const batch = this.manifest.maxBatchSize;
      run(batch, tactic); // warm-up (and the first use of a vendor handle)
      this.#stream.synchronize();
      const estimate = this.#timed(3, () => run(batch, tactic));
      const runs = Math.max(3, Math.min(50, Math.round(4 / Math.max(estimate, 1e-3))));
      return { ms: this.#timed(runs, () => run(batch, tactic)) };
    } catch (e) {
      if (!(e instanceof KilnError)) throw e;
      // A failed launch leaves nothing enqueued behind it; sticky CUDA errors resurface below.
      this.#stream.synchronize();
      return { rejected: e.message };
    }
  }

  /** Poisons the output, runs, and reads back `bytes` of it. */
  #runOnce(launch: () => void, bytes: number): Float32Array {
    this.#stream.memsetAsync(this.#outputs.at(0), 0xff, bytes);
    launch();
    this.#stream.synchronize();
    const out = new Float32Array(bytes / 4);
    this.#outputs.download(out);
    return out;
  }

  /** Mean milliseconds of `runs` back-to-back launches. */
  #timed(runs: number, launch: () => void): number {
    const [start, end] = this.#events;
    this.#gate.around(this.#stream, () => {
      start.record(this.#stream);
      for (let i = 0; i < runs; i++) launch();
      end.record(this.#stream);
    });
    this.#stream.synchronize();
    return start.elapsedMs(end) / runs;
  }

  [Symbol.dispose](): void {
    this.#stream.synchronize();
    for (
      const d of [
        this.#workspace,
        this.#outputs,
        this.#inputs,
        this.#weights,
        ...this.#events,
        this.#gate,
        this.#stream,
      ]
    ) d[Symbol.dispose]();
  }
}

/**
 * max |a - b| over max |b|. Elements NaN in both are the gaps of a strided output (poisoned,
 * written by neither); NaN in one only (an element left unwritten, or written outside the
 * slice) is Infinity.
 */
function normwiseError(a: Float32Array, b: Float32Array): number {
  let worst = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return worst === 0 ? 0 : worst / Math.max(scale, 1e-30);
}

/** Uniform values in [-1, 1) from a 32-bit LCG (fast enough for hundreds of MB). */
function randomFloats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}
