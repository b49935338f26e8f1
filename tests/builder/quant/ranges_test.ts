/** Dynamic-range files (sampleINT8API's `name:value` lines) and applying ranges and scales. */
import assert from "node:assert/strict";
import {
  applyDynamicRanges,
  applyScales,
  parseDynamicRanges,
  readDynamicRanges,
} from "../../../builder/quant/ranges.ts";
import { N, Network } from "../../../dsl/network.ts";
import { KilnError } from "../../../errors.ts";

const RESNET =
  new URL("../../../../shared/data/int8/resnet50_per_tensor_dynamic_range.txt", import.meta.url)
    .pathname;
const hasResnet = (() => {
  try {
    return Deno.statSync(RESNET).isFile;
  } catch {
    return false;
  }
})();

function net(): Network {
  const n = new Network();
  const x = n.input("x", [N, 4]);
  const a = n.addActivation(x, { name: "a", type: "relu" });
  n.markOutput(n.addActivation(a.output(0), { name: "b", type: "tanh" }).output(0));
  return n;
}

Deno.test("parseDynamicRanges: name:value lines, blank and # lines skipped, names with colons", () => {
  const r = parseDynamicRanges(
    "x:1.5\n\n# comment\n  gpu_0/conv1_1:5.43116007373  \nscope:t:0:2e-3\r\n",
  );
  assert.deepEqual([...r], [["x", 1.5], ["gpu_0/conv1_1", 5.43116007373], ["scope:t:0", 0.002]]);
});

Deno.test("ranges file errors are KilnErrors with the line number", () => {
  const cases: [string, number, RegExp][] = [
    ["x:1\nnocolon\n", 2, /expected "tensor_name:value"/],
    ["x:1\ny:\n", 2, /not a decimal number/],
    ["x:abc\n", 1, /"abc", not a decimal number/],
    ["x:0x10\n", 1, /not a decimal number/],
    ["x:1\n\ny:-2\n", 3, /not a decimal number/],
    ["x:0\n", 1, /must be finite and positive/],
    ["x:1e999\n", 1, /must be finite and positive/],
    [":1\n", 1, /expected "tensor_name:value"/],
    ["x:1\nx:2\n", 2, /appears twice/],
  ];
  for (const [text, line, re] of cases) {
    assert.throws(
      () => parseDynamicRanges(text, "r.txt"),
      (e) => e instanceof KilnError && e.line === line && e.file === "r.txt" && re.test(e.message),
      `${JSON.stringify(text)}: ${re}`,
    );
  }
  assert.throws(
    () => readDynamicRanges("/nonexistent/ranges.txt"),
    (e) => e instanceof KilnError && e.code === "IO_ERROR",
  );
});

Deno.test("applyDynamicRanges sets [-v, v] and reports unknown names and tensors left without a range", () => {
  const n = net();
  const report = applyDynamicRanges(n, new Map([["x", 2], ["a", 0.5], ["nope", 1]]));
  assert.deepEqual(report, {
    applied: ["x", "a"],
    unknown: ["nope"],
    missing: [n.outputs[0].name],
  });
  assert.deepEqual(n.tensors.get("x")!.dynamicRange, { min: -2, max: 2 });
  assert.deepEqual(n.tensors.get("a")!.dynamicRange, { min: -0.5, max: 0.5 });
  applyScales(n, new Map([["x", 1 / 127]]));
  assert.deepEqual(n.tensors.get("x")!.dynamicRange, { min: -1, max: 1 });
  assert.throws(
    () => applyScales(n, new Map([["x", 0]])),
    (e) => e instanceof KilnError && e.tensor === "x",
  );
  assert.throws(
    () => n.tensors.get("x")!.setDynamicRange(1, 1),
    (e) => e instanceof KilnError && e.tensor === "x",
  );
  assert.throws(
    () => n.tensors.get("x")!.setDynamicRange(-Infinity, 1),
    /must be finite with min < max/,
  );
});

Deno.test("sampleINT8API's ResNet-50 ranges file reads whole", { ignore: !hasResnet }, () => {
  const r = readDynamicRanges(RESNET);
  const lines = Deno.readTextFileSync(RESNET).split("\n").filter((l) => l.trim() !== "");
  assert.equal(r.size, lines.length);
  assert.equal(r.get("gpu_0/data_0"), 1.000244122);
  assert.equal(r.get("gpu_0/conv1_1"), 5.43116007373);
  for (const v of r.values()) assert.ok(v > 0 && Number.isFinite(v));
});
