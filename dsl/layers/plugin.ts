/**
 * Plugin layers: user-defined operations, as TensorRT's IPluginV2 / IPluginCreator.
 *
 * # Writing a plugin
 *
 * A plugin is a `PluginCreator`: a name and a version (together its key in the registry), a
 * schema for its parameters, shape and dtype rules, and a CPU implementation.
 *
 * ```ts
 * import { z } from "zod";
 * import { registerPlugin } from "./mod.ts"; // Kiln's public API
 *
 * registerPlugin({
 *   name: "ClipByValue",
 *   version: "1",
 *   params: z.object({ min: z.number().default(0), max: z.number() }),
 *   inferShape: (inputs) => [inputs[0]],              // same dims and dtype as the input
 *   supportsDType: (dtype) => dtype === "float32",
 *   cpu: ({ attrs, inputs, outputs }) => {            // attrs: the parsed params
 *     const x = inputs[0].data, y = outputs[0].data;
 *     for (let i = 0; i < x.length; i++) y[i] = Math.min(attrs.max, Math.max(attrs.min, x[i]));
 *   },
 * });
 *
 * const y = net.addPlugin(x, { plugin: "ClipByValue", params: { max: 6 } }).output();
 * // or: x.plugin("ClipByValue", { max: 6 })
 * ```
 *
 * - `params` validates the layer's `params` (a JSON object) and fills defaults. Its errors are
 *   reported as attribute errors naming the layer and the parameter.
 * - `inferShape(inputs, params)` returns one `{dims, dtype}` per output. Dims may keep the
 *   symbolic batch `N` in front; throw `shapeError("...")` (from `_define.ts`) or a `KilnError`
 *   for inputs the plugin cannot take: the message is reported with the layer's name.
 * - `supportsDType(dtype, input, params)` says which dtypes each input may have.
 * - `inputs: {min, max}` (optional) bounds the number of inputs.
 * - `weights(inputs, params)` (optional) declares weight slots with their dims, like built-in
 *   layers; set them with `layer.setWeights(slot, values)`. They travel in the plan's weight
 *   section and reach `cpu` as `args.weights[slot]`.
 * - `cpu(args)` receives what built-in CPU kernels receive (`CpuKernelArgs`): the layer's
 *   name, `attrs` (here: the parsed params), `weights`, and `inputs`/`outputs` as host arrays
 *   with concrete dims (batch substituted). Write every output element.
 * - `enqueueCuda(args)` (optional) is the GPU implementation: it receives device pointers with
 *   concrete dims, weights' device addresses, the context's `stream` (a kiln_stream) and
 *   workspace, and must only enqueue work on that stream (the first run of each batch size is
 *   captured into a CUDA graph): no synchronizing, allocating or reading results. Without it,
 *   building an engine for a GPU fails, naming the layer.
 *
 * # Serialization
 *
 * A plan stores a plugin layer as its name, version and params (as given, JSON) — never code.
 * Register the same creator in the process that loads the plan (`deserializeEngine`); a layer
 * whose plugin is not registered there fails when the engine runs, with a `KilnError` that
 * names the layer and lists the registered plugins. The params are parsed again by that
 * process's creator, so a creator must keep its meaning and its defaults stable within one
 * version: change either, and bump the version.
 */
import { z } from "zod";
import { KilnError } from "../../errors.ts";
import { formatDims, N } from "../ir/dims.ts";
import { type DType, DTYPES, type HostArray } from "../ir/dtype.ts";
import {
  defineLayer,
  ShapeError,
  type TensorDesc,
  type TensorHandle,
  type WeightSlot,
} from "./_define.ts";

/** A JSON value, as plugin params hold them. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

/** A tensor as a plugin's CPU implementation sees it (the CPU backend's `HostTensor`). */
export interface PluginHostTensor {
  data: HostArray;
  dims: number[];
}

/** What `PluginCreator.cpu` receives: the shape of the CPU backend's `CpuKernelArgs`. */
export interface PluginCpuArgs<P> {
  layer: string;
  /** The plugin's params, parsed by its schema (defaults filled). */
  attrs: P;
  weights: Record<string, HostArray>;
  inputs: PluginHostTensor[];
  outputs: PluginHostTensor[];
}

/** A tensor as a plugin's CUDA implementation sees it: device memory, concrete dims. */
export interface PluginDeviceTensor {
  /** Device address of element 0. */
  ptr: Deno.PointerValue;
  dims: number[];
  dtype: DType;
}

/**
 * What `PluginCreator.enqueueCuda` receives. It must only enqueue work on `stream` (a
 * kiln_stream handle: launches through libkiln, or its cudaStream_t via the plugin's own
 * library) and return: no synchronizing, no allocating, no host reads of device memory, since
 * the first run of each batch size is captured into a CUDA graph and replayed afterwards.
 */
export interface PluginCudaArgs<P> {
  layer: string;
  /** The plugin's params, parsed by its schema (defaults filled). */
  attrs: P;
  /** Device address of each weight slot. */
  weights: Record<string, Deno.PointerValue>;
  inputs: PluginDeviceTensor[];
  outputs: PluginDeviceTensor[];
  /** The kiln_stream to enqueue on (its device is current). */
  stream: Deno.PointerValue;
  /** The context's scratch memory, free for the duration of this layer. */
  workspace: { ptr: Deno.PointerValue; bytes: number };
}

/** Anything with zod's `safeParse` (a zod schema, or a hand-written validator). */
export interface ParamsSchema<P> {
  safeParse(raw: unknown):
    | { success: true; data: P }
    | {
      success: false;
      error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] };
    };
}

// deno-lint-ignore no-explicit-any
export interface PluginCreator<P = any> {
  /** The plugin's name, as layers refer to it. */
  readonly name: string;
  /** Its version (a string, as TensorRT's); name and version together are the registry key. */
  readonly version: string;
  /** One line shown in listings. */
  readonly summary?: string;
  readonly params: ParamsSchema<P>;
  /** How many inputs the plugin takes (any number when omitted). */
  readonly inputs?: { min: number; max: number };
  inferShape(inputs: readonly TensorDesc[], params: P): TensorDesc[];
  supportsDType(dtype: DType, input: number, params: P): boolean;
  weights?(inputs: readonly TensorDesc[], params: P): Record<string, WeightSlot>;
  cpu(args: PluginCpuArgs<P>): void;
  /**
   * The CUDA implementation (optional): enqueues the layer's work on `args.stream`. Without it
   * an engine with this plugin cannot be built for a GPU (the build names the layer).
   */
  enqueueCuda?(args: PluginCudaArgs<P>): void;
}

const registry = new Map<string, PluginCreator>();
const keyOf = (name: string, version: string) => `${name}\u0000${version}`;

/** Registers a plugin creator. Registering the same object twice is a no-op. */
export function registerPlugin<P>(creator: PluginCreator<P>): void {
  const problems = creatorProblems(creator);
  if (problems.length) {
    throw new KilnError("INVALID_ARGUMENT", `registerPlugin: ${problems.join("; ")}`);
  }
  const key = keyOf(creator.name, creator.version);
  const existing = registry.get(key);
  if (existing === creator) return;
  if (existing) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `registerPlugin: plugin "${creator.name}" version "${creator.version}" is already ` +
        `registered (by another creator); give the new one another name or version`,
    );
  }
  registry.set(key, creator);
}

/** The creator registered under `name` and `version`, if any. */
export function getPluginCreator(name: string, version = "1"): PluginCreator | undefined {
  return registry.get(keyOf(name, version));
}

/** Every registered plugin as `name@version`, sorted. */
export function registeredPlugins(): string[] {
  return [...registry.values()].map((c) => `${c.name}@${c.version}`).sort();
}

function creatorProblems(c: PluginCreator<unknown>): string[] {
  if (c === null || typeof c !== "object") return [`a creator must be an object, got ${c}`];
  const p: string[] = [];
  if (typeof c.name !== "string" || c.name === "") p.push(`"name" must be a non-empty string`);
  if (typeof c.version !== "string" || c.version === "") {
    p.push(`"version" must be a non-empty string`);
  }
  if (!c.params || typeof c.params.safeParse !== "function") {
    p.push(`"params" must be a schema with safeParse (a zod schema)`);
  }
  for (const f of ["inferShape", "supportsDType", "cpu"] as const) {
    if (typeof c[f] !== "function") p.push(`"${f}" must be a function`);
  }
  if (c.weights !== undefined && typeof c.weights !== "function") {
    p.push(`"weights" must be a function when given`);
  }
  if (c.enqueueCuda !== undefined && typeof c.enqueueCuda !== "function") {
    p.push(`"enqueueCuda" must be a function when given`);
  }
  const n = c.inputs;
  if (
    n !== undefined &&
    !(Number.isInteger(n.min) && n.min >= 0 && (Number.isInteger(n.max) || n.max === Infinity) &&
      n.max >= n.min)
  ) {
    p.push(`"inputs" must be {min, max} with 0 <= min <= max`);
  }
  const who = typeof c.name === "string" ? ` (plugin "${c.name}")` : "";
  return p.map((m) => m + who);
}

const attrs = z.object({
  /** The registered plugin's name. */
  plugin: z.string().min(1),
  version: z.string().min(1).default("1"),
  /** The plugin's parameters: JSON, so that a plan can carry them. */
  params: z.record(z.string(), z.json()).default({}),
});

export type PluginAttrs = z.output<typeof attrs>;

/**
 * The creator of a plugin layer and its parsed params, or a KilnError naming the layer (an
 * unknown plugin lists the registered ones). Used by shape inference and by backends.
 */
export function resolvePlugin(
  layer: string,
  a: PluginAttrs,
): { creator: PluginCreator; params: unknown } {
  const creator = getPluginCreator(a.plugin, a.version);
  if (!creator) {
    const versions = [...registry.values()].filter((c) => c.name === a.plugin);
    const known = registeredPlugins();
    const why = versions.length
      ? `plugin "${a.plugin}" has version(s) ${
        versions.map((c) => `"${c.version}"`).join(", ")
      }; version "${a.version}" is not registered`
      : `no plugin "${a.plugin}" is registered (registered plugins: ${
        known.length ? known.join(", ") : "none"
      }); register it with registerPlugin() before building or deserializing`;
    throw new KilnError("INVALID_ATTRIBUTE", `Plugin layer "${layer}": ${why}`, { layer });
  }
  const r = creator.params.safeParse(a.params);
  if (!r.success) {
    const msgs = r.error.issues.map((iss) =>
      `param "${iss.path.length ? iss.path.map(String).join(".") : "(params)"}": ${iss.message}`
    );
    throw new KilnError(
      "INVALID_ATTRIBUTE",
      `Plugin layer "${layer}" (plugin "${a.plugin}" version "${a.version}"): ${msgs.join("; ")}`,
      { layer },
    );
  }
  return { creator, params: r.data };
}

/** Checks what a creator's inferShape returned, so a faulty plugin is named, not crashed on. */
function checkOutputs(outs: unknown, plugin: string): TensorDesc[] {
  const ok = Array.isArray(outs) &&
    outs.every((o) =>
      o && Array.isArray(o.dims) && DTYPES.includes(o.dtype) &&
      o.dims.every((d: unknown, i: number) =>
        (d === N && i === 0) || (Number.isInteger(d) && (d as number) > 0)
      )
    );
  if (!ok) {
    throw new ShapeError(
      `plugin "${plugin}" inferShape returned ${
        JSON.stringify(outs)
      }; expected an array of {dims, dtype} with positive integer dims (N only first)`,
    );
  }
  return outs as TensorDesc[];
}

export const Plugin = defineLayer({
  kind: "Plugin",
  summary: "a user-defined operation from the plugin registry (registerPlugin)",
  attrs,
  inputs: { min: 0, max: Infinity },
  // Every dtype passes here; the plugin's supportsDType decides, per input.
  inputDTypes: [DTYPES],
  weights: (ctx) => {
    const { creator, params } = resolvePlugin(ctx.layer, ctx.attrs);
    return creator.weights?.(ctx.inputs, params) ?? {};
  },
  inferShape: (ctx) => {
    const { creator, params } = resolvePlugin(ctx.layer, ctx.attrs);
    const who = `plugin "${creator.name}" version "${creator.version}"`;
    const n = creator.inputs;
    if (n && (ctx.inputs.length < n.min || ctx.inputs.length > n.max)) {
      throw new ShapeError(
        `${who} takes ${
          n.min === n.max ? n.min : `${n.min} to ${n.max}`
        } input(s), got ${ctx.inputs.length}`,
      );
    }
    ctx.inputs.forEach((t, i) => {
      if (!creator.supportsDType(t.dtype, i, params)) {
        throw new ShapeError(
          `input ${i} ${formatDims(t.dims)} is ${t.dtype}, which ${who} does not support`,
        );
      }
    });
    return checkOutputs(creator.inferShape(ctx.inputs, params), creator.name);
  },
  fluent: {
    /** Output 0 of a single-input plugin layer (`addPlugin` for several inputs or outputs). */
    plugin: (
      t: TensorHandle,
      plugin: string,
      params: Record<string, JsonValue> = {},
      version = "1",
    ) => ({ inputs: [t], attrs: { plugin, version, params } }),
  },
});
