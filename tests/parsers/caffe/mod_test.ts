/**
 * parseCaffe on real prototxts (../shared/data/caffe), legacy V1 nets, train/test nets, plugin
 * factories and every kind of refusal.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import type { Tensor } from "../../../dsl/ir/graph.ts";
import { registerPlugin } from "../../../dsl/layers/plugin.ts";
import { KilnError } from "../../../errors.ts";
import { parseCaffe } from "../../../parsers/caffe/mod.ts";
import { MemoryLogger } from "../../../runtime/logger.ts";
import { assertClose, randomArray, rng } from "../../_util.ts";
import { DATA, encodeModel, hasData, runCaffe } from "./_util.ts";

/** Asserts that `p` rejects with a KilnError of `code` whose message matches every pattern. */
async function assertRejects(
  p: Promise<unknown>,
  code: string,
  ...patterns: RegExp[]
): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.code, code, e.message);
    for (const re of patterns) assert.match(e.message, re);
    return e;
  }
  assert.fail("expected a rejection");
}

const dimsOf = (blobs: Map<string, Tensor>, name: string) => blobs.get(name)?.dims;

Deno.test({
  name: "parseCaffe imports sampleMNIST's prototxt and caffemodel by layer name",
  ignore: !hasData("caffe/mnist/mnist.caffemodel"),
  fn: async () => {
    const { network, blobs, diagnostics } = await parseCaffe({
      deploy: DATA + "caffe/mnist/mnist.prototxt",
      model: DATA + "caffe/mnist/mnist.caffemodel",
    });
    assert.deepEqual(network.inputs.map((t) => [t.name, t.dims]), [["data", ["N", 1, 28, 28]]]);
    assert.deepEqual(
      network.layers.map((l) => `${l.name}:${l.kind}`),
      [
        "scale:Scale",
        "conv1:Convolution",
        "pool1:Pooling",
        "conv2:Convolution",
        "pool2:Pooling",
        "ip1:FullyConnected",
        "relu1:Activation",
        "ip2:FullyConnected",
        "prob:SoftMax",
      ],
    );
    assert.deepEqual(dimsOf(blobs, "pool2"), ["N", 50, 4, 4]);
    assert.deepEqual(dimsOf(blobs, "prob"), ["N", 10]);
    // In place: "ip1" is relu1's output.
    assert.equal(blobs.get("ip1")!.producer!.name, "relu1");
    assert.equal(network.getLayer("conv2")!.weights.get("weights")!.values.length, 50 * 20 * 25);
    assert.ok(!diagnostics.some((d) => d.severity === "warning"), JSON.stringify(diagnostics));
  },
});

Deno.test({
  name: "parseCaffe reads LeNet's train/test net as its deploy net (data layers skipped)",
  ignore: !hasData("caffe/lenet/lenet_train_test.prototxt"),
  fn: async () => {
    const x = randomArray(2 * 784, rng(21));
    const deploy = await runCaffe(Deno.readTextFileSync(DATA + "caffe/lenet/lenet.prototxt"), {
      inputs: { data: x },
      outputs: ["prob"],
    });
    const train = await parseCaffe({
      deploy: DATA + "caffe/lenet/lenet_train_test.prototxt",
      inputShapes: { data: [64, 1, 28, 28] },
    });
    const notes = train.diagnostics.map((d) => d.message).join("\n");
    assert.match(notes, /layer "mnist" \(Data\) skipped: not in the TEST phase/);
    assert.match(notes, /layer "mnist" \(Data\) skipped: a data layer/);
    assert.match(notes, /transform_param \(scale 0\.00390625\) is not applied/);
    assert.match(notes, /layer "accuracy" \(Accuracy\) skipped: used in training only/);
    assert.match(notes, /layer "loss" \(SoftmaxWithLoss\) skipped/);
    assert.deepEqual(train.network.inputs[0].dims, ["N", 1, 28, 28]);
    // Same layer names, same seeded random weights: the same function. The train net ends at ip2.
    const ip2 = await runCaffe(Deno.readTextFileSync(DATA + "caffe/lenet/lenet.prototxt"), {
      inputs: { data: x },
      outputs: ["ip2"],
    });
    const { network, blobs } = train;
    network.markOutput(blobs.get("ip2"));
    const { buildEngine } = await import("../../../builder/build.ts");
    const engine = await buildEngine(network, { device: "cpu", maxBatchSize: 2 });
    using ctx = engine.createContext();
    const out = await ctx.execute({ data: x });
    assertClose(out.ip2 as Float32Array, ip2.outs.ip2 as Float32Array, { rtol: 0, atol: 0 }, "ip2");
    assert.equal((deploy.outs.prob as Float32Array).length, 20);
    engine[Symbol.dispose]();
  },
});

Deno.test({
  name: "parseCaffe says which data layer a train/test net's input comes from",
  ignore: !hasData("caffe/lenet/lenet_train_test.prototxt"),
  fn: async () => {
    const e = await assertRejects(
      parseCaffe({ deploy: DATA + "caffe/lenet/lenet_train_test.prototxt" }),
      "INVALID_NETWORK",
      /layer "conv1" \(Convolution\): bottom "data" is undefined/,
      /skipped Data layer "mnist" \(line 19\)/,
      /inputShapes/,
    );
    assert.equal(e.layer, "conv1");
    assert.equal(e.line, 36);
  },
});

Deno.test({
  name: "parseCaffe imports BVLC GoogLeNet with Caffe's ceil pooling sizes",
  ignore: !hasData("caffe/bvlc_googlenet/deploy.prototxt"),
  fn: async () => {
    const { network, blobs, diagnostics } = await parseCaffe({
      deploy: DATA + "caffe/bvlc_googlenet/deploy.prototxt",
    });
    assert.deepEqual(network.inputs[0].dims, ["N", 3, 224, 224]);
    const pools = ["pool1/3x3_s2", "pool2/3x3_s2", "pool3/3x3_s2", "pool4/3x3_s2"];
    assert.deepEqual(pools.map((p) => blobs.get(p)!.dims[2]), [56, 28, 14, 7]);
    assert.deepEqual(dimsOf(blobs, "inception_3a/output"), ["N", 256, 28, 28]);
    assert.deepEqual(dimsOf(blobs, "inception_5b/output"), ["N", 1024, 7, 7]);
    assert.deepEqual(dimsOf(blobs, "pool5/7x7_s1"), ["N", 1024, 1, 1]);
    assert.deepEqual(dimsOf(blobs, "prob"), ["N", 1000]);
    assert.equal(network.layers.filter((l) => l.kind === "LRN").length, 2);
    assert.equal(network.layers.filter((l) => l.kind === "Concatenation").length, 9);
    assert.ok(
      diagnostics.some((d) => d.severity === "warning" && /random weights/.test(d.message)),
    );
  },
});

Deno.test({
  name: "parseCaffe imports ResNet-50 (input_dim header, 53 BatchNorm+Scale folds, Eltwise)",
  ignore: !hasData("caffe/resnet50/ResNet-50-deploy.prototxt"),
  fn: async () => {
    const { network, blobs } = await parseCaffe({
      deploy: DATA + "caffe/resnet50/ResNet-50-deploy.prototxt",
    });
    assert.deepEqual(network.inputs[0].dims, ["N", 3, 224, 224]);
    const folded = network.layers.filter((l) => l.kind === "Scale" && l.sources.length === 2);
    assert.equal(folded.length, 53);
    assert.equal(folded[0].name, "bn_conv1 + scale_conv1");
    assert.equal(network.layers.filter((l) => l.kind === "ElementWise").length, 16);
    assert.deepEqual(dimsOf(blobs, "pool1"), ["N", 64, 56, 56]);
    assert.deepEqual(dimsOf(blobs, "res5c"), ["N", 2048, 7, 7]);
    assert.deepEqual(dimsOf(blobs, "prob"), ["N", 1000]);
  },
});

Deno.test({
  name: "parseCaffe imports AlexNet (grouped convolutions, LRN, dropout)",
  ignore: !hasData("caffe/bvlc_alexnet/deploy.prototxt"),
  fn: async () => {
    const { network, blobs } = await parseCaffe({
      deploy: DATA + "caffe/bvlc_alexnet/deploy.prototxt",
    });
    assert.equal(network.getLayer("conv2")!.attrs.groups, 2);
    assert.deepEqual(dimsOf(blobs, "pool5"), ["N", 256, 6, 6]);
    assert.deepEqual(dimsOf(blobs, "fc7"), ["N", 4096]);
    assert.equal(network.layers.filter((l) => l.name.startsWith("drop")).length, 0);
  },
});

const V2_NET = `name: "small"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 6 input_dim: 6
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }`;

const V1_NET = `name: "small"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 6 input_dim: 6
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
  blobs_lr: 1 blobs_lr: 2 convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool"
  pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layers { name: "ip" type: INNER_PRODUCT bottom: "pool" top: "ip" inner_product_param { num_output: 5 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" }
layers { name: "prob" type: SOFTMAX bottom: "ip" top: "prob" }`;

Deno.test("parseCaffe reads legacy V1 prototxts and caffemodels like current ones", async () => {
  const r = rng(22);
  const blobs = [
    {
      name: "conv",
      blobs: [{ dims: [4, 3, 3, 3], data: randomArray(108, r) }, {
        dims: [4],
        data: randomArray(4, r),
      }],
    },
    {
      name: "ip",
      blobs: [{ dims: [5, 16], data: randomArray(80, r) }, { dims: [5], data: randomArray(5, r) }],
    },
  ];
  const legacyBlobs = blobs.map((l) => ({
    ...l,
    blobs: l.blobs.map((b) => ({
      ...b,
      dims: [1, 1, 1, 1, ...b.dims].slice(-4),
      legacyShape: true,
      double: true,
    })),
  }));
  const x = randomArray(2 * 3 * 36, r);
  const current = await runCaffe(V2_NET, {
    model: encodeModel(blobs),
    inputs: { data: x },
    outputs: ["prob"],
  });
  const legacy = await runCaffe(V1_NET, {
    model: encodeModel(legacyBlobs, { legacyLayers: true }),
    inputs: { data: x },
    outputs: ["prob"],
  });
  assert.deepEqual(
    legacy.parsed.network.layers.map((l) => l.kind),
    current.parsed.network.layers.map((l) => l.kind),
  );
  assertClose(legacy.outs.prob as Float32Array, current.outs.prob as Float32Array, {
    rtol: 1e-6,
    atol: 1e-7,
  });
  assert.ok(
    legacy.parsed.diagnostics.some((d) => /"loss" \(SoftmaxWithLoss\) skipped/.test(d.message)),
  );
});

Deno.test("parseCaffe lists every unsupported layer in one error before building", async () => {
  const deploy = `name: "three"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "roi" type: "ROIPooling" bottom: "data" top: "roi" }
layer { name: "relu" type: "ReLU" bottom: "roi" top: "roi" }
layer {
  name: "prior"
  type: "PriorBox"
  bottom: "roi"
  top: "prior"
}
layer { name: "conv" type: "Convolution" bottom: "prior" top: "conv" convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "det" type: "DetectionOutput" bottom: "conv" top: "det" }
layer { name: "late" type: "ReLU" bottom: "never_defined" top: "late" }
`;
  const e = await assertRejects(
    parseCaffe({ deploy }),
    "UNSUPPORTED",
    /^<deploy>: 3 layers cannot be imported:\n/,
    /line 3: layer "roi": unsupported layer type "ROIPooling"/,
    /line 5: layer "prior": unsupported layer type "PriorBox"/,
    /line 12: layer "det": unsupported layer type "DetectionOutput"/,
    /pluginFactory/,
  );
  // Checked before anything is built: the undefined bottom of "late" is not what is reported.
  assert.deepEqual(e.problems.map((p) => [p.layer, p.line]), [["roi", 3], ["prior", 5], [
    "det",
    12,
  ]]);
  assert.equal(e.line, 3);
  assert.equal(e.layer, "roi");
  assert.equal(e.file, "<deploy>");
});

Deno.test("parseCaffe lists unsupported settings of known layer types with the others", async () => {
  const deploy = `input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" pooling_param { pool: STOCHASTIC kernel_size: 2 } }
layer { name: "lrn" type: "LRN" bottom: "pool" top: "lrn" lrn_param { norm_region: WITHIN_CHANNEL } }
layer { name: "conv3d" type: "Convolution" bottom: "lrn" top: "c" convolution_param { num_output: 2 kernel_size: 1 kernel_size: 1 kernel_size: 1 } }
layer { name: "spp" type: "SPP" bottom: "c" top: "spp" }`;
  const e = await assertRejects(
    parseCaffe({ deploy }),
    "UNSUPPORTED",
    /4 layers cannot be imported/,
    /line 2: layer "pool": STOCHASTIC pooling/,
    /line 3: layer "lrn": lrn_param\.norm_region WITHIN_CHANNEL/,
    /line 4: layer "conv3d": kernel_size has 3 values \(N-D convolution/,
    /line 5: layer "spp": unsupported layer type "SPP"/,
  );
  assert.equal(e.problems.length, 4);
});

registerPlugin({
  name: "CaffeTestAddBias",
  version: "1",
  params: z.object({}),
  inferShape: (inputs) => [inputs[0]],
  supportsDType: (d) => d === "float32",
  weights: (inputs) => ({ bias: { dims: [inputs[0].dims[1] as number] } }),
  cpu: ({ weights, inputs, outputs }) => {
    const x = inputs[0].data, y = outputs[0].data, b = weights.bias as Float32Array;
    const [, c, h, w] = inputs[0].dims;
    for (let i = 0; i < x.length; i++) y[i] = x[i] + b[Math.floor(i / (h * w)) % c];
  },
});

Deno.test("parseCaffe builds plugin layers through the factory, with the layer's weights", async () => {
  const bias = [0.5, -1, 2];
  const model = encodeModel([{ name: "custom", blobs: [{ dims: [3], data: bias }] }]);
  const seen: string[] = [];
  const x = randomArray(2 * 3 * 4, rng(23));
  const deploy = `input: "data" input_shape { dim: 1 dim: 3 dim: 2 dim: 2 }
layer { name: "custom" type: "MyAddBias" bottom: "data" top: "y" my_param_is_unknown_here: 1 }`;
  // The prototxt has a field caffe.proto does not know: refused at parse time with its position.
  await assertRejects(
    parseCaffe({ deploy }),
    "PARSE_ERROR",
    /<deploy>:2:66: caffe\.LayerParameter has no field/,
  );
  const ok = deploy.replace(" my_param_is_unknown_here: 1", "");
  const parsed = await parseCaffe({
    deploy: ok,
    model,
    pluginFactory: {
      isPlugin: (name) => name === "custom",
      createPlugin: (name, weights, { network, inputs, type }) => {
        seen.push(`${name}:${type}:${weights.map((w) => w.dims.join("x")).join(",")}`);
        const layer = network.addPlugin(inputs, { plugin: "CaffeTestAddBias", name });
        layer.setWeights("bias", weights[0].data);
        return layer;
      },
    },
  });
  assert.deepEqual(seen, ["custom:MyAddBias:3"]);
  parsed.network.markOutput(parsed.blobs.get("y"));
  const { buildEngine } = await import("../../../builder/build.ts");
  const engine = await buildEngine(parsed.network, { device: "cpu", maxBatchSize: 2 });
  using ctx = engine.createContext();
  const out = await ctx.execute({ data: x });
  assertClose(out.y as Float32Array, Array.from(x, (v, i) => v + bias[Math.floor(i / 4) % 3]));
  engine[Symbol.dispose]();

  await assertRejects(
    parseCaffe({
      deploy: ok,
      pluginFactory: { isPlugin: () => true, createPlugin: () => 42 as never },
    }),
    "INVALID_ATTRIBUTE",
    /layer "custom" \(MyAddBias\): the plugin factory returned 42/,
  );
  const boom = () => {
    throw new TypeError("boom");
  };
  await assertRejects(
    parseCaffe({ deploy: ok, pluginFactory: { isPlugin: boom, createPlugin: boom } }),
    "INVALID_ARGUMENT",
    /<deploy>:2: layer "custom" \(MyAddBias\): the plugin factory's isPlugin threw: boom/,
  );
  await assertRejects(
    parseCaffe({ deploy: ok, pluginFactory: { isPlugin: () => true, createPlugin: boom } }),
    "INVALID_ARGUMENT",
    /layer "custom" \(MyAddBias\): the plugin factory's createPlugin threw: boom/,
  );
});

Deno.test("parseCaffe checks the model's blobs against the layers", async () => {
  const deploy = `input: "data" input_shape { dim: 1 dim: 2 dim: 4 dim: 4 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 3 kernel_size: 3 } }`;
  const bad = encodeModel([{
    name: "conv",
    blobs: [{ dims: [3, 2, 2, 2], data: new Float32Array(24) }, { dims: [3], data: [1, 2, 3] }],
  }]);
  const e = await assertRejects(
    parseCaffe({ deploy, model: bad }),
    "SHAPE_MISMATCH",
    /<deploy>:2: layer "conv" \(Convolution\): blob 0 of the model is \[3,2,2,2\] \(24 values\); expected \[3,2,3,3\] \(54 values\)/,
  );
  assert.equal(e.line, 2);
  const noBias = encodeModel([{
    name: "conv",
    blobs: [{ dims: [3, 2, 3, 3], data: new Float32Array(54) }],
  }]);
  await assertRejects(
    parseCaffe({ deploy, model: noBias }),
    "INVALID_ATTRIBUTE",
    /has 1 blob\(s\) for this layer; blob 1 \[3\] is missing/,
  );
  await assertRejects(
    parseCaffe({ deploy, model: new Uint8Array([0x0a, 0xff, 0x01]) }),
    "PARSE_ERROR",
    /<model>: not a valid binary NetParameter/,
  );
  const ragged = encodeModel([{
    name: "conv",
    blobs: [{ dims: [3, 2, 3, 3], data: new Float32Array(5) }],
  }]);
  await assertRejects(
    parseCaffe({ deploy, model: ragged }),
    "PARSE_ERROR",
    /layer "conv" blob 0: holds 5 values; its dims \[3,2,3,3\] need 54/,
  );
});

Deno.test("parseCaffe refuses broken nets with the file, line and layer", async () => {
  const cases: [string, string, RegExp][] = [
    [
      `input: "a" input_dim: 1 input_dim: 2`,
      "PARSE_ERROR",
      /<deploy>:1: input_dim must give 4 values per input/,
    ],
    [`input: "a"`, "PARSE_ERROR", /<deploy>:1: input "a" have no shape|inputs? "a" ha/],
    [
      `input: "a" input_shape { dim: 1 } input_shape { dim: 2 }`,
      "PARSE_ERROR",
      /1 input\(s\) but 2 input_shape/,
    ],
    [
      `layer { name: "a" type: "ReLU" }\nlayers { name: "b" type: RELU }`,
      "PARSE_ERROR",
      /:2: the net mixes current "layer" and legacy V1 "layers"/,
    ],
    [`layers { layer { name: "old" } }`, "UNSUPPORTED", /V0 format/],
    [
      `input: "x" input_shape { dim: 1 dim: 2 }\nlayer { name: "r" type: "ReLU" bottom: "y" top: "z" }`,
      "INVALID_NETWORK",
      /<deploy>:2: layer "r" \(ReLU\): bottom "y" is undefined: no earlier layer or input produces it/,
    ],
    [
      `input: "x" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\nlayer { name: "c" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 0 kernel_size: 1 } }`,
      "INVALID_ATTRIBUTE",
      /<deploy>:2: layer "c" \(Convolution\): .*outputs/,
    ],
    [
      `input: "x" input_shape { dim: 1 dim: 3 dim: 3 dim: 3 }\nlayer { name: "c" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 2 group: 2 kernel_size: 1 } }`,
      "INVALID_ATTRIBUTE",
      /must divide by group/,
    ],
    [
      `input: "x" input_shape { dim: 1 dim: 2 }\nlayer { name: "e" type: "Eltwise" bottom: "x" top: "e" }`,
      "INVALID_ATTRIBUTE",
      /takes at least 2 bottoms/,
    ],
    [
      `input: "x" input_shape { dim: 1 dim: 2 }\nlayer { name: "e" type: "Eltwise" bottom: "x" bottom: "x" top: "e" eltwise_param { coeff: 1 } }`,
      "INVALID_ATTRIBUTE",
      /1 coefficients for 2 bottoms/,
    ],
    [
      `input: "x" input_shape { dim: 1 dim: 2 }\nlayer { name: "s" type: "Split" bottom: "x" top: "a" top: "b" }\nlayer { name: "t" type: "TanH" bottom: "a" bottom: "b" top: "t" }`,
      "INVALID_ARGUMENT",
      /:3: layer "t" \(TanH\): .*takes 1 input/,
    ],
    [
      `layer { name: "x" type: "Data" top: "d" include { phase: TEST } exclude { phase: TRAIN } }`,
      "PARSE_ERROR",
      /include rules or exclude rules, not both/,
    ],
    [
      `layer { name: "i" type: "Input" top: "d" input_param { shape { dim: 1 dim: 0 } } }`,
      "INVALID_ARGUMENT",
      /layer "i" \(Input\): .*dims must be positive/,
    ],
  ];
  for (const [deploy, code, re] of cases) await assertRejects(parseCaffe({ deploy }), code, re);
  await assertRejects(
    parseCaffe({ deploy: "/no/such/file.prototxt" }),
    "IO_ERROR",
    /cannot read the deploy file "\/no\/such\/file\.prototxt"/,
  );
  await assertRejects(
    parseCaffe({ deploy: new Uint8Array([0x6e, 0xff]) }),
    "PARSE_ERROR",
    /not UTF-8/,
  );
  await assertRejects(parseCaffe(null as never), "INVALID_ARGUMENT", /options object/);
  await assertRejects(
    parseCaffe({ deploy: 5 as never }),
    "INVALID_ARGUMENT",
    /"deploy" must be a file path/,
  );
});

Deno.test("parseCaffe keeps the TEST phase's layers by include/exclude rules, levels and stages", async () => {
  const deploy = `input: "x" input_shape { dim: 1 dim: 2 }
state { level: 2 stage: "deploy" }
layer { name: "a" type: "ReLU" bottom: "x" top: "a" include { phase: TRAIN } }
layer { name: "b" type: "ReLU" bottom: "x" top: "b" include { phase: TEST min_level: 3 } include { stage: "deploy" } }
layer { name: "c" type: "ReLU" bottom: "x" top: "c" exclude { not_stage: "deploy" } }
layer { name: "d" type: "ReLU" bottom: "x" top: "d" exclude { max_level: 1 } }
layer { name: "e" type: "ReLU" bottom: "x" top: "e" include { stage: "deploy" stage: "other" } }`;
  const { network } = await parseCaffe({ deploy });
  assert.deepEqual(network.layers.map((l) => l.name), ["b", "c", "d"]);
});

Deno.test("parseCaffe takes paths, text or bytes; random weights are seeded and reported", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = rng(24);
    const model = encodeModel([
      {
        name: "conv",
        blobs: [{ dims: [4, 3, 3, 3], data: randomArray(108, r) }, {
          dims: [4],
          data: randomArray(4, r),
        }],
      },
      {
        name: "ip",
        blobs: [{ dims: [5, 16], data: randomArray(80, r) }, {
          dims: [5],
          data: randomArray(5, r),
        }],
      },
      { name: "unused", blobs: [{ dims: [1], data: [1] }] },
    ]);
    await Deno.writeTextFile(`${dir}/net.prototxt`, V2_NET);
    await Deno.writeFile(`${dir}/net.caffemodel`, model);
    const x = randomArray(3 * 36, r);
    const run = async (deploy: string | Uint8Array, m?: string | Uint8Array, seed?: number) => {
      const logger = new MemoryLogger();
      const p = await parseCaffe({ deploy, model: m, seed, logger });
      p.network.markOutput(p.blobs.get("prob"));
      const { buildEngine } = await import("../../../builder/build.ts");
      const engine = await buildEngine(p.network, { device: "cpu" });
      using ctx = engine.createContext();
      const out = (await ctx.execute({ data: x })).prob as Float32Array;
      engine[Symbol.dispose]();
      return { out, p, logger };
    };
    const a = await run(`${dir}/net.prototxt`, `${dir}/net.caffemodel`);
    const b = await run(V2_NET, model);
    const c = await run(new TextEncoder().encode(V2_NET), model);
    assert.deepEqual(b.out, a.out);
    assert.deepEqual(c.out, a.out);
    assert.ok(
      a.p.diagnostics.some((d) =>
        /blobs for layers not in the prototxt \(ignored\): unused/.test(d.message)
      ),
    );
    const r1 = await run(V2_NET), r1again = await run(V2_NET), r2 = await run(V2_NET, undefined, 2);
    assert.deepEqual(r1.out, r1again.out);
    assert.notDeepEqual(r1.out, r2.out);
    assert.notDeepEqual(r1.out, a.out);
    assert.ok(
      r1.p.diagnostics.some((d) =>
        d.severity === "warning" && d.message === "no model file: random weights (seed 1)"
      ),
    );
    assert.ok(
      r1.logger.messages.some((m) => m.severity === "warning" && /random weights/.test(m.message)),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
