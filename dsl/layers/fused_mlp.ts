/**
 * FusedMlp (internal, made by the builder's fuseMlp pass): a chain of fully connected stages,
 * each y = act(x·Wᵢᵀ + bᵢ), run as one layer. On the GPU one or two rows run as chained GEMV
 * kernels whose launches and weight loads overlap (programmatic dependent launch), more rows as
 * a GEMM per stage; a one-kernel thread-block-cluster path is there too (fused_mlp.cu).
 *
 * The first stage flattens the input's dims from `axis` on (as FullyConnected); each later
 * stage reads the previous stage's features. Weights: `weights<i>` [outputs, inputs] row-major
 * (TensorRT's FC layout) and an optional `bias<i>` [outputs], per stage i.
 */
import { z } from "zod";
import { isBatched } from "../ir/dims.ts";
import { defineLayer, num, type ShapeContext, shapeError, type WeightSlot } from "./_define.ts";
import { activationSpec } from "./_epilogue.ts";

/** Stages one layer holds (the CUDA launch takes this many at once). */
export const FUSED_MLP_MAX_STAGES = 8;

const stage = z.object({
  outputs: z.number().int().positive(),
  activation: activationSpec.optional(),
});

const attrs = z.object({
  /** Dims from `axis` on are flattened into the first stage's input vector. */
  axis: z.number().int().nonnegative().default(1),
  stages: z.array(stage).min(1).max(FUSED_MLP_MAX_STAGES),
});

export type FusedMlpAttrs = z.output<typeof attrs>;
export type FusedMlpStage = z.output<typeof stage>;

/** The weight slot names of stage `i`. */
export function stageSlots(i: number): { weights: string; bias: string } {
  return { weights: `weights${i}`, bias: `bias${i}` };
}

function inputFeatures(ctx: ShapeContext<FusedMlpAttrs>): number {
  const d = ctx.inputs[0].dims;
  const axis = ctx.attrs.axis;
  if (axis >= d.length) shapeError(`axis ${axis} is out of range for rank ${d.length}`);
  if (axis === 0 && isBatched(d)) shapeError("axis 0 would flatten the batch dimension");
  let v = 1;
  for (let i = axis; i < d.length; i++) v *= num(d[i], `dim ${i}`);
  return v;
}

export const FusedMlp = defineLayer({
  kind: "FusedMlp",
  summary: "a chain of fully connected stages with activations, fused by the builder",
  attrs,
  inputs: { min: 1, max: 1 },
  weights: (ctx) => {
    const slots: Record<string, WeightSlot> = {};
    let k = inputFeatures(ctx);
    ctx.attrs.stages.forEach((s, i) => {
      const { weights, bias } = stageSlots(i);
      slots[weights] = { dims: [s.outputs, k] };
      slots[bias] = { dims: [s.outputs], optional: true };
      k = s.outputs;
    });
    return slots;
  },
  inferShape: (ctx) => {
    inputFeatures(ctx);
    const last = ctx.attrs.stages[ctx.attrs.stages.length - 1];
    return [{
      dims: [...ctx.inputs[0].dims.slice(0, ctx.attrs.axis), last.outputs],
      dtype: "float32",
    }];
  },
});
