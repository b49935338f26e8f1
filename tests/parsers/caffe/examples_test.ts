/** The Caffe samples: sampleMNIST 10/10 with a serialize/deserialize round trip, sampleGoogleNet's profile. */
import assert from "node:assert/strict";
import { runMnistCaffe } from "../../../examples/mnist_caffe.ts";
import { runGoogLeNet } from "../../../examples/googlenet.ts";
import { DATA, hasData } from "./_util.ts";

const haveMnist = hasData("caffe/mnist/mnist.caffemodel") && hasData("images/mnist-pgm/9.pgm");
if (!haveMnist) console.log("note: ../shared/data is absent: the mnist_caffe test is skipped");

Deno.test({
  name: "mnist_caffe classifies the 10 digits and a deserialized engine gives identical outputs",
  ignore: !haveMnist,
  fn: async () => {
    const lines: string[] = [];
    const r = await runMnistCaffe({ data: DATA, device: "cpu", log: (l) => lines.push(l) });
    assert.deepEqual(r.predictions, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(r.correct, 10);
    assert.ok(r.identicalAfterReload);
    const text = lines.join("\n");
    assert.match(text, /10\/10 digits classified correctly/);
    assert.match(text, /-> 7 \(correct\); top 3: 7 /);
    assert.match(text, /@/); // the ASCII art
  },
});

Deno.test({
  name: "googlenet profiles every layer, sorted by time, at batch 2",
  ignore: !hasData("caffe/bvlc_googlenet/deploy.prototxt"),
  fn: async () => {
    const r = await runGoogLeNet({
      data: DATA,
      batch: 2,
      device: "cpu",
      iterations: 1,
      log: () => {},
    });
    assert.deepEqual(r.outputDims, ["N", 1000]);
    const rows = r.table.split("\n").slice(1, -1).map((l) => l.trim().split(/\s+/));
    const ms = rows.map((cols) => Number(cols[cols.length - 2]));
    assert.ok(rows.length > 50, `${rows.length} rows`);
    assert.deepEqual(ms, [...ms].sort((a, b) => b - a));
    assert.ok(r.table.includes("inception_5b/1x1"));
    assert.match(r.table.split("\n").pop()!, /^total\s+\d+\.\d+\s+100\.0$/);
  },
});
