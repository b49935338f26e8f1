/**
 * FusedElementwise (internal, made by the builder's fuseElementwiseChain pass): a chain of
 * elementwise layers on one shape run as a small program, one pass over the data. Each element
 * v starts as input 0's value; every step replaces it:
 *  - unary: v = fn(v) (Unary's functions);
 *  - activation: v = act(v) (Activation's functions);
 *  - binary: v = v op o, or o op v when `reversed` (ElementWise's ops), where o is an operand.
 * Operands are either another input of the layer (of the output's shape, read at the same
 * index) or constants stored in weight slot `constant<j>`, read at index (i / inner) % count
 * for element i: one value, one per channel, one per row or one per element of an item.
 */
import { z } from "zod";
import { formatDims, sameDims } from "../ir/dims.ts";
import { defineLayer, shapeError, type WeightSlot } from "./_define.ts";
import { activationSpec } from "./_epilogue.ts";
import { ELEMENTWISE_OPS } from "./elementwise.ts";
import { UNARY_OPS } from "./unary.ts";

/** Steps and operands one layer holds (the CUDA launch takes this many). */
export const FUSED_ELEMENTWISE_MAX_STEPS = 16;
export const FUSED_ELEMENTWISE_MAX_OPERANDS = 8;

const step = z.discriminatedUnion("op", [
  z.object({ op: z.literal("unary"), fn: z.enum(UNARY_OPS).exclude(["not"]) }),
  z.object({ op: z.literal("activation"), activation: activationSpec }),
  z.object({
    op: z.literal("binary"),
    fn: z.enum(ELEMENTWISE_OPS),
    operand: z.number().int().nonnegative(),
    reversed: z.boolean().default(false),
  }),
]);

const operand = z.discriminatedUnion("kind", [
  /** Input `input` of the layer (0 is the chain's own input), of the output's shape. */
  z.object({ kind: z.literal("input"), input: z.number().int().nonnegative() }),
  /** Weight slot constant<j> of `count` values, element i reading (i / inner) % count. */
  z.object({
    kind: z.literal("constant"),
    count: z.number().int().positive(),
    inner: z.number().int().positive(),
  }),
]);

const attrs = z.object({
  steps: z.array(step).min(1).max(FUSED_ELEMENTWISE_MAX_STEPS),
  operands: z.array(operand).max(FUSED_ELEMENTWISE_MAX_OPERANDS).default([]),
});

export type FusedElementwiseAttrs = z.output<typeof attrs>;
export type FusedElementwiseStep = z.output<typeof step>;
export type FusedElementwiseOperand = z.output<typeof operand>;

export function constantSlot(j: number): string {
  return `constant${j}`;
}

export const FusedElementwise = defineLayer({
  kind: "FusedElementwise",
  summary: "a chain of unary, activation and binary elementwise steps fused by the builder",
  attrs,
  inputs: { min: 1, max: 1 + FUSED_ELEMENTWISE_MAX_OPERANDS },
  weights: ({ attrs }) => {
    const slots: Record<string, WeightSlot> = {};
    attrs.operands.forEach((o, j) => {
      if (o.kind === "constant") slots[constantSlot(j)] = { dims: [o.count] };
    });
    return slots;
  },
  inferShape: ({ inputs, attrs }) => {
    const out = inputs[0].dims;
    inputs.forEach((t, i) => {
      if (i > 0 && !sameDims(t.dims, out)) {
        shapeError(`input ${i} ${formatDims(t.dims)} must have input 0's dims ${formatDims(out)}`);
      }
    });
    attrs.operands.forEach((o, j) => {
      if (o.kind === "input" && o.input >= inputs.length) {
        shapeError(`operand ${j} reads input ${o.input}; the layer has ${inputs.length} inputs`);
      }
    });
    for (const s of attrs.steps) {
      if (s.op === "binary" && s.operand >= attrs.operands.length) {
        shapeError(`a step reads operand ${s.operand}; there are ${attrs.operands.length}`);
      }
    }
    return [{ dims: out, dtype: "float32" }];
  },
});
