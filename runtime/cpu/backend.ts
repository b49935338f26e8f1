/** The CPU backend: runs each layer's TypeScript kernel over host arrays. */
import { concreteDims } from "../../dsl/ir/dims.ts";
import type { HostArray } from "../../dsl/ir/dtype.ts";
import { KilnError } from "../../errors.ts";
import type {
  Backend,
  BackendContext,
  BackendEngine,
  ExecuteRequest,
  ExecuteResult,
  LoadedPlan,
} from "../backend.ts";
import type { HostTensor } from "./_kernel.ts";
import { CPU_KERNELS } from "./mod.ts";

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

  constructor(readonly plan: LoadedPlan) {}

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
      const n = volumeOf(concreteDims(t.dims, batch));
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
    const { manifest, weights } = this.plan;
    const buffers = this.#buffers(req.batchSize);
    for (const [i, data] of req.inputs) buffers[i].set(data as never);
    const dims = manifest.tensors.map((t) => concreteDims(t.dims, req.batchSize));
    const layerMs: number[] = [];
    manifest.layers.forEach((layer, li) => {
      const kernel = CPU_KERNELS[layer.kind];
      if (!kernel) {
        throw new KilnError("UNSUPPORTED", `the CPU backend has no kernel for ${layer.kind}`, {
          layer: layer.name,
        });
      }
      const view = (t: number): HostTensor => ({ data: buffers[t], dims: dims[t] });
      const t0 = req.profile ? performance.now() : 0;
      kernel({
        layer: layer.name,
        attrs: layer.attrs,
        weights: weights[li],
        inputs: layer.inputs.map(view),
        outputs: layer.outputs.map(view),
      });
      if (req.profile) layerMs.push(performance.now() - t0);
    });
    const outputs = new Map<number, HostArray>();
    for (const t of req.outputs) outputs.set(t, buffers[t].slice());
    return Promise.resolve({ outputs, layerMs: req.profile ? layerMs : undefined });
  }

  [Symbol.dispose](): void {
    this.#views.clear();
    this.#arena = undefined;
  }
}

function volumeOf(d: number[]): number {
  return d.reduce((a, b) => a * b, 1);
}
