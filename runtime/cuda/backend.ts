/**
 * The CUDA backend. An engine uploads the plan's weight section once; each context owns a stream,
 * its activation arena (laid out by the plan's memory plan, builder/memory.ts) and a pinned
 * staging area for the bindings.
 *
 * execute(): inputs are copied into pinned staging, then the whole network (input copies,
 * kernels, output copies) runs as one CUDA graph captured on the first execute of each batch
 * size and replayed afterwards: one launch per execute, instead of a launch per layer from
 * TypeScript. Short runs wait by blocking on the stream (~10 µs); runs measured longer than
 * LONG_RUN_MS wait on a worker thread (`nonblocking`, ~20 µs more, but the event loop stays free
 * and other contexts' runs overlap). Profiled runs go un-graphed with CUDA events per layer,
 * enqueued behind a gate so that they run back to back.
 */
import { concreteDims, isBatched, itemVolume, volume } from "../../dsl/ir/dims.ts";
import { bytesPerElement, type HostArray, newHostArray } from "../../dsl/ir/dtype.ts";
import { KilnError } from "../../errors.ts";
import {
  DeviceBuffer,
  type DeviceProps,
  Event,
  Gate,
  gemmWorkspaceBytes,
  type Graph,
  type NativeLibrary,
  PinnedBuffer,
  Stream,
} from "../../ffi/mod.ts";
import type { Manifest, PlanDevice } from "../../plan/mod.ts";
import { isNoOpLayer, itemElements } from "../../plan/views.ts";
import type {
  Backend,
  BackendContext,
  BackendEngine,
  DeviceAddress,
  EnqueuedRun,
  EnqueueRequest,
  ExecuteRequest,
  ExecuteResult,
  LoadedPlan,
  LoopRequest,
  LoopResult,
} from "../backend.ts";
import { CUDA_KERNELS, type LaunchTensor } from "./kernels.ts";
import { DeviceLoop, loopByExecute } from "./_loop.ts";
import { stridedTactics, tacticWorkspaceBytes } from "./tactics.ts";

/** Bytes of one layer's error word: [1 + failing element, its value] (kiln.h). */
const ERROR_WORD_BYTES = 8;

/** Runs longer than this wait through a nonblocking call instead of blocking the thread. */
const LONG_RUN_MS = 1;

export interface CudaBackendOptions {
  /**
   * Fill every activation with NaN bytes before each run (inside the graph), so an element a
   * kernel fails to write shows up as NaN. For tests; also enabled by KILN_CUDA_POISON=1.
   */
  poisonActivations?: boolean;
  /**
   * Runs measured longer than this (milliseconds, default 1) wait on a worker thread
   * (`nonblocking`); shorter ones block. 0 makes every run after the first wait on a worker.
   */
  longRunMs?: number;
}

export class CudaBackend implements Backend {
  readonly device: PlanDevice;

  constructor(
    readonly lib: NativeLibrary,
    readonly props: DeviceProps,
    readonly options: CudaBackendOptions = {},
  ) {
    this.device = { kind: "cuda", arch: props.arch, name: props.name };
  }

  get ordinal(): number {
    return this.props.ordinal;
  }

  supports(kind: string): boolean {
    return Object.hasOwn(CUDA_KERNELS, kind);
  }

  load(plan: LoadedPlan): BackendEngine {
    const problems = plan.manifest.layers.flatMap((l) => {
      const why = CUDA_KERNELS[l.kind]?.unsupported?.(l, plan.manifest);
      return why ? [{ layer: l.name, message: `${l.kind} layer "${l.name}": ${why}` }] : [];
    });
    if (problems.length) {
      throw new KilnError(
        "UNSUPPORTED",
        `the CUDA backend cannot run: ${problems.map((p) => p.message).join("; ")}`,
        { layer: problems[0].layer, problems },
      );
    }
    return new CudaEngine(this, plan);
  }
}

interface BindingSlot {
  tensor: number;
  /** Offsets in the arena and in pinned staging. */
  arena: number;
  staging: number;
  bytesPerItem: number;
  batched: boolean;
  dtype: Manifest["tensors"][number]["dtype"];
  elementsPerItem: number;
}

export class CudaEngine implements BackendEngine {
  /** Arena offset of each tensor, and the arena's size, from the plan's memory plan. */
  readonly arena: { offsets: number[]; bytes: number };
  /** Scratch bytes each context owns (split-K partial sums of the GEMM-based kernels). */
  readonly workspaceBytes: number;
  /** Per layer: whether views make it a no-op (plan/views.ts). */
  readonly noOp: boolean[];
  /**
   * The layers as launched: those that read or write a view run the default kernels, which
   * honour batch strides, unless their tactics do too (stridedTactics: Convolution's).
   */
  readonly launchLayers: Manifest["layers"];
  /** Error word slot of each layer whose kernel reports data-dependent failures, by layer index. */
  readonly errorSlots = new Map<number, number>();
  #weights: DeviceBuffer | undefined;

  constructor(readonly backend: CudaBackend, readonly plan: LoadedPlan) {
    this.arena = checkedArena(plan.manifest);
    this.noOp = plan.manifest.layers.map((l) => isNoOpLayer(l, plan.manifest.tensors));
    const t = plan.manifest.tensors;
    this.launchLayers = plan.manifest.layers.map((l) =>
      l.tactic && !stridedTactics(l.kind) && [...l.inputs, ...l.outputs].some((i) => t[i].view)
        ? { ...l, tactic: undefined }
        : l
    );
    plan.manifest.layers.forEach((l, i) => {
      if (CUDA_KERNELS[l.kind]?.describeError) this.errorSlots.set(i, this.errorSlots.size);
    });
    const needsWorkspace = plan.manifest.layers.some((l) => CUDA_KERNELS[l.kind]?.usesWorkspace);
    // The default kernels' split-K scratch, or more when a chosen tactic needs it (builder/tune).
    this.workspaceBytes = needsWorkspace
      ? Math.max(
        gemmWorkspaceBytes(backend.lib, backend.ordinal),
        tacticWorkspaceBytes(plan.manifest.layers),
      )
      : 0;
    // Kernels that keep intermediates in the workspace may need more (FusedMlp's GEMM path).
    for (const l of plan.manifest.layers) {
      const more = CUDA_KERNELS[l.kind]?.workspaceBytes;
      if (more) {
        const gemm = gemmWorkspaceBytes(backend.lib, backend.ordinal);
        this.workspaceBytes = Math.max(this.workspaceBytes, more(l, plan.manifest, gemm));
      }
    }
    const w = plan.weightSection;
    this.#weights = DeviceBuffer.alloc(backend.lib, backend.ordinal, w.byteLength);
    this.#weights.upload(w);
  }

  get weightBytes(): number {
    return this.plan.weightSection.byteLength;
  }

  get weights(): DeviceBuffer {
    if (!this.#weights) throw new KilnError("INVALID_ARGUMENT", "the engine has been disposed");
    return this.#weights;
  }

  createContext(): BackendContext {
    return new CudaContext(this);
  }

  [Symbol.dispose](): void {
    this.#weights?.[Symbol.dispose]();
    this.#weights = undefined;
  }
}

export class CudaContext implements BackendContext {
  readonly #lib: NativeLibrary;
  readonly #engine: CudaEngine;
  readonly #manifest: Manifest;
  #stream: Stream;
  #arena: DeviceBuffer;
  #workspace: DeviceBuffer;
  #staging: PinnedBuffer;
  #gate: Gate | undefined;
  #inputs: BindingSlot[] = [];
  #outputs: BindingSlot[] = [];
  #graphs = new Map<number, Graph>();
  /** Graphs of the layers alone (no binding copies), for device timing. */
  #kernelGraphs = new Map<number, Graph>();
  /** Last measured wall time of a run, per batch size. */
  #runMs = new Map<number, number>();
  #events: Event[] = [];
  #poison: boolean;
  #longRunMs: number;
  /** Bytes of error words, and their offset in staging (after align(workspace) on the device). */
  #errorBytes = 0;
  #errorStaging = 0;
  /** The stream of the last enqueued run, until it is waited for. */
  #enqueuedOn: Stream | undefined;
  /** Executes run one after another on this context's stream. */
  #tail: Promise<unknown> = Promise.resolve();
  #pending = 0;
  #disposed = false;
  /** Graphs and buffers of executeLoop (runtime/cuda/_loop.ts), made on first use. */
  #loop: DeviceLoop | undefined;

  constructor(engine: CudaEngine) {
    this.#engine = engine;
    this.#lib = engine.backend.lib;
    this.#manifest = engine.plan.manifest;
    const device = engine.backend.ordinal;
    this.#poison = engine.backend.options.poisonActivations ?? envPoison();
    this.#longRunMs = engine.backend.options.longRunMs ?? LONG_RUN_MS;
    const m = this.#manifest;
    let staging = 0;
    const slot = (tensor: number): BindingSlot => {
      const t = m.tensors[tensor];
      const s: BindingSlot = {
        tensor,
        arena: engine.arena.offsets[tensor],
        staging,
        bytesPerItem: itemVolume(t.dims) * bytesPerElement(t.dtype),
        batched: isBatched(t.dims),
        dtype: t.dtype,
        elementsPerItem: itemVolume(t.dims),
      };
      staging += align(s.bytesPerItem * (s.batched ? m.maxBatchSize : 1));
      return s;
    };
    this.#inputs = m.bindings.filter((b) => b.isInput).map((b) => slot(b.tensor));
    this.#outputs = m.bindings.filter((b) => !b.isInput).map((b) => slot(b.tensor));
    // Error words (2 × int32 per reporting layer) follow the workspace on the device and the
    // bindings in staging, where each run copies them back.
    this.#errorBytes = ERROR_WORD_BYTES * engine.errorSlots.size;
    this.#errorStaging = staging;
    staging += align(this.#errorBytes);
    // Acquire in order; on failure release what was acquired, newest first.
    const owned: Disposable[] = [];
    try {
      this.#stream = Stream.create(this.#lib, device);
      owned.push(this.#stream);
      this.#arena = DeviceBuffer.alloc(this.#lib, device, engine.arena.bytes);
      owned.push(this.#arena);
      this.#workspace = DeviceBuffer.alloc(
        this.#lib,
        device,
        align(engine.workspaceBytes) + this.#errorBytes,
      );
      owned.push(this.#workspace);
      this.#staging = PinnedBuffer.alloc(this.#lib, staging);
    } catch (e) {
      for (const o of owned.reverse()) o[Symbol.dispose]();
      throw e;
    }
  }

  execute(req: ExecuteRequest): Promise<ExecuteResult> {
    if (this.#disposed) {
      return Promise.reject(
        new KilnError("INVALID_ARGUMENT", "the execution context has been disposed"),
      );
    }
    // An enqueued run on another stream uses the same activations: it finishes first.
    if (this.#enqueuedOn && this.#enqueuedOn !== this.#stream) this.#enqueuedOn.synchronize();
    // The common case, a short run with nothing pending, completes right here: no thread hop,
    // no promise chain (execute() overhead is counted in microseconds).
    if (this.#pending === 0 && !this.#isLong(req.batchSize)) {
      try {
        const started = this.#start(req);
        this.#stream.synchronize();
        return Promise.resolve(this.#finish(req, started));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    // Otherwise runs queue on this context, each waiting on a worker thread when long.
    this.#pending++;
    const run = this.#pending === 1 ? this.#run(req) : this.#tail.then(() => this.#run(req));
    const done = run.finally(() => {
      if (--this.#pending === 0 && this.#disposed) this.#release();
    });
    this.#tail = done.catch(() => {});
    return done;
  }

  /** n steps on the device, one synchronization at the end (runtime/cuda/_loop.ts). */
  executeLoop(req: LoopRequest): Promise<LoopResult> {
    if (this.#disposed) {
      return Promise.reject(
        new KilnError("INVALID_ARGUMENT", "the execution context has been disposed"),
      );
    }
    const run = (): Promise<LoopResult> => {
      if (req.profile) {
        return loopByExecute(
          (inputs) =>
            this.#run({
              ...req,
              inputs,
              outputs: [...req.collect, ...req.feedback.map(([o]) => o)],
            }),
          req,
        );
      }
      this.#loop ??= new DeviceLoop(this.#lib, this.#stream);
      const errors = align(this.#engine.workspaceBytes);
      return this.#loop.run(req, {
        manifest: this.#manifest,
        tensorAt: (t) => this.#arena.at(this.#engine.arena.offsets[t]),
        uploadInputs: (inputs, batch) => {
          for (const s of this.#inputs) {
            const data = inputs.get(s.tensor);
            if (!data) throw new KilnError("INTERNAL", `no data for input tensor ${s.tensor}`);
            const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
            this.#staging.bytes.set(bytes, s.staging);
            const n = s.bytesPerItem * (s.batched ? batch : 1);
            this.#stream.copyAsync(this.#arena.at(s.arena), this.#staging.at(s.staging), n);
          }
        },
        enqueueLayers: (batch) => void this.#enqueue(batch, false, false),
        clearErrors: () => {
          if (this.#errorBytes) {
            this.#stream.memsetAsync(this.#workspace.at(errors), 0, this.#errorBytes);
          }
        },
        checkErrors: (batch) => {
          if (!this.#errorBytes) return;
          const at = this.#staging.at(this.#errorStaging);
          this.#stream.copyAsync(at, this.#workspace.at(errors), this.#errorBytes);
          this.#stream.synchronize();
          this.#checkErrors(batch);
        },
      });
    };
    this.#pending++;
    const done = this.#tail.then(run).finally(() => {
      if (--this.#pending === 0 && this.#disposed) this.#release();
    });
    this.#tail = done.catch(() => {});
    return done;
  }

  /**
   * One run on the caller's memory (runtime/engine.ts documents the contract): input copies,
   * the graph of the layers alone, output copies, all enqueued on `req.stream` (or the
   * context's), and nothing waited for. Host arrays are held by the stream until it is
   * synchronized; an in-flight run on another stream is waited for first (they share the arena).
   */
  enqueue(req: EnqueueRequest): EnqueuedRun {
    if (this.#disposed) {
      throw new KilnError("INVALID_ARGUMENT", "the execution context has been disposed");
    }
    const stream = req.stream ?? this.#stream;
    if (!(stream instanceof Stream) || stream.device !== this.#stream.device) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `enqueue: stream must be an ffi Stream of cuda:${this.#stream.device}`,
      );
    }
    if (this.#pending) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        "enqueue: execute() runs of this context are still pending; await them first",
      );
    }
    if (this.#enqueuedOn && this.#enqueuedOn !== stream) this.#enqueuedOn.synchronize();
    const batch = req.batchSize;
    let graph = this.#kernelGraphs.get(batch);
    if (!graph) {
      graph = this.#capture(batch, false);
      this.#kernelGraphs.set(batch, graph);
    }
    const arena = this.#arena, errors = align(this.#engine.workspaceBytes);
    const bytes = (s: BindingSlot) => s.bytesPerItem * (s.batched ? batch : 1);
    // The engine checked every host array's size against the binding and batch.
    const copy = (s: BindingSlot, v: HostArray | DeviceAddress, toDevice: boolean) => {
      let other = (v as DeviceAddress).device;
      if (ArrayBuffer.isView(v)) {
        stream.hold(v);
        other = Deno.UnsafePointer.of(v);
      }
      if (toDevice) stream.copyAsync(arena.at(s.arena), other, bytes(s));
      else stream.copyAsync(other, arena.at(s.arena), bytes(s));
    };
    if (this.#errorBytes) stream.memsetAsync(this.#workspace.at(errors), 0, this.#errorBytes);
    for (const s of this.#inputs) copy(s, req.inputs.get(s.tensor)!, true);
    graph.launch(stream);
    for (const s of this.#outputs) {
      const out = req.outputs.get(s.tensor);
      if (out) copy(s, out, false);
    }
    if (this.#errorBytes) {
      stream.copyAsync(
        this.#staging.at(this.#errorStaging),
        this.#workspace.at(errors),
        this.#errorBytes,
      );
    }
    this.#enqueuedOn = stream;
    const finish = () => {
      if (this.#enqueuedOn === stream) this.#enqueuedOn = undefined;
      if (this.#errorBytes) this.#checkErrors(batch);
    };
    return {
      synchronize: () => {
        stream.synchronize();
        finish();
      },
      done: async () => {
        await stream.synchronizeAsync();
        finish();
      },
    };
  }

  #isLong(batch: number): boolean {
    return (this.#runMs.get(batch) ?? -1) >= this.#longRunMs;
  }

  async #run(req: ExecuteRequest): Promise<ExecuteResult> {
    const started = this.#start(req);
    if (this.#isLong(req.batchSize)) await this.#stream.synchronizeAsync();
    else this.#stream.synchronize();
    return this.#finish(req, started);
  }

  /** Stages the inputs and enqueues the run (graph replay, or profiled layers). */
  #start(req: ExecuteRequest): { t0: number; layerMs?: number[] } {
    const batch = req.batchSize;
    const staging = this.#staging.bytes;
    for (const s of this.#inputs) {
      const data = req.inputs.get(s.tensor);
      if (!data) throw new KilnError("INTERNAL", `no data for input tensor ${s.tensor}`);
      staging.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), s.staging);
    }
    if (req.profile) {
      // Held behind a gate, the layers run back to back: event intervals are device time, not
      // the host's launch gaps.
      const t0 = performance.now();
      return { t0, layerMs: this.#gated(() => this.#enqueue(batch, true)) };
    }
    let graph = this.#graphs.get(batch);
    if (!graph) {
      graph = this.#capture(batch);
      this.#graphs.set(batch, graph);
    }
    const t0 = performance.now();
    graph.launch(this.#stream);
    return { t0 };
  }

  /** After the stream has synchronized: timings and the outputs out of staging. */
  #finish(req: ExecuteRequest, started: { t0: number; layerMs?: number[] }): ExecuteResult {
    const batch = req.batchSize;
    this.#runMs.set(batch, performance.now() - started.t0);
    const layerMs = started.layerMs;
    if (layerMs) {
      for (let i = 0; i < layerMs.length; i++) {
        layerMs[i] = this.#events[i].elapsedMs(this.#events[i + 1]);
      }
    }
    const staging = this.#staging.bytes;
    if (this.#errorBytes) this.#checkErrors(batch);
    const outputs = new Map<number, HostArray>();
    for (const t of req.outputs) {
      const s = this.#outputs.find((o) => o.tensor === t);
      if (!s) throw new KilnError("INTERNAL", `tensor ${t} is not an output binding`);
      const n = s.elementsPerItem * (s.batched ? batch : 1);
      const out = newHostArray(s.dtype, n);
      new Uint8Array(out.buffer).set(staging.subarray(s.staging, s.staging + out.byteLength));
      outputs.set(t, out);
    }
    return { outputs, layerMs };
  }

  /** Throws the first data-dependent failure a kernel of the last run reported. */
  #checkErrors(batch: number): void {
    const st = this.#staging.bytes;
    const at = st.byteOffset + this.#errorStaging;
    const words = new Int32Array(st.buffer, at, this.#errorBytes / 4);
    const m = this.#manifest;
    for (const [layerIndex, slot] of this.#engine.errorSlots) {
      const element = words[2 * slot];
      if (element === 0) continue;
      const layer = m.layers[layerIndex];
      const dims = layer.inputs.map((t) => concreteDims(m.tensors[t].dims, batch));
      throw new KilnError(
        "INVALID_ARGUMENT",
        CUDA_KERNELS[layer.kind].describeError!(layer, dims, element - 1, words[2 * slot + 1]),
        { layer: layer.name },
      );
    }
  }

  /**
   * Device time of the network alone: `runs` back-to-back replays of a graph of its layers (no
   * binding copies: inputs and outputs stay on the device), each between two CUDA events.
   * Returns the per-run milliseconds. For benchmarks (as trtexec's GPU compute time).
   */
  deviceTimesMs(batch: number, runs: number): number[] {
    if (this.#disposed || this.#pending) {
      throw new KilnError("INVALID_ARGUMENT", "the context is disposed or busy");
    }
    let graph = this.#kernelGraphs.get(batch);
    if (!graph) {
      graph = this.#capture(batch, false);
      this.#kernelGraphs.set(batch, graph);
    }
    const events = Array.from(
      { length: runs + 1 },
      () => Event.create(this.#lib, this.#stream.device),
    );
    try {
      this.#gated(() => {
        events[0].record(this.#stream);
        for (let i = 0; i < runs; i++) {
          graph.launch(this.#stream);
          events[i + 1].record(this.#stream);
        }
      });
      this.#stream.synchronize();
      return events.slice(1).map((e, i) => events[i].elapsedMs(e));
    } finally {
      for (const e of events) e[Symbol.dispose]();
    }
  }

  #gated<T>(enqueue: () => T): T {
    this.#gate ??= Gate.create(this.#lib);
    return this.#gate.around(this.#stream, enqueue);
  }

  /** Records the whole run of one batch size (or its layers alone) into a CUDA graph. */
  #capture(batch: number, copies = true): Graph {
    this.#stream.beginCapture();
    try {
      this.#enqueue(batch, false, copies);
    } catch (e) {
      try {
        this.#stream.endCapture()[Symbol.dispose]();
      } catch {
        // the capture was invalidated by the failure: nothing to keep
      }
      throw e;
    }
    return this.#stream.endCapture();
  }

  /**
   * Enqueues input copies, every layer and output copies. With `profile`, records an event
   * before each layer and after the last; returns the array the times go into.
   */
  #enqueue(batch: number, profile: boolean, copies = true): number[] | undefined {
    const m = this.#manifest, lib = this.#lib, stream = this.#stream;
    const arena = this.#arena, staging = this.#staging;
    const bytes = (s: BindingSlot) => s.bytesPerItem * (s.batched ? batch : 1);
    if (this.#poison && copies) stream.memsetAsync(arena.at(0), 0xff, arena.bytes);
    const errors = align(this.#engine.workspaceBytes);
    if (copies && this.#errorBytes) {
      stream.memsetAsync(this.#workspace.at(errors), 0, this.#errorBytes);
    }
    if (copies) {
      for (const s of this.#inputs) {
        stream.copyAsync(arena.at(s.arena), staging.at(s.staging), bytes(s));
      }
    }
    const weights = this.#engine.weights;
    const tensor = (t: number): LaunchTensor => {
      const view = m.tensors[t].view, alias = m.tensors[t].alias;
      return {
        // A constant's alias is its weights, read in place (plan/aliases.ts).
        ptr: alias && "constant" in alias
          ? weights.at(m.layers[alias.constant].weights.values.offset)
          : arena.at(this.#engine.arena.offsets[t]),
        dims: concreteDims(m.tensors[t].dims, batch),
        dtype: m.tensors[t].dtype,
        batchStride: view ? itemElements(m.tensors[view.of].dims) : undefined,
      };
    };
    if (profile) {
      while (this.#events.length < m.layers.length + 1) {
        this.#events.push(Event.create(lib, stream.device));
      }
    }
    const workspace = { ptr: this.#workspace.at(0), bytes: this.#engine.workspaceBytes };
    const slots = this.#engine.errorSlots;
    m.layers.forEach((layer, i) => {
      if (profile) this.#events[i].record(stream);
      // Layers whose tensors are views of each other have nothing to do (plan/views.ts).
      if (this.#engine.noOp[i]) return;
      const w: Record<string, Deno.PointerValue> = {};
      for (const [slot, ref] of Object.entries(layer.weights)) w[slot] = weights.at(ref.offset);
      CUDA_KERNELS[layer.kind].launch({
        lib,
        stream,
        layer: this.#engine.launchLayers[i],
        inputs: layer.inputs.map(tensor),
        outputs: layer.outputs.map(tensor),
        weights: w,
        workspace,
        error: slots.has(i) ? this.#workspace.at(errors + ERROR_WORD_BYTES * slots.get(i)!) : null,
      });
    });
    if (profile) this.#events[m.layers.length].record(stream);
    if (copies) {
      for (const s of this.#outputs) {
        stream.copyAsync(staging.at(s.staging), arena.at(s.arena), bytes(s));
      }
      if (this.#errorBytes) {
        stream.copyAsync(
          staging.at(this.#errorStaging),
          this.#workspace.at(errors),
          this.#errorBytes,
        );
      }
    }
    return profile ? new Array<number>(m.layers.length).fill(0) : undefined;
  }

  [Symbol.dispose](): void {
    if (this.#disposed) return;
    this.#disposed = true;
    // A run still waiting on the stream releases everything when it finishes.
    if (this.#pending === 0) this.#release();
  }

  #release(): void {
    try {
      this.#enqueuedOn?.synchronize();
      this.#stream.synchronize();
    } finally {
      for (const g of [...this.#graphs.values(), ...this.#kernelGraphs.values()]) {
        g[Symbol.dispose]();
      }
      this.#graphs.clear();
      this.#kernelGraphs.clear();
      for (const e of this.#events) e[Symbol.dispose]();
      this.#events = [];
      this.#loop?.[Symbol.dispose]();
      this.#gate?.[Symbol.dispose]();
      this.#stream[Symbol.dispose]();
      this.#arena[Symbol.dispose]();
      this.#workspace[Symbol.dispose]();
      this.#staging[Symbol.dispose]();
    }
  }
}

/**
 * The memory plan, checked: kernels write through these offsets, so a plan whose tensors do not
 * fit its arena (a corrupted or hand-edited file) is refused instead of corrupting device memory.
 */
function checkedArena(m: Manifest): { offsets: number[]; bytes: number } {
  const { offsets, arenaBytes } = m.memory;
  if (offsets.length !== m.tensors.length) {
    throw new KilnError(
      "PLAN_INVALID",
      `invalid plan: the memory plan has ${offsets.length} offsets for ${m.tensors.length} tensors`,
    );
  }
  m.tensors.forEach((t, i) => {
    if (t.alias && "constant" in t.alias) return; // in the weight section (plan/aliases.ts)
    const bytes = volume(concreteDims(t.dims, m.maxBatchSize)) * bytesPerElement(t.dtype);
    if (offsets[i] % 16 !== 0 || offsets[i] + bytes > arenaBytes) {
      throw new KilnError(
        "PLAN_INVALID",
        `invalid plan: tensor "${t.name}" (${bytes} bytes at offset ${
          offsets[i]
        }) does not fit the ${arenaBytes}-byte activation arena`,
        { tensor: t.name },
      );
    }
  });
  return { offsets, bytes: arenaBytes };
}

/** Staging alignment: whole cache lines, 16-byte vectors. */
const TENSOR_ALIGNMENT = 256;

function align(n: number): number {
  return Math.ceil(n / TENSOR_ALIGNMENT) * TENSOR_ALIGNMENT;
}

function envPoison(): boolean {
  try {
    return Deno.env.get("KILN_CUDA_POISON") === "1";
  } catch {
    return false;
  }
}
