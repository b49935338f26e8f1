/**
 * The fluent network-definition API. Two styles, same IR:
 *
 *   const conv = net.addConvolution(data, { outputs: 20, kernel: 5, weights, bias });
 *   net.input("data", [N, 1, 28, 28]).conv({...}).maxPool({ window: 2 }).fc({...}).relu().softmax();
 *
 * `addX` methods and tensor shortcuts are generated from the list in `layers/mod.ts`.
 */
import { KilnError } from "../errors.ts";
import { type Dims, formatDims, N } from "./ir/dims.ts";
import { type DType, DTYPES } from "./ir/dtype.ts";
import { Layer, NetworkGraph, Tensor } from "./ir/graph.ts";
import { toWeights, type Weights, type WeightsInput } from "./ir/weights.ts";
import { verifyNetwork, type VerifyReport } from "./ir/verify.ts";
import {
  type Args,
  type FluentFn,
  type LayerDef,
  parseAttrs,
  type ShapeContext,
} from "./layers/_define.ts";
import { type AnyDef, checkWeights, inferShapeOf } from "./layers/_check.ts";
import { isLayerKind, type LayerDefs, type LayerKind, LAYERS } from "./layers/mod.ts";

type ArgsOf<D> = D extends LayerDef<string, infer S, infer W, Record<string, FluentFn>> ? Args<S, W>
  : never;

type LayerOf<D> = D extends LayerDef<string, infer _S, infer _W, infer _F, infer C>
  ? (InstanceType<C> extends Layer ? InstanceType<C> : Layer)
  : Layer;

/** `addConvolution(input, args)`, `addElementWise([a, b], args)`, ... one per layer kind. */
export type AddMethods = {
  [K in LayerKind as `add${K}`]: (
    inputs: Tensor | Tensor[],
    args: ArgsOf<LayerDefs[K]>,
  ) => LayerOf<LayerDefs[K]>;
};

type FluentOf<D> = D extends LayerDef<string, infer _S, infer _W, infer F> ? {
    // deno-lint-ignore no-explicit-any
    [M in keyof F]: F[M] extends (self: any, ...args: infer A) => any ? (...args: A) => Tensor
      : never;
  }
  : never;

// deno-lint-ignore no-explicit-any
type UnionToIntersection<U> = (U extends any ? (x: U) => void : never) extends (x: infer I) => void
  ? I
  : never;

/** Shortcuts on tensors: `t.conv({...})`, `t.relu()`, `t.add(u)`, ... */
export type TensorMethods = UnionToIntersection<
  { [K in LayerKind]: FluentOf<LayerDefs[K]> }[LayerKind]
>;

declare module "./ir/graph.ts" {
  interface Tensor extends TensorMethods {}
}

export class Network extends NetworkGraph {
  #counter = 0;

  /** Declares a network input. The leading dim may be `N`, the batch. */
  input(name: string, dims: Dims, dtype: DType = "float32"): Tensor {
    checkInputDims(name, dims);
    if (!DTYPES.includes(dtype)) {
      throw new KilnError("INVALID_ARGUMENT", `dtype must be one of ${DTYPES.join(", ")}`, {
        tensor: name,
      });
    }
    const t = new Tensor(this, name, [...dims], dtype);
    this.registerTensor(t);
    this.inputs.push(t);
    return t;
  }

  /** Marks a tensor as a network output, optionally renaming it (the binding's name). */
  markOutput(tensor: Tensor | undefined, name?: string): Tensor {
    if (!(tensor instanceof Tensor)) {
      throw new KilnError("INVALID_ARGUMENT", `markOutput expects a Tensor, got ${String(tensor)}`);
    }
    if (tensor.graph !== this) {
      throw new KilnError("INVALID_ARGUMENT", "the tensor belongs to another network", {
        tensor: tensor.name,
      });
    }
    if (name !== undefined) this.renameTensor(tensor, name);
    if (!this.outputs.includes(tensor)) this.outputs.push(tensor);
    return tensor;
  }

  unmarkOutput(tensor: Tensor): void {
    const i = this.outputs.indexOf(tensor);
    if (i >= 0) this.outputs.splice(i, 1);
  }

  /** Adds a layer of any kind; `args` holds attributes, weights by slot name and an optional `name`. */
  addLayer(kind: string, inputs: Tensor | Tensor[], args: Record<string, unknown> = {}): Layer {
    if (!isLayerKind(kind)) {
      throw new KilnError(
        "UNSUPPORTED",
        `unknown layer kind "${kind}"; known kinds: ${Object.keys(LAYERS).join(", ")}`,
      );
    }
    const def = LAYERS[kind] as AnyDef;
    const { name: givenName, ...rest } = args as { name?: unknown };
    if (givenName !== undefined && typeof givenName !== "string") {
      throw new KilnError("INVALID_ARGUMENT", `${kind}: "name" must be a string`);
    }
    const name = this.uniqueLayerName(givenName ?? `${kind.toLowerCase()}_${this.#counter}`);
    this.#counter++;
    const ins = Array.isArray(inputs) ? inputs : [inputs];
    this.#checkInputs(def, name, ins);

    const weights = new Map<string, Weights>();
    const attrsRaw: Record<string, unknown> = {};
    const weightArgs = new Set<string>(def.weightArgs ?? []);
    for (const [k, v] of Object.entries(rest)) {
      if (weightArgs.has(k)) {
        if (v !== undefined) weights.set(k, toWeights(v as WeightsInput, `layer "${name}", ${k}`));
      } else {
        attrsRaw[k] = v;
      }
    }
    const attrs = parseAttrs(def, name, attrsRaw) as Record<string, unknown>;
    const ctx: ShapeContext<unknown> = {
      layer: name,
      inputs: ins.map((t) => ({ dims: t.dims, dtype: t.dtype })),
      attrs,
      weights,
    };
    const outs = inferShapeOf(def, ctx, ins);
    checkWeights(def, ctx, weights, true);

    const LayerCtor = (def.layerClass ?? Layer) as typeof Layer;
    const layer = new LayerCtor(this, name, kind, attrs, weights, ins);
    layer.outputs = outs.map((o, i) => {
      const tname = this.uniqueTensorName(outs.length === 1 ? name : `${name}_out${i}`);
      const t = new Tensor(this, tname, o.dims, o.dtype, layer);
      this.registerTensor(t);
      return t;
    });
    this.registerLayer(layer);
    return layer;
  }

  #checkInputs(def: AnyDef, name: string, ins: Tensor[]): void {
    if (ins.length < def.inputs.min || ins.length > def.inputs.max) {
      const want = def.inputs.min === def.inputs.max
        ? `${def.inputs.min}`
        : def.inputs.max === Infinity
        ? `at least ${def.inputs.min}`
        : `${def.inputs.min} to ${def.inputs.max}`;
      throw new KilnError(
        "INVALID_ARGUMENT",
        `${def.kind} layer "${name}" takes ${want} input(s), got ${ins.length}`,
        { layer: name },
      );
    }
    ins.forEach((t, i) => {
      if (!(t instanceof Tensor)) {
        throw new KilnError(
          "INVALID_ARGUMENT",
          `${def.kind} layer "${name}": input ${i} is not a Tensor (got ${String(t)})`,
          { layer: name },
        );
      }
      if (t.graph !== this) {
        throw new KilnError(
          "INVALID_ARGUMENT",
          `${def.kind} layer "${name}": input ${i} ("${t.name}") belongs to another network`,
          { layer: name, tensor: t.name },
        );
      }
    });
  }

  /** Checks the whole network and throws a `KilnError` listing every problem found. */
  verify(): VerifyReport {
    return verifyNetwork(this, { throwOnError: true });
  }
}

export interface Network extends AddMethods {}

for (const kind of Object.keys(LAYERS)) {
  Object.defineProperty(Network.prototype, `add${kind}`, {
    value: function (this: Network, inputs: Tensor | Tensor[], args: Record<string, unknown>) {
      return this.addLayer(kind, inputs, args);
    },
  });
}

{
  const seen = new Map<string, string>();
  for (const [kind, def] of Object.entries(LAYERS) as [string, AnyDef][]) {
    for (const [method, fn] of Object.entries(def.fluent ?? {})) {
      if (seen.has(method)) {
        throw new Error(
          `fluent method "${method}" is defined by both ${seen.get(method)} and ${kind}`,
        );
      }
      seen.set(method, kind);
      Object.defineProperty(Tensor.prototype, method, {
        value: function (this: Tensor, ...args: unknown[]) {
          const call = fn(this, ...args);
          const net = this.graph as Network;
          const layer = net.addLayer(kind, call.inputs as Tensor[], {
            ...call.attrs,
            ...(call.name !== undefined ? { name: call.name } : {}),
          });
          for (const [slot, w] of Object.entries(call.weights ?? {})) layer.setWeights(slot, w);
          return layer.output(call.output ?? 0);
        },
      });
    }
  }
}

function checkInputDims(name: string, dims: Dims): void {
  const ok = Array.isArray(dims) &&
    dims.every((d, i) => (d === N && i === 0) || (Number.isInteger(d) && (d as number) > 0));
  if (!ok) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `input "${name}": dims must be positive integers, with only the first allowed to be N (the batch); got ${
        Array.isArray(dims) ? formatDims(dims) : String(dims)
      }`,
      { tensor: name },
    );
  }
}

export { N };
