/**
 * CUDA kernel-table entries of the builder's fused layer kinds: FusedMlp (a chain of FC stages;
 * cuda/src/kernels/fused_mlp.cu picks chained dependent-launch GEMVs, one cluster kernel or a
 * GEMM per stage) and FusedElementwise (an elementwise program in one kernel).
 */
import { N, volume } from "../../dsl/ir/dims.ts";
import { activationParams } from "../../dsl/layers/_epilogue.ts";
import { constantSlot, type FusedElementwiseAttrs } from "../../dsl/layers/fused_elementwise.ts";
import { type FusedMlpAttrs, stageSlots } from "../../dsl/layers/fused_mlp.ts";
import {
  ACTIVATION_CODE,
  ELEMENTWISE_CODE,
  FUSED_ELEMENTWISE_PARAMS,
  FUSED_MLP_PARAMS,
  FUSED_STEP_CODE,
  UNARY_CODE,
} from "../../ffi/mod.ts";
import { type CudaKernel, float32Weights, launch } from "./_launch.ts";

/** Bytes of one intermediate buffer of the per-stage path (kiln.h: rounded up to 256). */
function stageBuffer(rows: number, features: number): number {
  return Math.ceil((rows * features * 4) / 256) * 256;
}

export const fusedMlp: CudaKernel = {
  usesWorkspace: true,
  unsupported: float32Weights,
  workspaceBytes(layer, manifest, gemmBytes) {
    const at = layer.attrs as unknown as FusedMlpAttrs;
    const dims = manifest.tensors[layer.inputs[0]].dims.slice(0, at.axis)
      .map((d) => (d === N ? manifest.maxBatchSize : d as number));
    const widest = Math.max(0, ...at.stages.slice(0, -1).map((s) => s.outputs));
    return 2 * stageBuffer(volume(dims), widest) + gemmBytes;
  },
  launch(a) {
    const at = a.layer.attrs as unknown as FusedMlpAttrs;
    const dims = a.inputs[0].dims;
    const fields: Record<string, unknown> = {
      x: a.inputs[0].ptr,
      y: a.outputs[0].ptr,
      workspace: a.workspace.ptr,
      workspace_bytes: a.workspace.bytes,
      m: volume(dims, 0, at.axis),
      k: volume(dims, at.axis),
      stages: at.stages.length,
      n: at.stages.map((s) => s.outputs),
      act: at.stages.map((s) => (s.activation ? ACTIVATION_CODE[s.activation.type] : 0)),
    };
    at.stages.forEach((s, i) => {
      const slots = stageSlots(i);
      const p = s.activation ? activationParams(s.activation) : { alpha: 0, beta: 0 };
      fields[`w${i}`] = a.weights[slots.weights];
      fields[`bias${i}`] = a.weights[slots.bias] ?? null;
      fields[`alpha${i}`] = p.alpha;
      fields[`beta${i}`] = p.beta;
    });
    launch(a, "kiln_launch_fused_mlp", FUSED_MLP_PARAMS.pack(fields as never));
  },
};

export const fusedElementwise: CudaKernel = {
  unsupported: float32Weights,
  launch(a) {
    const at = a.layer.attrs as unknown as FusedElementwiseAttrs;
    const count = volume(a.outputs[0].dims);
    const fields: Record<string, unknown> = {
      x: a.inputs[0].ptr,
      y: a.outputs[0].ptr,
      count,
      steps: at.steps.length,
      operands: at.operands.length,
      operand_inner: at.operands.map((o) => (o.kind === "input" ? 1 : o.inner)),
      operand_count: at.operands.map((o) => (o.kind === "input" ? count : o.count)),
      step_kind: at.steps.map((s) =>
        s.op === "binary"
          ? FUSED_STEP_CODE[s.reversed ? "binary_reversed" : "binary"]
          : FUSED_STEP_CODE[s.op]
      ),
      step_fn: at.steps.map((s) =>
        s.op === "unary"
          ? UNARY_CODE[s.fn]
          : s.op === "activation"
          ? ACTIVATION_CODE[s.activation.type]
          : ELEMENTWISE_CODE[s.fn]
      ),
      step_operand: at.steps.map((s) => (s.op === "binary" ? s.operand : 0)),
    };
    at.operands.forEach((o, j) => {
      fields[`operand${j}`] = o.kind === "input"
        ? a.inputs[o.input].ptr
        : a.weights[constantSlot(j)];
    });
    at.steps.forEach((s, i) => {
      const p = s.op === "activation" ? activationParams(s.activation) : { alpha: 0, beta: 0 };
      fields[`alpha${i}`] = p.alpha;
      fields[`beta${i}`] = p.beta;
    });
    launch(a, "kiln_launch_fused_elementwise", FUSED_ELEMENTWISE_PARAMS.pack(fields as never));
  },
};
