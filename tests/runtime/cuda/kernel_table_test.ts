/**
 * The CUDA kernel table's load-time checks and failure messages, which need no GPU: a plugin
 * layer without a CUDA implementation is refused naming the plugin, one with `enqueueCuda` is
 * accepted; TopK's and Deconvolution's limits; the messages for an index or bound that only the
 * device sees out of range (runtime/cuda/_selection.ts), checked against the CPU kernels' words.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { registerPlugin } from "../../../dsl/layers/plugin.ts";
import { KilnError } from "../../../errors.ts";
import type { Manifest, ManifestLayer } from "../../../plan/mod.ts";
import { CUDA_KERNELS } from "../../../runtime/cuda/kernels.ts";

function layer(kind: string, attrs: Record<string, unknown>, inputs = [0]): ManifestLayer {
  return {
    name: `${kind.toLowerCase()}_0`,
    kind,
    attrs,
    inputs,
    outputs: [1],
    weights: {},
  } as unknown as ManifestLayer;
}

function manifest(dims: (number | "N")[]): Manifest {
  return { tensors: [{ name: "x", dims, dtype: "float32" }] } as unknown as Manifest;
}

const base = {
  version: "1",
  params: z.object({}),
  inferShape: (inputs: readonly { dims: (number | "N")[]; dtype: "float32" }[]) => [inputs[0]],
  supportsDType: () => true,
  cpu: () => {},
};

Deno.test("Plugin: refused on the GPU without enqueueCuda, accepted with it", () => {
  registerPlugin({ ...base, name: "TableTestCpuOnly" });
  registerPlugin({ ...base, name: "TableTestBoth", enqueueCuda: () => {} });
  const plugin = CUDA_KERNELS.Plugin;
  const why = plugin.unsupported!(
    layer("Plugin", { plugin: "TableTestCpuOnly", version: "1", params: {} }),
  );
  assert.match(why!, /plugin "TableTestCpuOnly" version "1" has no CUDA implementation/);
  assert.equal(
    plugin.unsupported!(layer("Plugin", { plugin: "TableTestBoth", version: "1", params: {} })),
    undefined,
  );
  assert.match(
    plugin.unsupported!(layer("Plugin", { plugin: "NotRegistered", version: "1", params: {} }))!,
    /no plugin "NotRegistered" is registered/,
  );
});

Deno.test("registerPlugin refuses an enqueueCuda that is not a function", () => {
  assert.throws(
    () => registerPlugin({ ...base, name: "TableTestBad", enqueueCuda: 3 as never }),
    (e) => e instanceof KilnError && /"enqueueCuda" must be a function/.test(e.message),
  );
});

Deno.test("TopK: k above the streamed limit is refused only for long axes", () => {
  const topk = CUDA_KERNELS.TopK;
  const at = (k: number) => layer("TopK", { op: "max", k, axis: -1 });
  assert.equal(topk.unsupported!(at(3000), manifest(["N", 4096])), undefined);
  assert.match(topk.unsupported!(at(3000), manifest(["N", 5000]))!, /k <= 2048/);
  assert.equal(topk.unsupported!(at(2048), manifest(["N", 100000])), undefined);
});

Deno.test("Deconvolution: kernels wider than 16 taps per axis are refused", () => {
  const d = CUDA_KERNELS.Deconvolution;
  const at = (kernel: number[]) => layer("Deconvolution", { kernel, stride: [1, 1] });
  assert.equal(d.unsupported!(at([16, 3])), undefined);
  assert.match(d.unsupported!(at([17, 3]))!, /17x3/);
});

Deno.test("device-detected failures are described like the CPU kernels describe them", () => {
  const g = CUDA_KERNELS.Gather.describeError!(
    layer("Gather", { axis: 1 }),
    [[2, 7, 5], [4]],
    2,
    9,
  );
  assert.equal(
    g,
    'Gather layer "gather_0": index 9 (element 2 of the indices) is out of range for axis 1 ' +
      "of size 7 (valid: -7 to 6)",
  );
  const r = CUDA_KERNELS.RaggedSoftMax.describeError!(layer("RaggedSoftMax", {}), [[3, 40]], 1, 41);
  assert.equal(
    r,
    'RaggedSoftMax layer "raggedsoftmax_0": bound 41 of row 1 is outside [0, 40] (the row length)',
  );
});
