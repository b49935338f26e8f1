/** The CPU backend: runs each layer's TypeScript kernel over host arrays. */
import { concreteDims } from "../../dsl/ir/dims.ts";
import { type HostArray, newHostArray } from "../../dsl/ir/dtype.ts";
import { KilnError } from "../../errors.ts";
import type {
  Backend,
  BackendContext,
  BackendEngine,
  ExecuteRequest,
  ExecuteResult,
  LoadedPlan,
  LoopRequest,
  LoopResult,
} from "../backend.ts";
import type { EnqueuedRun, EnqueueRequest } from "../backend.ts";
import type { HostTensor } from "./_kernel.ts";
import { isNoOpLayer, itemElements } from "../../plan/views.ts";
import { CPU_KERNELS } from "./mod.ts";
import { runLayerKernel } from "./precision.ts";

export class CpuBackend implements Backend {
  readonly device = { kind: "cpu" as const, arch: "cpu", name: "CPU (TypeScript kernels)" };

  supports(kind: string): boolean {
    return Object.hasOwn(CPU_KERNELS, kind);
  }

  load(plan: LoadedPlan): BackendEngine {
    return new CpuEngine(plan);
  }
}

class CpuEngine implements BackendEngine {
  constructor(readonly plan: LoadedPlan) {}

  get weightBytes(): number {
    return this.plan.weightSection.byteLength;
  }

  createContext(): BackendContext {
    return new CpuContext(this.plan);
  }

  [Symbol.dispose](): void {}
}

class CpuContext implements BackendContext {
  /** The activation arena of the memory plan: tensors with disjoint lifetimes share bytes. */
  #arena: ArrayBuffer | undefined;
  /** Typed views into the arena, per batch size, so repeated executes allocate nothing. */
  #views = new Map<number, HostArray[]>();

  /** Per layer: whether views make it a no-op. */
  #noOp: boolean[];

  constructor(readonly plan: LoadedPlan) {
    const { layers, tensors } = plan.manifest;
    this.#noOp = layers.map((l) => isNoOpLayer(l, tensors));
  }

  #buffers(batch: number): HostArray[] {
    let v = this.#views.get(batch);
    if (v) return v;
    const { tensors, memory } = this.plan.manifest;
    if (!this.#arena) {
      try {
        this.#arena = new ArrayBuffer(memory.arenaBytes);
      } catch (e) {
        throw new KilnError(
          "INVALID_ARGUMENT",
          `cannot allocate the ${memory.arenaBytes}-byte activation arena: ${(e as Error).message}`,
          { cause: e },
        );
      }
    }
    const arena = this.#arena;
    v = tensors.map((t, i) => {
      // A constant's alias is its weights, read in place (plan/aliases.ts).
      if (t.alias && "constant" in t.alias) return this.plan.weights[t.alias.constant].values;
      const d = concreteDims(t.dims, batch);
      // A view spans from its first element to its last batch item's end inside its parent.
      const n = t.view && d[0] > 0
        ? (d[0] - 1) * itemElements(tensors[t.view.of].dims) + volumeOf(d.slice(1))
        : volumeOf(d);
      const off = memory.offsets[i];
      switch (t.dtype) {
        case "float32":
          return new Float32Array(arena, off, n);
        case "int32":
          return new Int32Array(arena, off, n);
        case "int8":
          return new Int8Array(arena, off, n);
        case "float16":
          return new Uint16Array(arena, off, n);
      }
    });
    this.#views.set(batch, v);
    return v;
  }

  execute(req: ExecuteRequest): Promise<ExecuteResult> {
    const buffers = this.#buffers(req.batchSize);
    for (const [i, data] of req.inputs) buffers[i].set(data as never);
    const layerMs = this.#runLayers(buffers, req.batchSize, req.profile);
    const outputs = new Map<number, HostArray>();
    for (const t of req.outputs) outputs.set(t, buffers[t].slice());
    return Promise.resolve({ outputs, layerMs });
  }

  /** Runs before returning (nothing to overlap on the CPU): the returned run is already done. */
  enqueue(req: EnqueueRequest): EnqueuedRun {
    const all = [...req.inputs.values(), ...req.outputs.values()];
    if (all.some((v) => !ArrayBuffer.isView(v))) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        "enqueue: the CPU backend takes host arrays, not device addresses",
      );
    }
    const buffers = this.#buffers(req.batchSize);
    for (const [i, data] of req.inputs) buffers[i].set(data as never);
    this.#runLayers(buffers, req.batchSize, false);
    for (const [t, out] of req.outputs) (out as HostArray).set(buffers[t] as never);
    return { synchronize() {}, done: () => Promise.resolve() };
  }

  /**
   * The loop in the arena: after each step every fed-back output is copied into its input's
   * slot. The memory plan lets a later layer reuse an input's bytes once its last reader has run,
   * so inputs not fed back are set again before each step when their slot is shared, and when an
   * output's slot overlaps another pair's input the outputs go through a staging copy first.
   */
  executeLoop(req: LoopRequest): Promise<LoopResult> {
    const buffers = this.#buffers(req.batchSize);
    for (const [i, data] of req.inputs) buffers[i].set(data as never);
    const fed = new Set(req.feedback.map(([, input]) => input));
    const shared = [...req.inputs].filter(([i]) =>
      !fed.has(i) && buffers.some((b, t) => t !== i && overlaps(b, buffers[i]))
    );
    const crossed = req.feedback.some(([out], p) =>
      req.feedback.some(([, input], q) => p !== q && overlaps(buffers[out], buffers[input]))
    );
    const staging = crossed ? req.feedback.map(([out]) => buffers[out].slice()) : undefined;
    const outputs = new Map<number, HostArray>();
    for (const t of req.collect) {
      const dtype = this.plan.manifest.tensors[t].dtype;
      outputs.set(t, newHostArray(dtype, req.steps * buffers[t].length));
    }
    const layerMs: number[][] = [];
    for (let step = 0; step < req.steps; step++) {
      const ms = this.#runLayers(buffers, req.batchSize, req.profile);
      if (ms) layerMs.push(ms);
      for (const [t, all] of outputs) all.set(buffers[t] as never, step * buffers[t].length);
      if (step === req.steps - 1) break;
      // The next step's inputs: fed-back outputs, and the given values where a slot is shared.
      if (staging) {
        req.feedback.forEach(([out], p) => staging[p].set(buffers[out] as never));
        req.feedback.forEach(([, input], p) => buffers[input].set(staging[p] as never));
      } else {
        for (const [out, input] of req.feedback) buffers[input].set(buffers[out] as never);
      }
      for (const [i, data] of shared) buffers[i].set(data as never);
    }
    return Promise.resolve({ outputs, layerMs: req.profile ? layerMs : undefined });
  }

  /** Runs every layer's kernel over the arena; per-layer milliseconds when profiling. */
  #runLayers(buffers: HostArray[], batch: number, profile: boolean): number[] | undefined {
    const { manifest, weights } = this.plan;
    const dims = manifest.tensors.map((t) => concreteDims(t.dims, batch));
    const layerMs: number[] = [];
    const stride = (t: number) => {
      const v = manifest.tensors[t].view;
      return v ? itemElements(manifest.tensors[v.of].dims) : undefined;
    };
    manifest.layers.forEach((layer, li) => {
      // Layers whose tensors are views of each other have nothing to do (plan/views.ts).
      if (this.#noOp[li]) {
        if (profile) layerMs.push(0);
        return;
      }
      const kernel = CPU_KERNELS[layer.kind];
      if (!kernel) {
        throw new KilnError("UNSUPPORTED", `the CPU backend has no kernel for ${layer.kind}`, {
          layer: layer.name,
        });
      }
      const view = (t: number): HostTensor => ({
        data: buffers[t],
        dims: dims[t],
        batchStride: stride(t),
      });
      const t0 = profile ? performance.now() : 0;
      runLayerKernel(layer, manifest.tensors, kernel, {
        layer: layer.name,
        attrs: layer.attrs,
        weights: weights[li],
        inputs: layer.inputs.map(view),
        outputs: layer.outputs.map(view),
      });
      if (profile) layerMs.push(performance.now() - t0);
    });
    return profile ? layerMs : undefined;
  }

  [Symbol.dispose](): void {
    this.#views.clear();
    this.#arena = undefined;
  }
}

/** Whether two views of the arena share bytes (weights, read in place, share none with it). */
function overlaps(a: HostArray, b: HostArray): boolean {
  if (a.buffer !== b.buffer) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

function volumeOf(d: number[]): number {
  return d.reduce((a, b) => a * b, 1);
}
