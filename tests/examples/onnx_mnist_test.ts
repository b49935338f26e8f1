/**
 * examples/onnx_mnist.ts (sampleOnnxMNIST): ten digits out of ten, and each digit's logits equal
 * to those of the float64 reference evaluator of the conformance tests (the ONNX operator
 * definitions written out in tests/parsers/onnx/_reference.ts) run on the same inputs.
 */
import assert from "node:assert/strict";
import { classifyDigits, main, MNIST_ONNX } from "../../examples/onnx_mnist.ts";
import { evaluate } from "../parsers/onnx/_reference.ts";
import { assertClose } from "../_util.ts";

const DATA = decodeURIComponent(new URL("../../../shared/data", import.meta.url).pathname);
const present = (() => {
  try {
    return Deno.statSync(`${DATA}/images/mnist-pgm/0.pgm`).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "onnx_mnist classifies the ten pgm digits, logits equal to a float64 reference",
  ignore: !present,
  fn: async () => {
    const lines: string[] = [];
    const r = await classifyDigits({ data: DATA, device: "cpu", log: (l) => lines.push(l) });
    assert.deepEqual(r.predictions, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(r.correct, 10);
    assert.equal(lines.filter((l) => l.includes("(correct)")).length, 10);
    for (let d = 0; d < 10; d++) {
      const want = evaluate(MNIST_ONNX, {
        Input3: { dims: [1, 1, 28, 28], data: Float64Array.from(r.inputs[d]) },
      });
      const ref = want.Plus214_Output_0;
      assert.deepEqual(ref.dims, [1, 10]);
      // Float32 sums of up to 400 products against float64 ones, logits of order 10.
      assertClose(r.logits[d], ref.data, { rtol: 1e-4, atol: 1e-4 }, `digit ${d} logits`);
    }
  },
});

Deno.test({
  name: "onnx_mnist main: exit 0 on 10/10, 77 without the digits, 2 on a bad flag",
  ignore: !present,
  fn: async () => {
    const log = console.log, error = console.error;
    console.log = () => {};
    console.error = () => {};
    try {
      assert.equal(await main([`--data=${DATA}`, "--device=cpu"]), 0);
      assert.equal(await main(["--data=/nonexistent-kiln-data", "--device=cpu"]), 77);
      assert.equal(await main(["--batch=3"]), 2);
      assert.equal(await main([`--data=${DATA}`, "--device=tpu"]), 2);
    } finally {
      console.log = log;
      console.error = error;
    }
  },
});
