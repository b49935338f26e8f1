/**
 * Tensor views: a tensor that owns no memory and lives inside another tensor's channel range
 * (dim 1). A view of an [N, C, ...] tensor with Cv channels at `channelOffset` starts
 * channelOffset·inner elements into its parent (inner: the volume of dims 2..) and its batch
 * items lie the parent's item volume apart: it is strided per batch item.
 *
 * Views come from two builder passes and make two kinds of layer free:
 *  - concat elision: the producers of a Concatenation along dim 1 write straight into their
 *    slices of its output, and the Concatenation itself does nothing;
 *  - horizontal fusion: the channel slices of a fused convolution's output are views of it, and
 *    the Padding layers that crop them do nothing.
 * Every other layer that reads or writes a view must have kernels (CPU and CUDA) that honour the
 * batch stride: VIEW_WRITERS for outputs, VIEW_READERS for input 0. `checkViews` enforces all of
 * it on a manifest, so a backend can trust a validated plan.
 */
import { bytesPerElement } from "../dsl/ir/dtype.ts";
import type { Manifest, ManifestLayer } from "./manifest.ts";
import { isAliasLayer } from "./aliases.ts";

export interface TensorView {
  /** The parent tensor's index; the parent is not itself a view. */
  of: number;
  /** The first channel (dim 1) of the parent that the view covers. */
  channelOffset: number;
}

/** Kinds whose kernels write output 0 through a view (batch stride), on the CPU and CUDA. */
export const VIEW_WRITERS: ReadonlySet<string> = new Set(["Convolution", "Pooling", "Padding"]);
/** Kinds whose kernels read input 0 through a view. */
export const VIEW_READERS: ReadonlySet<string> = new Set(["Convolution", "Padding"]);
/** A view's first byte must keep this alignment inside its (arena-aligned) parent. */
export const VIEW_ALIGNMENT = 16;

type Dim = number | "N";
interface TensorLike {
  dims: readonly Dim[];
  dtype: Manifest["tensors"][number]["dtype"];
  view?: TensorView;
}

/** Elements per channel: the volume of dims 2.. (all concrete). */
export function channelInner(dims: readonly Dim[]): number {
  return dims.slice(2).reduce<number>((a, d) => a * (d as number), 1);
}

/** Elements of one batch item (dims 1..). */
export function itemElements(dims: readonly Dim[]): number {
  return dims.slice(1).reduce<number>((a, d) => a * (d as number), 1);
}

/** Byte offset of a view's first element inside its parent. */
export function viewByteOffset(view: TensorLike & { view: TensorView }): number {
  return view.view.channelOffset * channelInner(view.dims) * bytesPerElement(view.dtype);
}

/**
 * Why `view` cannot be a view of `parent` at `channelOffset`, or undefined when it can: same
 * dtype and rank (≥ 2), equal dims but dim 1, the channel range inside the parent, the first
 * byte VIEW_ALIGNMENT-aligned.
 */
export function viewProblem(
  view: Omit<TensorLike, "view">,
  parent: TensorLike,
  channelOffset: number,
): string | undefined {
  if (parent.view) return "its parent is itself a view";
  if (view.dtype !== parent.dtype) return `dtype ${view.dtype} differs from the parent's`;
  const r = view.dims.length;
  if (r < 2 || parent.dims.length !== r) return "rank differs from the parent's or is below 2";
  for (let i = 0; i < r; i++) {
    if (i !== 1 && view.dims[i] !== parent.dims[i]) return `dim ${i} differs from the parent's`;
  }
  if (view.dims.slice(1).some((d) => d === "N")) return "the batch N is not at dim 0";
  const c = view.dims[1] as number, pc = parent.dims[1] as number;
  if (!(Number.isInteger(channelOffset) && channelOffset >= 0 && channelOffset + c <= pc)) {
    return `channels [${channelOffset}, ${channelOffset + c}) are not inside the parent's ${pc}`;
  }
  const bytes = channelOffset * channelInner(view.dims) * bytesPerElement(view.dtype);
  if (bytes % VIEW_ALIGNMENT !== 0) {
    return `its first byte (${bytes}) is not ${VIEW_ALIGNMENT}-byte aligned in the parent`;
  }
  return undefined;
}

/** The crop of a Padding layer when it only narrows dim 1 (a channel slice), else undefined. */
export function channelCrop(
  attrs: Record<string, unknown>,
  rank: number,
): { start: number } | undefined {
  const align = (p: unknown) => {
    const a = Array.isArray(p) ? (p as number[]) : [];
    return Array.from({ length: rank }, (_, i) => a[i - (rank - a.length)] ?? 0);
  };
  if (rank < 2) return undefined;
  const pre = align(attrs.pre), post = align(attrs.post);
  for (let i = 0; i < rank; i++) {
    if (i === 1 ? pre[i] > 0 || post[i] > 0 : pre[i] !== 0 || post[i] !== 0) return undefined;
  }
  return { start: -pre[1] };
}

/**
 * Whether a layer does nothing at run time because its tensors are views: a Concatenation
 * along dim 1 whose inputs are views of its output in order, or a channel-cropping Padding
 * whose output is the view of its input at the crop's start.
 */
export function isNoOpLayer(
  layer: Pick<ManifestLayer, "kind" | "attrs" | "inputs" | "outputs">,
  tensors: readonly TensorLike[],
): boolean {
  // Constants and reshapes whose outputs alias their bytes do nothing either (plan/aliases.ts).
  if (isAliasLayer(layer, tensors)) return true;
  const out = layer.outputs[0];
  if (layer.kind === "Concatenation") {
    const rank = tensors[out].dims.length;
    const axis = layer.attrs.axis as number;
    if ((axis < 0 ? axis + rank : axis) !== 1) return false;
    let at = 0;
    for (const i of layer.inputs) {
      const v = tensors[i].view;
      if (!v || v.of !== out || v.channelOffset !== at) return false;
      at += tensors[i].dims[1] as number;
    }
    return at === tensors[out].dims[1];
  }
  if (layer.kind === "Padding") {
    const v = tensors[out].view;
    const crop = channelCrop(layer.attrs, tensors[out].dims.length);
    return !!v && !!crop && v.of === layer.inputs[0] && v.channelOffset === crop.start;
  }
  return false;
}

/**
 * Every problem with the plan's views, in words: geometry, bindings, the kernels that touch
 * them, and arena offsets (a view's offset is its parent's plus its byte offset).
 */
export function viewProblems(m: Manifest): string[] {
  const problems: string[] = [];
  const t = m.tensors;
  const name = (i: number) => `tensor ${i} ("${t[i]?.name}")`;
  const bound = new Set(m.bindings.map((b) => b.tensor));
  t.forEach((x, i) => {
    if (!x.view) return;
    const p = t[x.view.of];
    if (!p || x.view.of === i) {
      problems.push(`${name(i)} is a view of a tensor that does not exist`);
      return;
    }
    const why = viewProblem(x, p, x.view.channelOffset);
    if (why) problems.push(`${name(i)} cannot be a view of ${name(x.view.of)}: ${why}`);
    else if (
      m.memory.offsets[i] !== m.memory.offsets[x.view.of] + viewByteOffset({ ...x, view: x.view })
    ) {
      problems.push(`${name(i)}: its arena offset is not its place inside ${name(x.view.of)}`);
    }
    if (bound.has(i)) problems.push(`${name(i)} is a view and a binding`);
  });
  for (const l of m.layers) {
    if (!l.inputs.concat(l.outputs).some((i) => t[i]?.view)) continue;
    if (isNoOpLayer(l, t)) continue;
    l.outputs.forEach((o, k) => {
      if (t[o]?.view && !(k === 0 && VIEW_WRITERS.has(l.kind))) {
        problems.push(`layer "${l.name}" (${l.kind}) cannot write the view ${name(o)}`);
      }
    });
    l.inputs.forEach((i, k) => {
      if (t[i]?.view && !(k === 0 && VIEW_READERS.has(l.kind))) {
        problems.push(`layer "${l.name}" (${l.kind}) cannot read the view ${name(i)}`);
      }
    });
  }
  return problems;
}
