import { z } from "zod";
import { broadcastDims, type Dim, type Dims, formatDims, N, sameDims } from "../ir/dims.ts";
import {
  type Args,
  defineLayer,
  type ShapeContext,
  shapeError,
  type TensorHandle,
} from "./_define.ts";
import { epilogueAttrs } from "./_epilogue.ts";

const attrs = z.object({
  /** Use Aᵀ (A's last two dims swapped) as the left operand. */
  transposeA: z.boolean().default(false),
  /** Use Bᵀ (B's last two dims swapped) as the right operand. */
  transposeB: z.boolean().default(false),
  ...epilogueAttrs,
});

type Attrs = z.output<typeof attrs>;

/** The matrix view of an operand: its leading (batch) dims, rows and columns after transposing. */
interface Operand {
  lead: Dims;
  rows: Dim;
  cols: Dim;
}

function operand(dims: Dims, transpose: boolean, which: "A" | "B"): Operand {
  if (dims.length < 2) {
    shapeError(
      `input ${which} must have rank 2 or more (a matrix, or a stack of them), got ${
        formatDims(dims)
      }`,
    );
  }
  const r = dims[dims.length - 2], c = dims[dims.length - 1];
  return { lead: dims.slice(0, -2), rows: transpose ? c : r, cols: transpose ? r : c };
}

/** Output dims of op(A)·op(B): the broadcast leading dims, then [rows of A, columns of B]. */
export function matmulShape(a: Dims, b: Dims, attrs: Attrs): Dim[] {
  const A = operand(a, attrs.transposeA, "A");
  const B = operand(b, attrs.transposeB, "B");
  if (A.cols === N || B.rows === N) {
    shapeError("the symbolic batch N cannot be a contracted (inner) dimension");
  }
  if (A.cols !== B.rows) {
    shapeError(
      `inner dims differ: op(A) is ${A.rows}x${A.cols}, op(B) is ${B.rows}x${B.cols}` +
        ` (transposeA ${attrs.transposeA}, transposeB ${attrs.transposeB})`,
    );
  }
  const lead = broadcastDims(A.lead, B.lead);
  if (!lead) {
    shapeError(
      `the leading dims ${formatDims(A.lead)} and ${formatDims(B.lead)} do not broadcast`,
    );
  }
  const out = [...lead, A.rows, B.cols];
  if (out.some((d, i) => d === N && i !== 0)) {
    shapeError(`the symbolic batch N would not lead the output ${formatDims(out)}`);
  }
  return out;
}

function columns(ctx: ShapeContext<Attrs>): number {
  const b = ctx.inputs[1].dims;
  const cols = ctx.attrs.transposeB ? b[b.length - 2] : b[b.length - 1];
  return typeof cols === "number" ? cols : 0;
}

/**
 * MatrixMultiply: C = op(A)·op(B) over the last two dims, batched over the leading dims with
 * numpy broadcasting, plus an optional bias [columns] and the fused epilogue (activation,
 * residual = a third input of the output's shape).
 */
export const MatrixMultiply = defineLayer({
  kind: "MatrixMultiply",
  summary: "batched matrix product with broadcasting, optional transposes, bias and epilogue",
  attrs,
  inputs: { min: 2, max: 3 },
  weightArgs: ["bias"],
  weights: (ctx) => ({ bias: { dims: [columns(ctx)], optional: true } }),
  inferShape: (ctx) => {
    const out = matmulShape(ctx.inputs[0].dims, ctx.inputs[1].dims, ctx.attrs);
    const hasResidual = ctx.inputs.length === 3;
    if (ctx.attrs.residual && !hasResidual) {
      shapeError("a residual epilogue needs a third input");
    }
    if (!ctx.attrs.residual && hasResidual) {
      shapeError("a third input is only read by a residual epilogue");
    }
    if (hasResidual && !sameDims(ctx.inputs[2].dims, out)) {
      shapeError(
        `the residual input ${formatDims(ctx.inputs[2].dims)} must match the output ${
          formatDims(out)
        }`,
      );
    }
    return [{ dims: out, dtype: "float32" }];
  },
  fluent: {
    matmul: (
      t: TensorHandle,
      other: TensorHandle,
      { name, ...args }: Args<typeof attrs, "bias"> = {},
    ) => ({ inputs: [t, other], attrs: args, name }),
  },
});
