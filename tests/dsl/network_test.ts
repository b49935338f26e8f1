import assert from "node:assert/strict";
import { KilnError } from "../../errors.ts";
import { N, Network } from "../../dsl/network.ts";
import { LAYERS } from "../../dsl/layers/mod.ts";
import { Tensor } from "../../dsl/ir/graph.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../_util.ts";

/** A small LeNet: [N,1,12,12] → scale → conv 3@5x5 → maxPool 2 → fc 10 → relu → fc 4 → softmax. */
function lenetWeights(seed: number) {
  const r = rng(seed);
  return {
    conv: randomArray(3 * 25, r),
    convBias: randomArray(3, r),
    fc1: randomArray(10 * 3 * 4 * 4, r, -0.3, 0.3),
    fc1Bias: randomArray(10, r),
    fc2: randomArray(4 * 10, r),
    fc2Bias: randomArray(4, r),
  };
}

type LenetWeights = ReturnType<typeof lenetWeights>;

/** The same network in float64, written out loop by loop. */
function referenceLenet(w: LenetWeights, x: Float32Array, batch: number): Float64Array {
  const out = new Float64Array(batch * 4);
  for (let b = 0; b < batch; b++) {
    const img = Array.from(x.subarray(b * 144, (b + 1) * 144), (v) => v * 0.5 + 0.1);
    const conv = new Float64Array(3 * 8 * 8);
    for (let o = 0; o < 3; o++) {
      for (let y = 0; y < 8; y++) {
        for (let xx = 0; xx < 8; xx++) {
          let acc = w.convBias[o];
          for (let i = 0; i < 5; i++) {
            for (let j = 0; j < 5; j++) {
              acc += img[(y + i) * 12 + xx + j] * w.conv[o * 25 + i * 5 + j];
            }
          }
          conv[(o * 8 + y) * 8 + xx] = acc;
        }
      }
    }
    const pool = new Float64Array(3 * 4 * 4);
    for (let o = 0; o < 3; o++) {
      for (let y = 0; y < 4; y++) {
        for (let xx = 0; xx < 4; xx++) {
          const at = (dy: number, dx: number) => conv[(o * 8 + 2 * y + dy) * 8 + 2 * xx + dx];
          pool[(o * 4 + y) * 4 + xx] = Math.max(at(0, 0), at(0, 1), at(1, 0), at(1, 1));
        }
      }
    }
    const h = Array.from({ length: 10 }, (_, o) => {
      let acc = w.fc1Bias[o];
      for (let i = 0; i < 48; i++) acc += pool[i] * w.fc1[o * 48 + i];
      return Math.max(0, acc);
    });
    const logits = Array.from({ length: 4 }, (_, o) => {
      let acc = w.fc2Bias[o];
      for (let i = 0; i < 10; i++) acc += h[i] * w.fc2[o * 10 + i];
      return acc;
    });
    const m = Math.max(...logits);
    const e = logits.map((v) => Math.exp(v - m));
    const s = e.reduce((a, c) => a + c, 0);
    e.forEach((v, i) => (out[b * 4 + i] = v / s));
  }
  return out;
}

function lenetWithAddMethods(w: LenetWeights): Network {
  const net = new Network();
  const data = net.input("data", [N, 1, 12, 12]);
  const scale = net.addScale(data, { name: "scale", scale: [0.5], shift: [0.1] });
  const conv = net.addConvolution(scale.output(0), {
    name: "conv1",
    outputs: 3,
    kernel: 5,
    weights: w.conv,
    bias: w.convBias,
  });
  const pool = net.addPooling(conv.output(0), { name: "pool1", type: "max", window: 2 });
  const fc1 = net.addFullyConnected(pool.output(0), {
    name: "ip1",
    outputs: 10,
    weights: w.fc1,
    bias: w.fc1Bias,
  });
  const relu = net.addActivation(fc1.output(0), { name: "relu1", type: "relu" });
  const fc2 = net.addFullyConnected(relu.output(0), {
    name: "ip2",
    outputs: 4,
    weights: w.fc2,
    bias: w.fc2Bias,
  });
  const prob = net.addSoftMax(fc2.output(0), { name: "prob" });
  net.markOutput(prob.output(0));
  return net;
}

function lenetChained(w: LenetWeights): Network {
  const net = new Network();
  const prob = net.input("data", [N, 1, 12, 12])
    .scale({ scale: [0.5], shift: [0.1] })
    .conv({ outputs: 3, kernel: 5, weights: w.conv, bias: w.convBias })
    .maxPool({ window: 2 })
    .fc({ outputs: 10, weights: w.fc1, bias: w.fc1Bias })
    .relu()
    .fc({ outputs: 4, weights: w.fc2, bias: w.fc2Bias })
    .softmax();
  net.markOutput(prob, "prob");
  return net;
}

Deno.test("Network: addX and chaining build the same network with the same results", async () => {
  const w = lenetWeights(1);
  const a = lenetWithAddMethods(w), b = lenetChained(w);
  assert.deepEqual(a.layers.map((l) => l.kind), b.layers.map((l) => l.kind));
  assert.deepEqual(
    a.layers.map((l) => l.outputs[0].dims),
    b.layers.map((l) => l.outputs[0].dims),
  );
  assert.deepEqual(a.layers.map((l) => l.attrs), b.layers.map((l) => l.attrs));
  const r = rng(2);
  for (const batch of [1, 3]) {
    const x = randomArray(batch * 144, r);
    const ya = (await runOnCpu(a, { data: x })).prob;
    const yb = (await runOnCpu(b, { data: x })).prob;
    assert.deepEqual(ya, yb);
    assertClose(ya as Float32Array, referenceLenet(w, x, batch), { rtol: 1e-5, atol: 1e-6 });
  }
});

Deno.test("Network: output shapes are known as soon as a layer is added", () => {
  const net = new Network();
  const x = net.input("data", [N, 1, 12, 12]);
  const steps: [Tensor, unknown[]][] = [];
  let t = x.conv({ outputs: 3, kernel: 5, weights: new Float32Array(75) });
  steps.push([t, [N, 3, 8, 8]]);
  t = t.maxPool({ window: 2 });
  steps.push([t, [N, 3, 4, 4]]);
  t = t.fc({ outputs: 10, weights: new Float32Array(480) });
  steps.push([t, [N, 10]]);
  t = t.relu();
  steps.push([t, [N, 10]]);
  for (const [tensor, dims] of steps) {
    assert.deepEqual(tensor.dims, dims);
    assert.equal(tensor.dtype, "float32");
    assert.ok(tensor.producer);
  }
  assert.equal(t.cast("float16").dtype, "float16");
});

Deno.test("Network: weights are copied at definition; mutating the caller's array has no effect", async () => {
  const build = (weights: Float32Array, bias: number[]) => {
    const net = new Network();
    const x = net.input("x", [N, 3]);
    net.markOutput(x.fc({ outputs: 2, weights, bias }), "y");
    return net;
  };
  const weights = Float32Array.of(1, 2, 3, 4, 5, 6), bias = [0.5, -0.5];
  const net = build(weights, bias);
  const layer = net.layers[0];
  weights.fill(100);
  bias[0] = 100;
  const { y } = await runOnCpu(net, { x: Float32Array.of(1, 1, 1) });
  assert.deepEqual(Array.from(y), [6.5, 14.5]);
  assert.notEqual(layer.weights.get("weights")!.values, weights);
  // setWeights copies too.
  const w2 = Float32Array.of(1, 0, 0, 0, 1, 0);
  layer.setWeights("weights", w2);
  w2.fill(7);
  const again = await runOnCpu(net, { x: Float32Array.of(2, 3, 4) });
  assert.deepEqual(Array.from(again.y), [2.5, 2.5]);
});

Deno.test("Network: layer and tensor names are unique; duplicates get a suffix", () => {
  const net = new Network();
  const x = net.input("x", [N, 4]);
  const a = net.addActivation(x, { type: "relu", name: "act" });
  const b = net.addActivation(a.output(0), { type: "relu", name: "act" });
  assert.equal(a.name, "act");
  assert.equal(b.name, "act_1");
  assert.equal(b.output(0).name, "act_1");
  const c = x.relu(), d = x.relu();
  const names = net.layers.map((l) => l.name);
  assert.equal(new Set(names).size, names.length);
  assert.notEqual(c.name, d.name);
  assert.equal(net.getLayer("act_1"), b);
  assert.throws(() => net.input("x", [N, 4]), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.equal(e.tensor, "x");
    assert.match(e.message, /a tensor named "x" already exists/);
    return true;
  });
});

Deno.test("Network: markOutput renames the tensor and names the binding", async () => {
  const net = new Network();
  const x = net.input("x", [N, 2]);
  const y = x.relu();
  const same = net.markOutput(y, "out");
  assert.equal(same, y);
  assert.equal(y.name, "out");
  assert.equal(net.tensors.get("out"), y);
  net.markOutput(y); // marking twice keeps one output
  assert.equal(net.outputs.length, 1);
  const res = await runOnCpu(net, { x: Float32Array.of(-1, 2) });
  assert.deepEqual(Object.keys(res), ["out"]);
  assert.deepEqual(Array.from(res.out), [0, 2]);
  // A name already taken, a non-tensor and a tensor of another network are refused.
  assert.throws(() => net.markOutput(x.sigmoid(), "x"), /a tensor named "x" already exists/);
  assert.throws(() => net.markOutput(undefined), /markOutput expects a Tensor/);
  const other = new Network();
  const foreign = other.input("z", [2]);
  assert.throws(() => net.markOutput(foreign), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.equal(e.tensor, "z");
    assert.match(e.message, /belongs to another network/);
    return true;
  });
  net.unmarkOutput(y);
  assert.equal(net.outputs.length, 0);
});

Deno.test("Network: wrong attributes throw KilnErrors naming layer, attribute and value", () => {
  const net = new Network();
  const x = net.input("x", [N, 1, 8, 8]);
  const cases: [() => unknown, RegExp][] = [
    [
      () => x.conv({ outputs: -1, kernel: 3 } as never),
      /Convolution layer "convolution_0": attribute "outputs".*given: -1/,
    ],
    [
      () => x.maxPool({ window: "big" } as never),
      /Pooling layer "pooling_1": attribute "window".*given: "big"/,
    ],
    [
      () => x.softmax({ axis: "last" } as never),
      /SoftMax layer "softmax_2": attribute "axis".*given: "last"/,
    ],
    [
      () => x.activation({ type: "swish" } as never),
      /Activation layer "activation_3": attribute "type".*given: "swish"/,
    ],
  ];
  for (const [f, pattern] of cases) {
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof KilnError);
      assert.equal(e.code, "INVALID_ATTRIBUTE");
      assert.match(e.message, pattern);
      return true;
    });
  }
  // A rejected layer leaves nothing behind.
  assert.equal(net.layers.length, 0);
  assert.deepEqual([...net.tensors.keys()], ["x"]);
  assert.throws(() => net.addLayer("Frobnicate", x), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.equal(e.code, "UNSUPPORTED");
    assert.match(e.message, /unknown layer kind "Frobnicate"; known kinds: .*Convolution/);
    return true;
  });
  assert.throws(
    () => net.addActivation(x, { type: "relu", name: 3 } as never),
    /"name" must be a string/,
  );
});

Deno.test("Network: inputs from another network are refused", () => {
  const a = new Network(), b = new Network();
  const xa = a.input("x", [N, 4]);
  const xb = b.input("x", [N, 4]);
  assert.throws(() => a.addElementWise([xa, xb], { op: "sum", name: "add" }), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.equal(e.layer, "add");
    assert.equal(e.tensor, "x");
    assert.match(e.message, /ElementWise layer "add": input 1 \("x"\) belongs to another network/);
    return true;
  });
  assert.throws(() => xa.add(xb), /belongs to another network/);
  assert.throws(() => a.addActivation(xb, { type: "relu" }), /belongs to another network/);
  assert.throws(
    () => a.addActivation([xa, "y"] as never, { type: "relu" }),
    /takes 1 input\(s\), got 2/,
  );
  assert.throws(
    () => a.addElementWise([xa, "y"] as never, { op: "sum" }),
    /input 1 is not a Tensor/,
  );
  assert.equal(a.layers.length, 0);
});

Deno.test("Network: input dims and dtype are checked", () => {
  const net = new Network();
  const bad: unknown[] = [[N, 0], [2, N], [1.5], [-1], "3x3"];
  for (const dims of bad) {
    assert.throws(() => net.input("x", dims as never), (e: unknown) => {
      assert.ok(e instanceof KilnError);
      assert.equal(e.tensor, "x");
      assert.match(
        e.message,
        /dims must be positive integers, with only the first allowed to be N/,
      );
      return true;
    });
  }
  assert.throws(
    () => net.input("x", [2], "float64" as never),
    /dtype must be one of float32, float16, int8, int32/,
  );
  assert.deepEqual(net.input("x", [N, 3], "int8").dims, [N, 3]);
});

Deno.test("Network: every layer kind's fluent shortcuts exist on tensors", () => {
  for (const def of Object.values(LAYERS)) {
    for (const method of Object.keys(def.fluent ?? {})) {
      assert.equal(
        typeof (Tensor.prototype as unknown as Record<string, unknown>)[method],
        "function",
      );
    }
  }
});
