/**
 * Reduced precision on the CUDA backend without a GPU (runtime/cuda/precision.ts and the CUDA
 * cost model of builder/precision.ts): which kinds run FP16 how, the load-time refusals (INT8 or
 * FP16 where there is no kernel, a missing scale, a fused residual under INT8), the INT8
 * workspace, and the precisions the static model picks. The kernels themselves are tested on the
 * GPU (tests/gpu/precision.ts).
 */
import assert from "node:assert/strict";
import { assignPrecision, CUDA_COST_MODEL } from "../../../builder/precision.ts";
import { N, Network } from "../../../dsl/network.ts";
import type { Manifest, ManifestLayer } from "../../../plan/mod.ts";
import { CUDA_KERNELS } from "../../../runtime/cuda/kernels.ts";
import { cudaFp16Mode, int8WorkspaceBytes } from "../../../runtime/cuda/precision.ts";
import { Logger } from "../../../runtime/logger.ts";
import { randomArray, rng } from "../../_util.ts";

type Tensor = Manifest["tensors"][number];

function plan(
  kind: string,
  precision: "fp32" | "fp16" | "int8",
  attrs: Record<string, unknown>,
  x: Partial<Tensor>,
  y: Partial<Tensor>,
  weightCount = 0,
): { layer: ManifestLayer; manifest: Manifest } {
  const layer = {
    name: `${kind.toLowerCase()}_0`,
    kind,
    attrs,
    inputs: [0],
    outputs: [1],
    weights: weightCount ? { weights: { dtype: "float32", offset: 0, count: weightCount } } : {},
    sources: [],
    precision,
  } as unknown as ManifestLayer;
  const manifest = {
    tensors: [
      { name: "x", dims: [N, 4, 5, 5], dtype: "float32", ...x },
      { name: "y", dims: [N, 6, 5, 5], dtype: "float32", ...y },
    ],
    layers: [layer],
  } as unknown as Manifest;
  return { layer, manifest };
}

const convAttrs = {
  outputs: 6,
  kernel: [3, 3],
  stride: [1, 1],
  padding: [1, 1],
  dilation: [1, 1],
  groups: 1,
};

Deno.test("cudaFp16Mode: tensor cores for conv/FC, the FP32 kernel where it keeps half values, else rounded", () => {
  assert.equal(cudaFp16Mode("Convolution", {}), "tensor-core");
  assert.equal(cudaFp16Mode("FullyConnected", {}), "tensor-core");
  assert.equal(cudaFp16Mode("Pooling", { type: "max" }), "exact");
  assert.equal(cudaFp16Mode("Pooling", { type: "average" }), "rounded");
  assert.equal(cudaFp16Mode("Activation", { type: "relu" }), "exact");
  assert.equal(cudaFp16Mode("Activation", { type: "sigmoid" }), "rounded");
  assert.equal(cudaFp16Mode("Concatenation", {}), "exact");
  assert.equal(cudaFp16Mode("SoftMax", {}), "rounded");
  assert.equal(cudaFp16Mode("TopK", {}), undefined);
  assert.equal(cudaFp16Mode("MatrixMultiply", {}), undefined);
});

Deno.test("load-time checks: reduced layers need a kernel, INT8 scales and no residual", () => {
  const conv = CUDA_KERNELS.Convolution;
  const ok16 = plan("Convolution", "fp16", convAttrs, { precision: "fp16" }, { precision: "fp16" });
  assert.equal(conv.unsupported!(ok16.layer, ok16.manifest), undefined);
  const ok8 = plan("Convolution", "int8", convAttrs, { precision: "int8", scale: 0.01 }, {
    precision: "int8",
    scale: 0.02,
  });
  assert.equal(conv.unsupported!(ok8.layer, ok8.manifest), undefined);
  const noScale = plan("Convolution", "int8", convAttrs, { precision: "int8" }, {});
  assert.match(conv.unsupported!(noScale.layer, noScale.manifest)!, /INT8 input "x" has no scale/);
  const outNoScale = plan("Convolution", "int8", convAttrs, { precision: "int8", scale: 0.01 }, {
    precision: "int8",
  });
  assert.match(
    conv.unsupported!(outNoScale.layer, outNoScale.manifest)!,
    /INT8 output "y" has no scale/,
  );
  const residual = plan("Convolution", "int8", { ...convAttrs, residual: "post" }, {
    precision: "int8",
    scale: 0.01,
  }, {});
  assert.match(conv.unsupported!(residual.layer, residual.manifest)!, /no residual/);
  const pool8 = plan("Pooling", "int8", { type: "max" }, {}, {});
  assert.match(
    CUDA_KERNELS.Pooling.unsupported!(pool8.layer, pool8.manifest)!,
    /no INT8 kernel for Pooling/,
  );
  const softmax16 = plan("SoftMax", "fp16", { axis: 1 }, {}, {});
  assert.equal(CUDA_KERNELS.SoftMax.unsupported!(softmax16.layer, softmax16.manifest), undefined);
  assert.match(
    CUDA_KERNELS.Reformat.unsupported!(plan("Reformat", "fp16", { to: "bf16" }, {}, {}).layer)!,
    /unknown target format bf16/,
  );
});

Deno.test("INT8 workspace: per-channel scales padded to 256 bytes, then the int8 weights", () => {
  assert.equal(int8WorkspaceBytes(6, 216), 256 + 216);
  assert.equal(int8WorkspaceBytes(64, 1000), 256 + 1000);
  assert.equal(int8WorkspaceBytes(65, 10), 512 + 10);
  const { layer, manifest } = plan(
    "Convolution",
    "int8",
    convAttrs,
    {
      precision: "int8",
      scale: 0.01,
    },
    {},
    6 * 4 * 9,
  );
  assert.equal(
    CUDA_KERNELS.Convolution.workspaceBytes!(layer, manifest, 0),
    int8WorkspaceBytes(6, 216),
  );
  const fp32 = { ...layer, precision: "fp32" as const };
  assert.equal(CUDA_KERNELS.Convolution.workspaceBytes!(fp32, manifest, 0), 0);
});

/** x [N, 32, 16, 16] → conv 64 3×3 → max pool → fc 10 → softmax, ranges on every tensor. */
function net() {
  const r = rng(5);
  const n = new Network();
  const x = n.input("x", [N, 32, 16, 16]);
  const conv = n.addConvolution(x, {
    outputs: 64,
    kernel: [3, 3],
    weights: randomArray(64 * 32 * 9, r),
    name: "conv",
  });
  const pool = n.addPooling(conv.output(0), { type: "max", window: [2, 2], stride: [2, 2] });
  const fc = n.addFullyConnected(pool.output(0), {
    outputs: 10,
    weights: randomArray(10 * 64 * 49, r),
    name: "fc",
  });
  const sm = n.addSoftMax(fc.output(0), { name: "prob" });
  n.markOutput(sm.output(0), "prob");
  for (const t of n.tensors.values()) t.setDynamicRange(-4, 4);
  return n;
}

function choose(fp16: boolean, int8: boolean, force?: "fp16" | "int8"): Record<string, string> {
  const n = net();
  if (force) {
    for (const l of n.layers) if (l.name === "conv" || l.name === "fc") l.precision = force;
  }
  const r = assignPrecision(n, [...n.layers], {
    fp16,
    int8,
    strictTypes: false,
    model: CUDA_COST_MODEL,
    logger: new Logger("error"),
  });
  return Object.fromEntries(r.layers.map((l) => [l.layer, l.precision]));
}

Deno.test("CUDA cost model: measured rates keep GEMMs in FP32; forced FP16/INT8 run; kinds without kernels stay FP32", () => {
  assert.deepEqual(Object.values(choose(false, false)), ["fp32", "fp32", "fp32", "fp32"]);
  // Today's tensor-core kernels are slower than the tuned FP32 ones (bench/RESULTS.md).
  assert.deepEqual(Object.values(choose(true, false)), ["fp32", "fp32", "fp32", "fp32"]);
  assert.deepEqual(Object.values(choose(false, true)), ["fp32", "fp32", "fp32", "fp32"]);
  const f16 = choose(true, false, "fp16");
  assert.equal(f16.conv, "fp16");
  assert.equal(f16.fc, "fp16");
  const i8 = choose(false, true, "int8");
  assert.equal(i8.conv, "int8");
  assert.equal(i8.prob, "fp32");
  assert.equal(CUDA_COST_MODEL.layerCost(net().layers[3], "int8"), undefined);
  assert.ok(CUDA_COST_MODEL.reformatCost(net().inputs[0], "fp32", "fp16") > 0);
});
