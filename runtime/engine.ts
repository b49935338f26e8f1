/**
 * Engine and ExecutionContext. An engine holds a validated plan and the backend's copy of its
 * weights; any number of contexts share them, each with its own activations. Inputs are
 * checked (names, dtypes, sizes, batch) before any work is started.
 */
import { type Dims, formatDims, isBatched, itemVolume, sameDims } from "../dsl/ir/dims.ts";
import {
  bytesPerElement,
  type DType,
  dtypeOfArray,
  type HostArray,
  newHostArray,
} from "../dsl/ir/dtype.ts";
import { parseAttrs } from "../dsl/layers/_define.ts";
import { type AnyDef, checkWeights, inferShapeOf } from "../dsl/layers/_check.ts";
import { isLayerKind, LAYERS } from "../dsl/layers/mod.ts";
import { KilnError } from "../errors.ts";
import { type Manifest, type PlanData, type PlanHeader, readPlan } from "../plan/mod.ts";
import { viewProblems } from "../plan/views.ts";
import { aliasProblems } from "../plan/aliases.ts";
import type {
  Backend,
  BackendContext,
  BackendEngine,
  DeviceAddress,
  EnqueuedRun,
  LoadedPlan,
} from "./backend.ts";
import { type DeviceSpec, selectBackend } from "./device.ts";
import { Logger } from "./logger.ts";
import { Profiler } from "./profiler.ts";

export interface Binding {
  name: string;
  /** Dims with `N` for the batch where the network is batched. */
  shape: Dims;
  dtype: DType;
  isInput: boolean;
}

/** The optimized network of an engine: tensors by index, layers reading and writing them. */
export interface EngineGraph {
  /** `precision` (absent: FP32) and `scale` (the INT8 step) as the builder chose them. */
  tensors: { name: string; dims: Dims; dtype: DType; precision?: string; scale?: number }[];
  layers: {
    name: string;
    kind: string;
    inputs: number[];
    outputs: number[];
    weightCount: number;
    sources: string[];
    precision: string;
    tactic?: string;
  }[];
  bindings: { name: string; tensor: number; isInput: boolean }[];
}

export interface EngineMemory {
  /** Bytes of weights held by the backend. */
  weightsBytes: number;
  /** Activation arena of one context at the maximum batch size (the memory plan's peak). */
  activationBytes: number;
  /** What one buffer per tensor would need instead. */
  naiveActivationBytes: number;
  /** Scratch memory a layer may use. */
  workspaceBytes: number;
}

const registry = new FinalizationRegistry<BackendEngine>((e) => e[Symbol.dispose]());

export class Engine implements Disposable {
  readonly bindings: readonly Binding[];
  readonly maxBatchSize: number;
  readonly header: PlanHeader;
  readonly layers: readonly { name: string; kind: string; sources: string[]; precision: string }[];
  readonly memory: EngineMemory;
  /** What each build pass did (layers before/after and its changes in words). */
  readonly passes: PlanData["manifest"]["build"]["passes"];
  #plan: PlanData;
  #bytes: Uint8Array;
  #backend: BackendEngine | undefined;
  #loaded: LoadedPlan;

  private constructor(bytes: Uint8Array, plan: PlanData, backend: Backend) {
    this.#bytes = bytes;
    this.#plan = plan;
    this.header = plan.header;
    const m = plan.manifest;
    this.maxBatchSize = m.maxBatchSize;
    this.bindings = m.bindings.map((b) => ({
      name: b.name,
      shape: m.tensors[b.tensor].dims,
      dtype: m.tensors[b.tensor].dtype,
      isInput: b.isInput,
    }));
    this.layers = m.layers.map((l) => ({
      name: l.name,
      kind: l.kind,
      sources: l.sources,
      precision: l.precision,
    }));
    const unsupported = m.layers.filter((l) => !backend.supports(l.kind));
    if (unsupported.length) {
      throw new KilnError(
        "UNSUPPORTED",
        `the ${backend.device.name} backend has no kernel for: ${
          unsupported.map((l) => `${l.kind} (layer "${l.name}")`).join(", ")
        }`,
        { layer: unsupported[0].name },
      );
    }
    this.#loaded = { manifest: m, weights: weightViews(plan), weightSection: plan.weights };
    checkManifest(m, this.#loaded.weights);
    this.#backend = backend.load(this.#loaded);
    registry.register(this, this.#backend, this);
    this.passes = m.build.passes;
    this.memory = {
      weightsBytes: plan.weights.byteLength,
      activationBytes: m.memory.arenaBytes,
      naiveActivationBytes: m.memory.naiveBytes,
      workspaceBytes: m.build.workspaceBytes,
    };
  }

  /** Loads plan bytes onto a backend (used by buildEngine and deserializeEngine). */
  static load(bytes: Uint8Array, backend: Backend): Engine {
    // Typed views of the weights need element alignment; copy if the caller's bytes are not.
    const b = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
    const plan = readPlan(b);
    const d = plan.header.device;
    if (d.kind !== backend.device.kind || d.arch !== backend.device.arch) {
      throw new KilnError(
        "PLAN_DEVICE",
        `the plan was built for ${d.kind} (${d.arch}, ${d.name}); this device is ${backend.device.kind} (${backend.device.arch}, ${backend.device.name}): rebuild the engine for it`,
      );
    }
    return new Engine(b, plan, backend);
  }

  get device(): PlanHeader["device"] {
    return this.header.device;
  }

  /** The plan, ready to be written to a file and loaded by `deserializeEngine`. */
  serialize(): Uint8Array {
    return this.#bytes.slice();
  }

  /** The optimized network as the plan holds it (for drawings and inspection). */
  describe(): EngineGraph {
    const m = this.#plan.manifest;
    return {
      tensors: m.tensors.map((t) => ({
        name: t.name,
        dims: t.dims,
        dtype: t.dtype,
        ...(t.precision ? { precision: t.precision } : {}),
        ...(t.scale !== undefined ? { scale: t.scale } : {}),
      })),
      layers: m.layers.map((l) => ({
        name: l.name,
        kind: l.kind,
        inputs: l.inputs,
        outputs: l.outputs,
        weightCount: Object.values(l.weights).reduce((a, w) => a + w.count, 0),
        sources: l.sources,
        precision: l.precision,
        tactic: l.tactic,
      })),
      bindings: m.bindings,
    };
  }

  binding(name: string): Binding | undefined {
    return this.bindings.find((b) => b.name === name);
  }

  createContext(): ExecutionContext {
    if (!this.#backend) throw new KilnError("INVALID_ARGUMENT", "the engine has been disposed");
    return new ExecutionContext(this, this.#backend.createContext(), this.#plan);
  }

  [Symbol.dispose](): void {
    if (this.#backend) {
      registry.unregister(this);
      this.#backend[Symbol.dispose]();
      this.#backend = undefined;
    }
  }
}

export interface ExecuteOptions {
  /** The batch size; inferred from the inputs' lengths when omitted. */
  batchSize?: number;
}

export type HostOutputs = Record<string, HostArray>;

export type { DeviceAddress, EnqueuedRun } from "./backend.ts";

/** A binding's memory for `enqueue`: a host array, or a device address on the engine's device. */
export type EnqueueBinding = HostArray | DeviceAddress;

export interface EnqueueOptions extends ExecuteOptions {
  /** The stream to run on (CUDA: an ffi `Stream` of the engine's device); the context's own by default. */
  stream?: unknown;
}

export interface ExecuteLoopOptions extends ExecuteOptions {
  /** How many times the network runs. */
  steps: number;
  /** Output binding → input binding: after each step the output becomes the input's value. */
  feedback?: Record<string, string>;
  /** Output bindings to return, each with its value at every step, one step after another. */
  collect?: readonly string[];
}

export class ExecutionContext implements Disposable {
  readonly profiler: Profiler;
  #ctx: BackendContext | undefined;
  #tensorOf = new Map<string, number>();
  /** Per-call work done once (execute() overhead is counted in microseconds). */
  #ins: readonly Binding[];
  #outs: readonly Binding[];
  #inTensors: number[];
  #outTensors: number[];

  constructor(readonly engine: Engine, ctx: BackendContext, plan: PlanData) {
    this.#ctx = ctx;
    for (const b of plan.manifest.bindings) this.#tensorOf.set(b.name, b.tensor);
    this.profiler = new Profiler(engine.layers);
    this.#ins = engine.bindings.filter((b) => b.isInput);
    this.#outs = engine.bindings.filter((b) => !b.isInput);
    this.#inTensors = this.#ins.map((b) => this.#tensorOf.get(b.name)!);
    this.#outTensors = this.#outs.map((b) => this.#tensorOf.get(b.name)!);
  }

  /** Runs the network; resolves with the outputs when the device work is done. */
  async execute(
    inputs: Record<string, HostArray>,
    options: ExecuteOptions = {},
  ): Promise<HostOutputs> {
    if (!this.#ctx) {
      throw new KilnError("INVALID_ARGUMENT", "the execution context has been disposed");
    }
    const { batch, byTensor } = this.#checkInputs(inputs, options);
    const outs = this.#outs, tensors = this.#outTensors;
    const r = await this.#ctx.execute({
      batchSize: batch,
      inputs: byTensor,
      outputs: tensors,
      profile: this.profiler.enabled,
    });
    if (r.layerMs) this.profiler.record(r.layerMs);
    const result: HostOutputs = {};
    for (let i = 0; i < outs.length; i++) result[outs[i].name] = r.outputs.get(tensors[i])!;
    return result;
  }

  /**
   * Enqueues one run and returns at once, as TensorRT's enqueueV2. `inputs` and `outputs` name
   * every input and output binding, each either a typed array of the binding's dtype and exact
   * size (the batch × one item), or `{ device }`: a device address on the engine's device
   * holding (inputs) or receiving (outputs) that many elements. The batch comes from the host
   * arrays, else from `options.batchSize` (required when every binding is a device address).
   *
   * The contract, until the returned run has been waited for (`synchronize()`, or `await
   * done()`): the caller neither changes the inputs nor reads the outputs, and keeps device
   * memory allocated; Kiln keeps the host arrays referenced until then. Host arrays over pinned
   * memory are copied asynchronously; ordinary (pageable) arrays work too, but the driver may
   * copy those before returning. A context's runs share its activations: enqueue a context's
   * next run on the same stream (runs queue in order) or wait for the previous one first.
   * Everything is checked before anything is enqueued (a KilnError, and nothing runs); a
   * failure only the device can see (an index out of range) is thrown by the wait. Runs are
   * not profiled. The CPU backend runs the network before returning.
   */
  enqueue(
    inputs: Record<string, EnqueueBinding>,
    outputs: Record<string, EnqueueBinding>,
    options: EnqueueOptions = {},
  ): EnqueuedRun {
    if (!this.#ctx) {
      throw new KilnError("INVALID_ARGUMENT", "the execution context has been disposed");
    }
    const req = this.#checkEnqueue(inputs, outputs, options);
    if (this.#ctx.enqueue) return this.#ctx.enqueue({ ...req, stream: options.stream });
    if ([...req.inputs.values(), ...req.outputs.values()].some((v) => !ArrayBuffer.isView(v))) {
      throw new KilnError("UNSUPPORTED", "enqueue: this backend takes host arrays only");
    }
    // A backend without enqueue: execute, then fill the caller's host arrays.
    const done = this.#ctx.execute({
      batchSize: req.batchSize,
      inputs: req.inputs as Map<number, HostArray>,
      outputs: [...req.outputs.keys()],
      profile: false,
    }).then((r) => {
      for (const [t, out] of req.outputs) (out as HostArray).set(r.outputs.get(t)! as never);
    });
    return {
      synchronize() {
        throw new KilnError("UNSUPPORTED", "this backend's runs can only be awaited: use done()");
      },
      done: () => done,
    };
  }

  /** `enqueue`'s checks: every binding named once, dtypes and sizes, the batch. */
  #checkEnqueue(
    inputs: Record<string, EnqueueBinding>,
    outputs: Record<string, EnqueueBinding>,
    options: EnqueueOptions,
  ) {
    const bad = (message: string, tensor?: string): never => {
      throw new KilnError("INVALID_ARGUMENT", `enqueue: ${message}`, { tensor });
    };
    const isDevice = (v: unknown): v is DeviceAddress =>
      v !== null && typeof v === "object" && !ArrayBuffer.isView(v) && "device" in v;
    const sides = [[inputs, true], [outputs, false]] as const;
    let batch = options.batchSize;
    if (batch !== undefined && !(Number.isInteger(batch) && batch >= 1)) {
      bad(`batchSize must be a positive integer, got ${batch}`);
    }
    for (const [given, isInput] of sides) {
      const kind = isInput ? "input" : "output";
      if (given === null || typeof given !== "object") bad(`expects an object of ${kind}s`);
      const bindings = this.engine.bindings.filter((b) => b.isInput === isInput);
      const known = bindings.map((b) => `"${b.name}"`).join(", ");
      for (const name of Object.keys(given)) {
        if (!bindings.some((b) => b.name === name)) {
          bad(`"${name}" is not an ${kind} binding (${kind}s: ${known})`, name);
        }
      }
      for (const b of bindings) {
        const v = given[b.name];
        if (v === undefined) bad(`${kind} "${b.name}" is missing (${kind}s: ${known})`, b.name);
        if (isDevice(v)) {
          if (v.device === null || typeof v.device !== "object") {
            bad(`${kind} "${b.name}": device must be a non-null Deno.PointerObject`, b.name);
          }
          continue;
        }
        if (!ArrayBuffer.isView(v) || v instanceof DataView) {
          bad(`${kind} "${b.name}" must be a typed array or { device: pointer }`, b.name);
        }
        const got = arrayDType(v as ArrayBufferView);
        if (got !== b.dtype) {
          bad(
            `${kind} "${b.name}" is ${got ?? v.constructor.name}; the binding is ${b.dtype} (${
              expectedArray(b.dtype)
            })`,
            b.name,
          );
        }
        const n = (v as HostArray).length, per = itemVolume(b.shape);
        if (!isBatched(b.shape)) {
          if (n !== per) bad(`${kind} "${b.name}" has ${n} elements; ${fmt(b.shape)} needs ${per}`);
          continue;
        }
        if (batch === undefined) {
          if (n === 0 || n % per !== 0) {
            bad(`${kind} "${b.name}" has ${n} elements, not a multiple of ${per}`, b.name);
          }
          batch = n / per;
        }
        if (n !== batch * per) {
          bad(
            `${kind} "${b.name}" has ${n} elements; batch ${batch} of ${fmt(b.shape)} needs ${
              batch * per
            }`,
            b.name,
          );
        }
      }
    }
    if (batch === undefined) {
      if (this.engine.bindings.some((b) => isBatched(b.shape))) {
        bad("batchSize is required when every batched binding is a device address");
      }
      batch = 1;
    }
    if (batch > this.engine.maxBatchSize) {
      bad(`batch ${batch} exceeds the engine's maxBatchSize ${this.engine.maxBatchSize}`);
    }
    const byTensor = (given: Record<string, EnqueueBinding>) =>
      new Map(Object.entries(given).map(([name, v]) => [this.#tensorOf.get(name)!, v]));
    return { batchSize: batch, inputs: byTensor(inputs), outputs: byTensor(outputs) };
  }

  /**
   * Runs the network `steps` times; between steps each `feedback` output is copied into its
   * input, on the device where the backend can (the other inputs keep their given values).
   * Resolves with each `collect`ed output's values at every step, concatenated: [steps, ...].
   */
  async executeLoop(
    inputs: Record<string, HostArray>,
    options: ExecuteLoopOptions,
  ): Promise<HostOutputs> {
    if (!this.#ctx) {
      throw new KilnError("INVALID_ARGUMENT", "the execution context has been disposed");
    }
    const { steps, feedback, collect } = this.#checkLoop(options);
    const { batch, byTensor } = this.#checkInputs(inputs, options);
    const profile = this.profiler.enabled;
    const tensors = collect.map((name) => this.#tensorOf.get(name)!);
    let outputs: Map<number, HostArray>;
    if (this.#ctx.executeLoop) {
      const r = await this.#ctx.executeLoop({
        batchSize: batch,
        inputs: byTensor,
        steps,
        feedback,
        collect: tensors,
        profile,
      });
      for (const ms of r.layerMs ?? []) this.profiler.record(ms);
      outputs = r.outputs;
    } else {
      outputs = await this.#loopByExecute(steps, batch, byTensor, feedback, tensors, profile);
    }
    const result: HostOutputs = {};
    collect.forEach((name, i) => (result[name] = outputs.get(tensors[i])!));
    return result;
  }

  /** The loop for a backend without `executeLoop`: one execute per step through the host. */
  async #loopByExecute(
    steps: number,
    batchSize: number,
    first: Map<number, HostArray>,
    feedback: [number, number][],
    collect: number[],
    profile: boolean,
  ): Promise<Map<number, HostArray>> {
    const ctx = this.#ctx!;
    const inputs = new Map(first);
    const wanted = [...new Set([...collect, ...feedback.map(([out]) => out)])];
    const parts = collect.map(() => [] as HostArray[]);
    for (let step = 0; step < steps; step++) {
      const r = await ctx.execute({ batchSize, inputs, outputs: wanted, profile });
      if (r.layerMs) this.profiler.record(r.layerMs);
      collect.forEach((t, i) => parts[i].push(r.outputs.get(t)!));
      for (const [out, input] of feedback) inputs.set(input, r.outputs.get(out)!);
    }
    return new Map(collect.map((t, i) => {
      const one = parts[i][0];
      const all = newHostArray(dtypeOfArray(one), steps * one.length);
      parts[i].forEach((p, step) => all.set(p as never, step * one.length));
      return [t, all];
    }));
  }

  /** Checks steps, feedback pairs (output → input of equal dims and dtype) and collect names. */
  #checkLoop(options: ExecuteLoopOptions) {
    const bad = (message: string, tensor?: string): never => {
      throw new KilnError("INVALID_ARGUMENT", `executeLoop: ${message}`, { tensor });
    };
    if (options === null || typeof options !== "object") bad("expects an options object");
    const { steps, feedback = {}, collect = [] } = options;
    if (!(Number.isInteger(steps) && steps >= 1)) {
      bad(`steps must be a positive integer, got ${steps}`);
    }
    const binding = (name: string, isInput: boolean, where: string) => {
      const b = this.engine.binding(name);
      if (!b || b.isInput !== isInput) {
        const kind = isInput ? "input" : "output";
        const names = this.engine.bindings.filter((x) => x.isInput === isInput)
          .map((x) => `"${x.name}"`).join(", ");
        bad(`${where}: "${name}" is not an ${kind} binding (${kind}s: ${names})`, name);
      }
      return b!;
    };
    if (feedback === null || typeof feedback !== "object") {
      bad("feedback must be an object of output binding → input binding names");
    }
    const pairs: [number, number][] = [];
    const fedBy = new Map<string, string>();
    for (const [outName, inName] of Object.entries(feedback)) {
      const where = `feedback "${outName}" → "${inName}"`;
      const out = binding(outName, false, where);
      const input = binding(String(inName), true, where);
      if (fedBy.has(input.name)) {
        bad(`input "${input.name}" is fed by both "${fedBy.get(input.name)}" and "${outName}"`);
      }
      fedBy.set(input.name, outName);
      if (!sameDims(out.shape, input.shape) || out.dtype !== input.dtype) {
        bad(
          `feedback "${outName}" → "${input.name}": the output is ${
            fmt(out.shape)
          } ${out.dtype}, ` +
            `the input ${fmt(input.shape)} ${input.dtype}; dims and dtypes must be equal`,
          outName,
        );
      }
      pairs.push([this.#tensorOf.get(outName)!, this.#tensorOf.get(input.name)!]);
    }
    if (!Array.isArray(collect)) bad("collect must be an array of output binding names");
    collect.forEach((name, i) => {
      binding(name, false, "collect");
      if (collect.indexOf(name) !== i) bad(`collect names "${name}" twice`, name);
    });
    return { steps, feedback: pairs, collect: [...collect] };
  }

  #checkInputs(inputs: Record<string, HostArray>, options: ExecuteOptions) {
    if (inputs === null || typeof inputs !== "object") {
      throw new KilnError(
        "INVALID_ARGUMENT",
        "execute() expects an object of input arrays by binding name",
      );
    }
    const ins = this.#ins;
    const names = () => ins.map((b) => `"${b.name}"`).join(", ");
    for (const name of Object.keys(inputs)) {
      if (!ins.some((b) => b.name === name)) {
        const known = names();
        throw new KilnError(
          "INVALID_ARGUMENT",
          `"${name}" is not an input binding (inputs: ${known})`,
          { tensor: name },
        );
      }
    }
    let batch = options.batchSize;
    if (batch !== undefined && !(Number.isInteger(batch) && batch >= 1)) {
      throw new KilnError("INVALID_ARGUMENT", `batchSize must be a positive integer, got ${batch}`);
    }
    for (const b of ins) {
      const data = inputs[b.name];
      if (data === undefined) {
        throw new KilnError(
          "INVALID_ARGUMENT",
          `input "${b.name}" is missing (inputs: ${names()})`,
          { tensor: b.name },
        );
      }
      if (!ArrayBuffer.isView(data) || data instanceof DataView) {
        throw new KilnError("INVALID_ARGUMENT", `input "${b.name}" must be a typed array`, {
          tensor: b.name,
        });
      }
      const got = arrayDType(data);
      if (got !== b.dtype) {
        throw new KilnError(
          "INVALID_ARGUMENT",
          `input "${b.name}" is ${got ?? data.constructor.name}; the binding is ${b.dtype} (${
            expectedArray(b.dtype)
          })`,
          { tensor: b.name },
        );
      }
      const per = itemVolume(b.shape);
      if (isBatched(b.shape)) {
        if (batch === undefined) {
          if (data.length % per !== 0 || data.length === 0) {
            throw new KilnError(
              "INVALID_ARGUMENT",
              `input "${b.name}" has ${data.length} elements, not a multiple of ${per} (one item of ${
                fmt(b.shape)
              })`,
              { tensor: b.name },
            );
          }
          batch = data.length / per;
        }
        if (data.length !== batch * per) {
          throw new KilnError(
            "INVALID_ARGUMENT",
            `input "${b.name}" has ${data.length} elements; batch ${batch} of ${
              fmt(b.shape)
            } needs ${batch * per}`,
            { tensor: b.name },
          );
        }
      } else if (data.length !== per) {
        throw new KilnError(
          "INVALID_ARGUMENT",
          `input "${b.name}" has ${data.length} elements; ${fmt(b.shape)} needs ${per}`,
          {
            tensor: b.name,
          },
        );
      }
    }
    batch ??= 1;
    if (batch > this.engine.maxBatchSize) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `batch ${batch} exceeds the engine's maxBatchSize ${this.engine.maxBatchSize}`,
      );
    }
    const byTensor = new Map<number, HostArray>();
    for (let i = 0; i < ins.length; i++) byTensor.set(this.#inTensors[i], inputs[ins[i].name]);
    return { batch, byTensor };
  }

  [Symbol.dispose](): void {
    this.#ctx?.[Symbol.dispose]();
    this.#ctx = undefined;
  }
}

/** Loads a serialized plan on a device (any device of the plan's kind and architecture). */
export async function deserializeEngine(
  bytes: Uint8Array,
  options: { device?: DeviceSpec; logger?: Logger } = {},
): Promise<Engine> {
  if (!(bytes instanceof Uint8Array)) {
    throw new KilnError("INVALID_ARGUMENT", "deserializeEngine expects the plan as a Uint8Array");
  }
  const backend = await selectBackend(options.device ?? "auto", options.logger ?? new Logger());
  return Engine.load(bytes, backend);
}

/**
 * The checksum and hashes catch a damaged plan, not one written with valid hashes around a
 * wrong manifest (crafted, or from a buggy builder). Before a kernel sees it, every layer is
 * checked as verify() checks a network (attributes, input count, output shapes and dtypes,
 * weights), layers must run after the writers of their inputs, each tensor has one writer, and
 * tensors live at the same time must not share arena bytes.
 */
function checkManifest(m: Manifest, weights: Record<string, HostArray>[]): void {
  const fail = (message: string, where: { layer?: string; tensor?: string } = {}): never => {
    throw new KilnError("PLAN_INVALID", `invalid plan: ${message}`, where);
  };
  const tname = (t: number) => `tensor ${t} ("${m.tensors[t].name}")`;
  const names = new Set<string>();
  const written = new Set<number>();
  for (const b of m.bindings) {
    if (names.has(b.name)) fail(`two bindings are named "${b.name}"`, { tensor: b.name });
    names.add(b.name);
    if (b.isInput) written.add(b.tensor);
  }
  m.layers.forEach((l, li) => {
    const where = { layer: l.name };
    for (const t of l.inputs) {
      if (!written.has(t)) fail(`layer "${l.name}" reads ${tname(t)} before it is written`, where);
    }
    for (const t of l.outputs) {
      if (written.has(t)) fail(`layer "${l.name}" writes ${tname(t)}, already written`, where);
      written.add(t);
    }
    if (!isLayerKind(l.kind)) fail(`layer "${l.name}" has unknown kind "${l.kind}"`, where);
    const def = LAYERS[l.kind as keyof typeof LAYERS] as AnyDef;
    if (l.inputs.length < def.inputs.min || l.inputs.length > def.inputs.max) {
      fail(
        `layer "${l.name}" has ${l.inputs.length} inputs; ${def.kind} takes ${def.inputs.min}..${def.inputs.max}`,
        where,
      );
    }
    try {
      const ws = new Map(
        Object.entries(l.weights).map((
          [slot, w],
        ) => [slot, { dtype: w.dtype, values: weights[li][slot] }]),
      );
      const ctx = {
        layer: l.name,
        inputs: l.inputs.map((t) => ({ dims: m.tensors[t].dims, dtype: m.tensors[t].dtype })),
        attrs: parseAttrs(def, l.name, l.attrs),
        weights: ws,
      };
      const outs = inferShapeOf(def, ctx);
      if (outs.length !== l.outputs.length) {
        fail(
          `layer "${l.name}" has ${l.outputs.length} outputs; its attributes give ${outs.length}`,
          where,
        );
      }
      outs.forEach((o, i) => {
        const t = m.tensors[l.outputs[i]];
        if (!sameDims(o.dims, t.dims) || o.dtype !== t.dtype) {
          fail(
            `layer "${l.name}" output ${tname(l.outputs[i])} is ${
              formatDims(t.dims)
            } ${t.dtype} but its inputs and attributes give ${formatDims(o.dims)} ${o.dtype}`,
            where,
          );
        }
      });
      const problems = checkWeights(def, ctx, ws, false);
      if (problems.length) fail(`layer "${l.name}": ${problems.join("; ")}`, where);
    } catch (e) {
      if (e instanceof KilnError && e.code === "PLAN_INVALID") throw e;
      throw new KilnError("PLAN_INVALID", `invalid plan: ${(e as Error).message}`, {
        ...where,
        cause: e,
      });
    }
  });
  for (const b of m.bindings) {
    if (!b.isInput && !written.has(b.tensor)) {
      fail(`output "${b.name}" is written by no layer`, { tensor: b.name });
    }
  }
  const views = [...viewProblems(m), ...aliasProblems(m)];
  if (views.length) fail(views.join("; "));
  checkArena(m, fail);
}

/** Tensors whose lifetimes overlap (as builder/memory.ts defines them) must not share bytes. */
function checkArena(m: Manifest, fail: (message: string) => never): void {
  const n = m.tensors.length;
  const first = new Array<number>(n).fill(Infinity), last = new Array<number>(n).fill(-Infinity);
  m.layers.forEach((l, i) => {
    for (const t of [...l.inputs, ...l.outputs]) {
      first[t] = Math.min(first[t], i);
      last[t] = Math.max(last[t], i);
    }
  });
  for (const b of m.bindings) {
    if (b.isInput) first[b.tensor] = Math.min(first[b.tensor], -1);
    else last[b.tensor] = Math.max(last[b.tensor], m.layers.length);
  }
  // A view shares its parent's bytes by design: the parent stands for it (plan/views.ts).
  m.tensors.forEach((t, i) => {
    if (!t.view || !Number.isFinite(first[i])) return;
    first[t.view.of] = Math.min(first[t.view.of], first[i]);
    last[t.view.of] = Math.max(last[t.view.of], last[i]);
  });
  // So does an alias its root's (plan/aliases.ts); a constant's alias is not in the arena.
  m.tensors.forEach((t, i) => {
    if (!t.alias || !("tensor" in t.alias) || !Number.isFinite(first[i])) return;
    first[t.alias.tensor] = Math.min(first[t.alias.tensor], first[i]);
    last[t.alias.tensor] = Math.max(last[t.alias.tensor], last[i]);
  });
  const size = m.tensors.map((t) =>
    t.dims.reduce<number>((a, d) => a * (d === "N" ? m.maxBatchSize : d), 1) *
    bytesPerElement(t.dtype)
  );
  const off = m.memory.offsets;
  const used = [...m.tensors.keys()].filter((i) =>
    Number.isFinite(first[i]) && size[i] > 0 && !m.tensors[i].view && !m.tensors[i].alias
  );
  used.sort((a, b) => off[a] - off[b]);
  for (let x = 0; x < used.length; x++) {
    const a = used[x];
    for (let y = x + 1; y < used.length && off[used[y]] < off[a] + size[a]; y++) {
      const b = used[y];
      if (first[a] <= last[b] && first[b] <= last[a]) {
        fail(
          `tensors ${a} ("${m.tensors[a].name}") and ${b} ("${
            m.tensors[b].name
          }") are live together but share arena bytes`,
        );
      }
    }
  }
}

function weightViews(plan: PlanData): Record<string, HostArray>[] {
  const sec = plan.weights;
  const buf = sec.buffer, base = sec.byteOffset;
  return plan.manifest.layers.map((l) => {
    const out: Record<string, HostArray> = {};
    for (const [slot, w] of Object.entries(l.weights)) {
      const off = base + w.offset;
      switch (w.dtype) {
        case "float32":
          out[slot] = new Float32Array(buf, off, w.count);
          break;
        case "int32":
          out[slot] = new Int32Array(buf, off, w.count);
          break;
        case "int8":
          out[slot] = new Int8Array(buf, off, w.count);
          break;
        case "float16":
          out[slot] = new Uint16Array(buf, off, w.count);
          break;
      }
    }
    return out;
  });
}

function arrayDType(a: ArrayBufferView): DType | undefined {
  if (
    a instanceof Float32Array || a instanceof Int32Array || a instanceof Int8Array ||
    a instanceof Uint16Array
  ) {
    return dtypeOfArray(a);
  }
  return undefined;
}

function expectedArray(d: DType): string {
  return {
    float32: "Float32Array",
    int32: "Int32Array",
    int8: "Int8Array",
    float16: "Uint16Array of float16 bits",
  }[d];
}

function fmt(d: Dims): string {
  return `[${d.join(",")}]`;
}
