/**
 * The activation memory plan: every tensor gets an offset in one arena, and tensors whose
 * lifetimes do not overlap share bytes (a tensor's memory is reused once its last reader has
 * run). Offsets are computed for the maximum batch; a smaller batch uses a prefix of each slot.
 *
 * Placement is greedy best-fit by decreasing size (the classic offset-assignment heuristic):
 * each tensor goes at the lowest offset that does not collide with an already placed tensor
 * whose lifetime overlaps its own.
 *
 * A view (plan/views.ts) owns no memory: its offset is its parent's plus its place inside it,
 * and the parent's lifetime is stretched over the view's (a concatenation's output is live from
 * its first producer on; a fused convolution's output until its slices' last reader). An alias
 * (plan/aliases.ts) owns none either: a reshape's is its root tensor's offset, and it stretches
 * the root's lifetime; a constant's lives in the weight section.
 */
import { concreteDims } from "../dsl/ir/dims.ts";
import { bytesPerElement } from "../dsl/ir/dtype.ts";
import type { Manifest } from "../plan/mod.ts";
import { viewByteOffset } from "../plan/views.ts";

/** Slot alignment: enough for 16-byte vector loads and CUDA's 256-byte allocation granularity. */
export const ARENA_ALIGNMENT = 256;

export interface MemoryPlan {
  /** Bytes of the shared activation arena at the maximum batch. */
  arenaBytes: number;
  /** Byte offset of each tensor (manifest order) inside the arena. */
  offsets: number[];
  /** What one buffer per tensor would need. */
  naiveBytes: number;
}

interface Interval {
  tensor: number;
  bytes: number;
  first: number;
  last: number;
}

/** Plans the arena for the layers in execution order; bindings live for the whole run. */
export function planMemory(
  tensors: Manifest["tensors"],
  layers: Pick<Manifest["layers"][number], "inputs" | "outputs">[],
  bindings: Manifest["bindings"],
  maxBatchSize: number,
): MemoryPlan {
  const n = tensors.length;
  const first = new Array<number>(n).fill(Infinity);
  const last = new Array<number>(n).fill(-Infinity);
  layers.forEach((l, i) => {
    for (const t of l.outputs) first[t] = Math.min(first[t], i), last[t] = Math.max(last[t], i);
    for (const t of l.inputs) first[t] = Math.min(first[t], i), last[t] = Math.max(last[t], i);
  });
  for (const b of bindings) {
    if (b.isInput) first[b.tensor] = -1;
    else last[b.tensor] = layers.length;
  }
  tensors.forEach((t, i) => {
    if (!t.view || !Number.isFinite(first[i])) return;
    first[t.view.of] = Math.min(first[t.view.of], first[i]);
    last[t.view.of] = Math.max(last[t.view.of], last[i]);
  });
  // An alias of a tensor keeps it live as long as the alias is read (plan/aliases.ts).
  tensors.forEach((t, i) => {
    if (!t.alias || !("tensor" in t.alias) || !Number.isFinite(first[i])) return;
    const r = t.alias.tensor;
    first[r] = Math.min(first[r], first[i]);
    last[r] = Math.max(last[r], last[i]);
  });
  // Views and aliases own no bytes: only the other tensors are placed.
  const intervals: Interval[] = tensors.flatMap((t, i) =>
    t.view || t.alias ? [] : [{
      tensor: i,
      bytes: alignUp(
        concreteDims(t.dims, maxBatchSize).reduce((a, b) => a * b, 1) * bytesPerElement(t.dtype),
        ARENA_ALIGNMENT,
      ),
      first: Number.isFinite(first[i]) ? first[i] : 0,
      last: Number.isFinite(last[i]) ? last[i] : 0,
    }]
  );
  const order = [...intervals].sort((a, b) => b.bytes - a.bytes || a.first - b.first);
  const placed: { iv: Interval; offset: number }[] = [];
  const offsets = new Array<number>(n).fill(0);
  let arenaBytes = 0;
  for (const iv of order) {
    const clashes = placed
      .filter((p) => p.iv.first <= iv.last && iv.first <= p.iv.last)
      .sort((a, b) => a.offset - b.offset);
    let offset = 0;
    for (const c of clashes) {
      if (offset + iv.bytes <= c.offset) break;
      offset = Math.max(offset, c.offset + c.iv.bytes);
    }
    placed.push({ iv, offset });
    offsets[iv.tensor] = offset;
    arenaBytes = Math.max(arenaBytes, offset + iv.bytes);
  }
  tensors.forEach((t, i) => {
    if (t.view) offsets[i] = offsets[t.view.of] + viewByteOffset({ ...t, view: t.view });
    // A constant's alias lives in the weight section: its arena offset means nothing (0).
    if (t.alias) offsets[i] = "tensor" in t.alias ? offsets[t.alias.tensor] : 0;
  });
  const naiveBytes = intervals.reduce((a, iv) => a + iv.bytes, 0);
  return { arenaBytes, offsets, naiveBytes };
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
