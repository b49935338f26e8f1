/**
 * ONNX conformance: ONNX's own operator tests (../shared/data/onnx-node-tests), its old
 * PyTorch-converted model tests, Polygraphy's test models (checked against the float64
 * reference evaluator in _reference.ts) and the "light" model zoo networks, each imported,
 * built on the CPU, run and compared at ONNX's tolerances (rtol 1e-3, atol 1e-7).
 *
 * Every test whose ops all have importers must pass, except the few in KNOWN_EXCEPTIONS, where
 * Kiln's layers cannot express the ONNX semantics. Set KILN_SLOW_TESTS=1 to include light_vgg19
 * (about 30 s and 2 GB on the CPU).
 */
import assert from "node:assert/strict";
import { readModel, SHARED_DATA } from "../../_onnx_tensors.ts";
import { rng } from "../../_util.ts";
import {
  decodeOnnxModel,
  ONNX_IMPORTERS,
  type OnnxTensorData,
  readOnnxTensor,
} from "../../../parsers/onnx/mod.ts";
import { type CaseResult, compareOutputs, runModel, runTestFolder } from "./_conformance.ts";
import { evaluate, type RefTensor } from "./_reference.ts";

const DATA = decodeURIComponent(SHARED_DATA.pathname).replace(/\/$/, "");
function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
const present = exists(`${DATA}/onnx-node-tests`);
if (!present) console.log(`ONNX conformance skipped: ${DATA}/onnx-node-tests is absent`);

/**
 * Tests of supported ops that Kiln refuses, each because its layers cannot express the case.
 * A test listed here that starts passing fails the check, so the list stays true.
 */
const KNOWN_EXCEPTIONS: Record<string, string> = {
  // Kiln's pooling layer has no dilation.
  test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True: "pool dilation",
  test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False: "pool dilation",
  test_averagepool_3d_dilations_small: "pool dilation",
  test_maxpool_3d_dilations_use_ref_impl: "pool dilation",
  // Kiln's Deconvolution is 2-D and a 3-D transposed convolution does not separate.
  test_convtranspose_3d: "3-D transposed convolution",
  // Kiln's ElementWise computes on float32; int32 max/min would round above 2^24.
  test_max_int32: "int32 ElementWise",
  test_min_int32: "int32 ElementWise",
  // Kiln has no zero-sized tensors.
  test_reshape_allowzero_reordered: "empty tensor",
  test_slice_start_out_of_bounds: "empty tensor",
};

function opsOf(file: string): string[] {
  return [...new Set(readModel(file).nodes.map((n) => n.opType))];
}

async function folderSuite(
  suite: string,
  device: "cpu" | "cuda" = "cpu",
): Promise<{ result: CaseResult; supported: boolean }[]> {
  const dirs = [...Deno.readDirSync(`${DATA}/${suite}`)].filter((e) => e.isDirectory)
    .map((e) => e.name).sort();
  const out = [];
  for (const name of dirs) {
    const dir = `${DATA}/${suite}/${name}`;
    const supported = opsOf(`${dir}/model.onnx`).every((op) => ONNX_IMPORTERS.has(op));
    out.push({ result: await runTestFolder(dir, name, device), supported });
  }
  return out;
}

function report(title: string, results: CaseResult[]): void {
  const count = (s: string) => results.filter((r) => r.status === s).length;
  const frozen = results.filter((r) => r.status === "pass" && r.frozen.length).length;
  console.log(
    `\n${title}: ${count("pass")} pass (${frozen} with shape/weight inputs bound as constants), ` +
      `${count("fail")} fail, ${count("unsupported")} unsupported, of ${results.length}`,
  );
  for (const r of results.filter((r) => r.status === "fail")) {
    console.log(`  FAIL ${r.name}: ${r.detail}`);
  }
  for (const r of results.filter((r) => r.status === "unsupported")) {
    console.log(
      `  unsupported ${r.name}: ${r.detail.split("\n").slice(0, 2).join(" ").slice(0, 160)}`,
    );
  }
}

/** Every test of a supported op passes, except the known exceptions (which must not pass). */
function checkSuite(cases: { result: CaseResult; supported: boolean }[]): void {
  const fails = cases.filter((c) => c.result.status === "fail").map((c) => c.result.name);
  assert.deepEqual(fails, [], `conformance failures: ${fails.join(", ")}`);
  const refused = cases.filter((c) => c.supported && c.result.status !== "pass")
    .map((c) => c.result.name);
  const unexpected = refused.filter((n) => !(n in KNOWN_EXCEPTIONS));
  assert.deepEqual(unexpected, [], `supported ops refused: ${unexpected.join(", ")}`);
  const passing = cases.filter((c) =>
    c.result.name in KNOWN_EXCEPTIONS && c.result.status === "pass"
  )
    .map((c) => c.result.name);
  assert.deepEqual(passing, [], `known exceptions that now pass (remove them): ${passing}`);
}

Deno.test({
  name: "ONNX conformance: onnx-node-tests and pytorch-converted",
  ignore: !present,
  fn: async () => {
    const node = await folderSuite("onnx-node-tests");
    const torch = await folderSuite("onnx-pytorch-converted");
    report("onnx-node-tests", node.map((c) => c.result));
    report("onnx-pytorch-converted", torch.map((c) => c.result));
    const all = [...node, ...torch].map((c) => c.result);
    const count = (s: string) => all.filter((r) => r.status === s).length;
    console.log(
      `\nONNX conformance total: ${count("pass")} pass, ${count("fail")} fail, ${
        count("unsupported")
      } unsupported`,
    );
    checkSuite([...node, ...torch]);
    assert.ok(count("pass") >= 200, `only ${count("pass")} tests pass`);
  },
});

/**
 * Polygraphy's models have no expected outputs: seeded random inputs, expected values from the
 * float64 reference (so the tolerance allows float32 rounding: atol 1e-5 on values of order 1).
 */
const POLYGRAPHY: Record<string, { options?: Record<string, unknown>; batch?: number }> = {
  "identity.onnx": {},
  // Symbolic height and width: fixed as Polygraphy's own tests do (--input-shapes).
  "dynamic_identity.onnx": { options: { inputShapes: { X: [1, 2, 3, 5] } } },
  // A symbolic leading dim becomes the batch N: run with 3.
  "dim_param.onnx": { batch: 3 },
  "conv.onnx": {},
  "matmul.onnx": {},
  "matmul.fp16.onnx": {},
  "ext_weights_same_dir/ext_weights.onnx": {},
  "const_foldable.onnx": {},
  // Shape → ReduceProd → Reshape flattens the batch into one dim: it needs a fixed batch.
  "reshape.onnx": { options: { inputShapes: { data: [2, 3, 5, 5] } } },
  "instancenorm.onnx": {},
  "residual_block.onnx": { batch: 2 },
  "qdq_conv.onnx": {},
  "multi_output.onnx": {},
  "no_op_reshape.onnx": {},
};

/** Polygraphy models Kiln refuses, with the reason (their ops are outside the importer's list). */
const POLYGRAPHY_REFUSED: Record<string, string> = {
  "matmul.fp16.onnx": "MatMul computes on float32 only",
  "qdq_conv.onnx": "QuantizeLinear/DequantizeLinear (explicit INT8) have no importer",
};

Deno.test({
  name: "ONNX conformance: Polygraphy models vs a float64 reference",
  ignore: !present,
  fn: async () => {
    const results: CaseResult[] = [];
    for (const [file, spec] of Object.entries(POLYGRAPHY)) {
      const path = `${DATA}/onnx/polygraphy-models/${file}`;
      const model = readModel(path);
      const r = rng(7);
      const inputs: OnnxTensorData[] = [];
      const refInputs: Record<string, RefTensor> = {};
      const shapes = (spec.options?.inputShapes ?? {}) as Record<string, number[]>;
      for (const name of model.inputs) {
        const declared = declaredDims(path, name);
        if (!declared) continue; // an initializer listed among the inputs
        const dims = (shapes[name] ?? declared).map((d, i) =>
          typeof d === "number" && d > 0 ? d : i === 0 ? spec.batch ?? 1 : 1
        );
        const values = Float32Array.from(
          { length: dims.reduce((a, b) => a * b, 1) },
          () => 2 * r() - 1,
        );
        inputs.push({ name, dataType: 1, dims, values });
        refInputs[name] = { dims, data: Float64Array.from(values) };
      }
      const result = await runModel(file, path, inputs, (outs) => {
        const want = evaluate(path, refInputs);
        return compareOutputs(
          outs,
          Object.entries(want).map(([name, t]) => ({ name, dims: t.dims, values: t.data })),
          { rtol: 1e-3, atol: 1e-5 },
        );
      }, { ...spec.options, batch: spec.batch });
      results.push(result);
    }
    report("polygraphy-models", results);
    for (const r of results) {
      if (r.name in POLYGRAPHY_REFUSED) assert.equal(r.status, "unsupported", r.name);
      else assert.equal(r.status, "pass", `${r.name}: ${r.detail}`);
    }
  },
});

/** A graph input's declared dims (undefined when it is an initializer). */
function declaredDims(path: string, name: string): (number | string)[] | undefined {
  const m = decodeOnnxModel(Deno.readFileSync(path), path);
  if (m.initializers.has(name)) return undefined;
  return (m.inputs.find((v) => v.name === name)?.dims ?? []).map((d) => d ?? "?");
}

Deno.test({
  name: "ONNX conformance: light model-zoo networks (ConstantOfShape weights folded at import)",
  ignore: !present || !exists(`${DATA}/onnx-light`),
  fn: async () => {
    const models = [
      "light_squeezenet",
      "light_bvlc_alexnet",
      "light_inception_v1",
      "light_resnet50",
    ];
    if (Deno.env.get("KILN_SLOW_TESTS") === "1") models.push("light_vgg19");
    const results: CaseResult[] = [];
    for (const m of models) {
      const path = `${DATA}/onnx-light/${m}.onnx`;
      const expected = await readOnnxTensor(`${DATA}/onnx-light/${m}_output_0.pb`);
      const model = readModel(path);
      const decoded = decodeOnnxModel(Deno.readFileSync(path), path);
      const input = decoded.inputs.find((v) => !decoded.initializers.has(v.name))!;
      // The upstream input: arange(n) / n in float32, dims without a value taken as 1.
      const dims = (input.dims ?? []).map((d) => (typeof d === "number" && d > 0 ? d : 1));
      const n = dims.reduce((a, b) => a * b, 1);
      const values = Float32Array.from({ length: n }, (_, i) => Math.fround(i / n));
      results.push(
        await runModel(
          m,
          path,
          [{ name: input.name, dataType: 1, dims, values }],
          (outs) =>
            compareOutputs(outs, [{
              name: model.outputs[0],
              dims: expected.dims,
              values: expected.values,
            }]),
        ),
      );
    }
    report("onnx-light", results);
    for (const r of results) assert.equal(r.status, "pass", `${r.name}: ${r.detail}`);
  },
});

/** The GPU suite sets KILN_DEVICE=cuda: the same tests on the CUDA backend. */
const onGpu = present && Deno.env.get("KILN_DEVICE") === "cuda";

Deno.test({
  name: "ONNX conformance on the GPU: every CPU pass passes or lacks a CUDA kernel",
  ignore: !onGpu,
  fn: async () => {
    const cases = [
      ...await folderSuite("onnx-node-tests", "cuda"),
      ...await folderSuite("onnx-pytorch-converted", "cuda"),
    ];
    const results = cases.map((c) => c.result);
    report("GPU (node tests + pytorch-converted)", results);
    const noKernel = results.filter((r) => r.detail.startsWith("no GPU kernel")).length;
    console.log(`  (${noKernel} of the unsupported lack a CUDA kernel for a layer kind)`);
    const fails = results.filter((r) => r.status === "fail").map((r) => `${r.name}: ${r.detail}`);
    assert.deepEqual(fails, []);
  },
});
