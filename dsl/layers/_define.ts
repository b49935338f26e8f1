/**
 * `defineLayer`: one layer kind = one definition (attribute schema in zod with defaults, the
 * weight slots it takes, shape inference and the fluent shortcuts it offers on tensors).
 */
import { z } from "zod";
import { KilnError } from "../../errors.ts";
import type { Dims } from "../ir/dims.ts";
import { formatDims } from "../ir/dims.ts";
import type { DType } from "../ir/dtype.ts";
import type { Weights, WeightsInput } from "../ir/weights.ts";

export interface TensorDesc {
  dims: Dims;
  dtype: DType;
}

export interface ShapeContext<A> {
  /** The layer's name (for messages). */
  layer: string;
  inputs: readonly TensorDesc[];
  attrs: A;
  /** Weights present on the layer (shape inference may depend on them, e.g. Constant). */
  weights: ReadonlyMap<string, Weights>;
}

export interface WeightSlot {
  /** Expected dims; the element count is checked. */
  dims: readonly number[];
  optional?: boolean;
  /** Allowed dtypes; float32 when omitted. */
  dtypes?: readonly DType[];
}

/**
 * A tensor as layer definitions see it. (Definitions do not name the `Tensor` class: the
 * class's fluent methods are typed from the definitions, and the reverse would be circular.)
 */
export interface TensorHandle {
  readonly name: string;
  readonly dims: Dims;
  readonly dtype: DType;
}

/** What a fluent shortcut on a tensor expands to. */
export interface FluentCall {
  inputs: TensorHandle[];
  attrs: Record<string, unknown>;
  name?: string;
  /** Which output the shortcut returns (0 by default). */
  output?: number;
  /** Weights by slot, set on the new layer (slots `addX` does not take, like RNN gates). */
  weights?: Record<string, WeightsInput>;
}

// deno-lint-ignore no-explicit-any
export type FluentFn = (self: TensorHandle, ...args: any[]) => FluentCall;

/** A subclass of `Layer` with methods of its own kind (e.g. RNNv2's setWeightsForGate). */
// deno-lint-ignore no-explicit-any
export type LayerClass = new (...args: any[]) => object;

export interface LayerDef<
  K extends string = string,
  S extends z.ZodType = z.ZodType,
  W extends string = string,
  F extends Record<string, FluentFn> = Record<string, FluentFn>,
  C extends LayerClass = LayerClass,
> {
  kind: K;
  /** One-line description shown in errors and docs. */
  summary: string;
  attrs: S;
  /** How many inputs the layer takes. */
  inputs: { min: number; max: number };
  /** Allowed dtypes per input (the last entry applies to the rest); float32 when omitted. */
  inputDTypes?: readonly (readonly DType[])[];
  /** Weight slots a caller may pass among the attributes of `addX` (e.g. `weights`, `bias`). */
  weightArgs?: readonly W[];
  /** Weight slots with their expected dims (may include slots set later, like RNN gates). */
  weights?: (ctx: ShapeContext<z.output<S>>) => Record<string, WeightSlot>;
  inferShape: (ctx: ShapeContext<z.output<S>>) => TensorDesc[];
  fluent?: F;
  /** The class `addX` instantiates; must extend `Layer` (dsl/ir/graph.ts). */
  layerClass?: C;
}

export function defineLayer<
  K extends string,
  S extends z.ZodType,
  W extends string = never,
  F extends Record<string, FluentFn> = Record<never, FluentFn>,
  C extends LayerClass = LayerClass,
>(def: LayerDef<K, S, W, F, C>): LayerDef<K, S, W, F, C> {
  return def;
}

/** What a caller passes to `addX`: the schema's input attributes plus weights by slot name. */
export type Args<S extends z.ZodType, W extends string = never> =
  & z.input<S>
  & { [k in W]?: WeightsInput }
  & { name?: string };

/** Thrown by `inferShape`; the network turns it into a `KilnError` naming the layer. */
export class ShapeError extends Error {
  constructor(message: string, readonly tensor?: string) {
    super(message);
  }
}

export function shapeError(message: string): never {
  throw new ShapeError(message);
}

/** Requires input `i` to have exactly `rank` dims (or one of several ranks). */
export function expectRank(ctx: ShapeContext<unknown>, i: number, ...ranks: number[]): Dims {
  const d = ctx.inputs[i].dims;
  if (!ranks.includes(d.length)) {
    shapeError(
      `input ${i} must have rank ${ranks.join(" or ")}, got ${formatDims(d)} (rank ${d.length})`,
    );
  }
  return d;
}

/** A concrete (non-batch) dim as a number. */
export function num(d: Dims[number], what: string): number {
  if (typeof d !== "number") shapeError(`${what} cannot be the symbolic batch dimension`);
  return d;
}

/** Validates attributes with the layer's zod schema, naming the layer and each bad attribute. */
export function parseAttrs<S extends z.ZodType>(
  def: LayerDef<string, S, string>,
  layer: string,
  raw: unknown,
): z.output<S> {
  const r = def.attrs.safeParse(raw ?? {});
  if (r.success) return r.data;
  const msgs = r.error.issues.map((iss) => {
    const attr = iss.path.length ? iss.path.join(".") : "(attributes)";
    const given = iss.path.length ? valueAt(raw, iss.path as PropertyKey[]) : raw;
    return `attribute "${attr}": ${iss.message} (given: ${show(given)})`;
  });
  throw new KilnError(
    "INVALID_ATTRIBUTE",
    `${def.kind} layer "${layer}": ${msgs.join("; ")}`,
    { layer },
  );
}

function valueAt(raw: unknown, path: PropertyKey[]): unknown {
  let v = raw;
  for (const p of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function show(v: unknown): string {
  if (v === undefined) return "nothing";
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as Float32Array).length})`;
  try {
    const s = JSON.stringify(v);
    return s.length > 80 ? s.slice(0, 77) + "..." : s;
  } catch {
    return String(v);
  }
}

/** zod helpers shared by layer definitions. */
export const pair = z.union([
  z.number().int().nonnegative().transform((v) => [v, v] as [number, number]),
  z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
], { error: "expected a non-negative integer or a pair [h, w] of them" });
export const positivePair = z.union([
  z.number().int().positive().transform((v) => [v, v] as [number, number]),
  z.tuple([z.number().int().positive(), z.number().int().positive()]),
], { error: "expected a positive integer or a pair [h, w] of them" });
