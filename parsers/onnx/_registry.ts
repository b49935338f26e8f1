/**
 * The ONNX importer registry (as onnx-tensorrt's builtin op importers): one importer per op,
 * registered in the file that defines it, with shared helpers that keep most of them to one to
 * three lines. `_import.ts` runs every node's `check` before anything is imported, so that every
 * unsupported node is reported at once.
 */
import type { Dim, Dims } from "../../dsl/ir/dims.ts";
import { formatDims, N } from "../../dsl/ir/dims.ts";
import type { Layer, Tensor } from "../../dsl/ir/graph.ts";
import type { Network } from "../../dsl/network.ts";
import { KilnError, type KilnErrorCode } from "../../errors.ts";
import { ConstTensor } from "./_const.ts";
import { ATTR, attrTypeName, type OnnxAttribute, type OnnxNode } from "./_model.ts";
import { decodeTensor, type ExternalReader } from "./tensor.ts";

/** What a value name stands for: a tensor of the network, or a constant known at import. */
export type OnnxValue = Tensor | ConstTensor;

/** A note or warning about the import, naming the node where there is one. */
export interface OnnxDiagnostic {
  severity: "note" | "warning";
  message: string;
  node?: string;
}

/** Typed access to a node's attributes; a wrong type is an INVALID_ATTRIBUTE naming both. */
export class AttrReader {
  constructor(
    readonly node: OnnxNode,
    readonly external?: ExternalReader,
    readonly file?: string,
  ) {}

  has(name: string): boolean {
    return this.node.attrs.has(name);
  }

  #get(name: string, type: number): OnnxAttribute | undefined {
    const a = this.node.attrs.get(name);
    if (a && a.type !== type) {
      throw new KilnError(
        "INVALID_ATTRIBUTE",
        `${describeNode(this.node)}: attribute "${name}" is ${attrTypeName(a.type)}; ${
          attrTypeName(type)
        } expected`,
        { layer: this.node.name },
      );
    }
    return a;
  }

  int(name: string, fallback: number): number;
  int(name: string): number | undefined;
  int(name: string, fallback?: number): number | undefined {
    const v = this.#get(name, ATTR.INT)?.i;
    return v ?? fallback;
  }

  float(name: string, fallback: number): number;
  float(name: string): number | undefined;
  float(name: string, fallback?: number): number | undefined {
    return this.#get(name, ATTR.FLOAT)?.f ?? fallback;
  }

  string(name: string, fallback: string): string;
  string(name: string): string | undefined;
  string(name: string, fallback?: string): string | undefined {
    return this.#get(name, ATTR.STRING)?.s ?? fallback;
  }

  ints(name: string, fallback: number[]): number[];
  ints(name: string): number[] | undefined;
  ints(name: string, fallback?: number[]): number[] | undefined {
    const a = this.#get(name, ATTR.INTS);
    return a ? a.ints ?? [] : fallback;
  }

  floats(name: string): number[] | undefined {
    const a = this.#get(name, ATTR.FLOATS);
    return a ? a.floats ?? [] : undefined;
  }

  strings(name: string): string[] | undefined {
    const a = this.#get(name, ATTR.STRINGS);
    return a ? a.strings ?? [] : undefined;
  }

  tensor(name: string): ConstTensor | undefined {
    const a = this.#get(name, ATTR.TENSOR);
    if (!a) return undefined;
    if (!a.t) {
      throw new KilnError(
        "INVALID_ATTRIBUTE",
        `${describeNode(this.node)}: attribute "${name}" holds no tensor`,
        { layer: this.node.name },
      );
    }
    const t = decodeTensor(a.t, `${describeNode(this.node)}: attribute "${name}"`, {
      file: this.file,
      external: this.external,
    });
    return new ConstTensor(t.dataType, t.dims, t.values);
  }
}

export interface ImportContext {
  readonly net: Network;
  readonly node: OnnxNode;
  /** The opset of the node's domain. */
  readonly opset: number;
  readonly attr: AttrReader;
  /** Whether input `i` is given (an omitted optional input is "" or past the end). */
  has(i: number): boolean;
  value(i: number): OnnxValue;
  /** The constant value of input `i`, or undefined when it is computed at run time. */
  constant(i: number): ConstTensor | undefined;
  /** Input `i`, which must be a constant: a run-time value is refused naming `what`. */
  constInput(i: number, what: string): ConstTensor;
  /** Input `i` as a network tensor (a constant becomes a Constant layer). */
  tensor(i: number): Tensor;
  dims(i: number): Dims;
  /** A constant as a network tensor (one Constant layer per constant). */
  materialize(c: ConstTensor, name?: string): Tensor;
  /** Adds a Kiln layer named after the node (helper layers: `<node>/<suffix>`). */
  add(kind: string, inputs: Tensor[], args: Record<string, unknown>, suffix?: string): Layer;
  note(message: string): void;
  /** Throws a KilnError naming the node (UNSUPPORTED by default) and the value, if given. */
  fail(message: string, code?: KilnErrorCode, tensor?: string): never;
}

export interface Importer {
  /**
   * Why the node cannot be imported, judged from its attributes and opset alone (input shapes
   * are not known yet). Runs for every node before any import.
   */
  check?(attr: AttrReader, opset: number, node: OnnxNode): string[];
  /**
   * Evaluates the node on the host when every given input is a constant (undefined: not
   * foldable here; the builder's constant folding may still evaluate the layers).
   */
  fold?(ctx: ImportContext): ConstTensor[] | undefined;
  /** Imports the node: one value per ONNX output (a single value for one output). */
  import(ctx: ImportContext): OnnxValue | OnnxValue[];
}

/** Importers of the default domain (ai.onnx) by op type. */
export const IMPORTERS = new Map<string, Importer>();

export function registerOp(ops: string | string[], importer: Importer): void {
  for (const op of Array.isArray(ops) ? ops : [ops]) {
    if (IMPORTERS.has(op)) throw new Error(`an ONNX importer for "${op}" is registered twice`);
    IMPORTERS.set(op, importer);
  }
}

export function describeNode(node: OnnxNode): string {
  return `${node.opType} node ${node.index} "${node.name}"`;
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/** An importer that is one Kiln layer on input 0 (attributes computed from the node). */
export function single(
  kind: string,
  attrs: (ctx: ImportContext) => Record<string, unknown>,
  more: Omit<Importer, "import"> = {},
): Importer {
  return { ...more, import: (ctx) => ctx.add(kind, [ctx.tensor(0)], attrs(ctx)).output(0) };
}

/** Normalizes an ONNX axis (negative counts from the end) or fails naming it. */
export function axisOf(ctx: ImportContext, axis: number, rank: number, what = "axis"): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!(Number.isInteger(a) && a >= 0 && a < rank)) {
    ctx.fail(`${what} ${axis} is out of range for rank ${rank}`, "INVALID_ATTRIBUTE");
  }
  return a;
}

/** Normalized, distinct axes. */
export function axesOf(ctx: ImportContext, axes: readonly number[], rank: number): number[] {
  const out = axes.map((a) => axisOf(ctx, a, rank, "axis"));
  if (new Set(out).size !== out.length) {
    ctx.fail(`axes [${axes.join(", ")}] repeat an axis`, "INVALID_ATTRIBUTE");
  }
  return out;
}

/** Whether dims hold the symbolic batch at `axis`. */
export function isBatchAxis(dims: Dims, axis: number): boolean {
  return dims[axis] === N;
}

/** A Shuffle that reshapes `t` to `dims` (N only first, where `t` is batched); `t` if equal. */
export function reshape(
  ctx: ImportContext,
  t: Tensor,
  dims: readonly Dim[],
  suffix: string,
): Tensor {
  if (dims.length === t.dims.length && dims.every((d, i) => d === t.dims[i])) return t;
  const batched = t.dims[0] === N;
  if (batched !== (dims[0] === N) || dims.some((d, i) => d === N && i > 0)) {
    ctx.fail(
      `cannot reshape ${formatDims(t.dims)} to ${
        formatDims(dims)
      }: the symbolic batch N must stay the first dim`,
    );
  }
  // The spec names every dim: a literal 0 in a Shuffle would mean "copy".
  return ctx.add("Shuffle", [t], { reshape: [...dims] }, suffix).output(0);
}

/** A Shuffle that permutes `t`'s dims. */
export function transpose(ctx: ImportContext, t: Tensor, perm: readonly number[], suffix: string) {
  if (perm.every((p, i) => p === i)) return t;
  if (t.dims[0] === N && perm[0] !== 0) {
    ctx.fail(
      `the permutation [${perm.join(", ")}] would move the symbolic batch N of ${
        formatDims(t.dims)
      } away from the first dim`,
    );
  }
  return ctx.add("Shuffle", [t], { firstTranspose: [...perm] }, suffix).output(0);
}

/** Concrete dims (no N) or a failure saying what needs them. */
export function concreteDims(ctx: ImportContext, dims: Dims, what: string): number[] {
  if (dims.some((d) => d === N)) {
    ctx.fail(`${what} needs concrete dims; ${formatDims(dims)} holds the symbolic batch N`);
  }
  return dims as number[];
}

/**
 * Integers from an attribute (opsets before `since`) or from constant input `input` (from
 * `since` on), or undefined when neither is given.
 */
export function intsFrom(
  ctx: ImportContext,
  attrName: string,
  input: number,
  since: number,
): number[] | undefined {
  if (ctx.opset < since) return ctx.attr.ints(attrName);
  if (!ctx.has(input)) return undefined;
  const c = ctx.constInput(input, attrName);
  if (c.isFloat) ctx.fail(`input "${attrName}" must hold integers`, "INVALID_ARGUMENT");
  if (c.hasBatch) ctx.fail(`input "${attrName}" depends on the symbolic batch N`);
  return c.list();
}

/** A float32 scalar constant as a tensor of rank `rank` (all dims 1), for broadcasting. */
export function scalarTensor(ctx: ImportContext, value: number, rank: number): Tensor {
  return ctx.materialize(
    ConstTensor.of(1, new Array(rank).fill(1), [value]),
    `${ctx.node.name}/const`,
  );
}
