/**
 * Tensor aliases: a tensor that owns no memory and holds the very bytes of something else, so
 * the layer producing it does nothing at run time.
 *  - `{ constant: L }`: the output of Constant layer L (or a reshape of it) is that layer's
 *    "values" weights, read in place from the uploaded weight section: no copy per run, no
 *    arena bytes.
 *  - `{ tensor: T }`: the output of a reshape-only Shuffle (no transpose, or identity ones) is
 *    tensor T's bytes with other dims: row-major order is unchanged by a reshape.
 * An alias always names the root (never another alias); the root is neither a view nor an
 * alias. Aliases are read-only: only their own no-op producer "writes" them, they are never
 * bindings (an output or a loop's feedback target keeps its copy) and never views, so no kernel
 * and no binding copy ever writes aliased bytes. The memory plan stretches a root tensor's
 * lifetime over its aliases'. `aliasProblems` enforces all of it on a manifest.
 */
import { isBatched, itemVolume } from "../dsl/ir/dims.ts";
import type { Manifest, ManifestLayer } from "./manifest.ts";

export type TensorAlias = { tensor: number } | { constant: number };

type Dim = number | "N";
interface TensorLike {
  dims: readonly Dim[];
  alias?: TensorAlias;
}

/** Whether a Shuffle's attributes only reshape (every transpose absent or the identity). */
export function isReshapeOnly(attrs: Record<string, unknown>): boolean {
  const identity = (p: unknown) =>
    p === undefined || (Array.isArray(p) && p.every((d, i) => d === i));
  return identity(attrs.firstTranspose) && identity(attrs.secondTranspose);
}

/** The alias a reader of tensor `i` reads: its own, or the tensor itself. */
export function aliasRoot(tensors: readonly TensorLike[], i: number): TensorAlias {
  return tensors[i].alias ?? { tensor: i };
}

export function sameAlias(a: TensorAlias | undefined, b: TensorAlias | undefined): boolean {
  if (!a || !b) return false;
  return "constant" in a
    ? "constant" in b && a.constant === b.constant
    : "tensor" in b && a.tensor === b.tensor;
}

/**
 * Whether a layer does nothing because its output is an alias: a Constant whose output is its
 * own weights, or a reshape-only Shuffle whose output aliases its input's root.
 */
export function isAliasLayer(
  layer: Pick<ManifestLayer, "kind" | "attrs" | "inputs" | "outputs">,
  tensors: readonly TensorLike[],
): boolean {
  if (layer.outputs.length !== 1) return false;
  const a = tensors[layer.outputs[0]]?.alias;
  if (!a) return false;
  if (layer.kind === "Constant") return "constant" in a && layer.inputs.length === 0;
  if (layer.kind === "Shuffle" && layer.inputs.length === 1 && isReshapeOnly(layer.attrs)) {
    return sameAlias(a, aliasRoot(tensors, layer.inputs[0]));
  }
  return false;
}

/** Every problem with the plan's aliases, in words (an empty list: the backends may trust them). */
export function aliasProblems(m: Manifest): string[] {
  const problems: string[] = [];
  const t = m.tensors;
  const name = (i: number) => `tensor ${i} ("${t[i]?.name}")`;
  const bound = new Set(m.bindings.map((b) => b.tensor));
  const producer = new Map<number, number>();
  m.layers.forEach((l, li) => l.outputs.forEach((o) => producer.set(o, li)));
  t.forEach((x, i) => {
    const a = x.alias;
    if (!a) return;
    const bad = (why: string) => problems.push(`${name(i)} cannot be an alias: ${why}`);
    if (bound.has(i)) return bad("it is a binding");
    if (x.view) return bad("it is a view");
    const p = producer.get(i);
    const own = m.layers[p ?? -1]?.kind !== "Constant" || "constant" in a && a.constant === p;
    if (p === undefined || !isAliasLayer(m.layers[p], t) || !own) {
      return bad("its producer is not a Constant or reshape-only Shuffle whose output it aliases");
    }
    if ("constant" in a) {
      const c = m.layers[a.constant];
      const w = c?.kind === "Constant" ? c.weights.values : undefined;
      if (!w) return bad(`layer ${a.constant} is not a Constant with weights "values"`);
      if (isBatched(x.dims)) return bad("a constant has no batch");
      if (w.dtype !== x.dtype || w.count !== itemVolume(x.dims)) {
        return bad(
          `its ${x.dtype} elements are not the ${w.count} ${w.dtype} weights of "${c.name}"`,
        );
      }
      if (x.precision) return bad("it has a reduced storage precision");
    } else {
      const r = t[a.tensor];
      if (!r || a.tensor === i) return bad("its root tensor does not exist");
      if (r.alias || r.view) return bad("its root is itself an alias or a view");
      if (r.dtype !== x.dtype || r.precision !== x.precision) {
        return bad("its dtype or precision differs from its root's");
      }
      if (isBatched(r.dims) !== isBatched(x.dims) || itemVolume(r.dims) !== itemVolume(x.dims)) {
        return bad("its size differs from its root's");
      }
      if (m.memory.offsets[i] !== m.memory.offsets[a.tensor]) {
        return bad("its arena offset is not its root's");
      }
    }
  });
  return problems;
}

/** Whether tensor `t` lives in the weight section rather than the activation arena. */
export function isWeightAlias(t: TensorLike): boolean {
  return !!t.alias && "constant" in t.alias;
}
