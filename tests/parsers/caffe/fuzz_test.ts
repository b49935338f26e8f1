/**
 * Fuzzing parseCaffe with fast-check: mutated prototxts and mutated caffemodels are either
 * imported (and then verify) or refused with a KilnError; nothing else escapes, nothing hangs.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { verifyNetwork } from "../../../dsl/ir/verify.ts";
import { KilnError } from "../../../errors.ts";
import { parseCaffe } from "../../../parsers/caffe/mod.ts";
import { randomArray, rng } from "../../_util.ts";
import { DATA, encodeModel, hasData } from "./_util.ts";

/** A small net with most layer types, in both the current and the V1 spelling. */
const SEED_NETS = [
  `name: "fuzz"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 1 group: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" batch_norm_param { eps: 0.001 } }
layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" relu_param { negative_slope: 0.1 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "lrn" type: "LRN" bottom: "pool" top: "lrn" lrn_param { local_size: 3 alpha: 0.0001 beta: 0.75 } }
layer { name: "split" type: "Split" bottom: "lrn" top: "a" top: "b" }
layer { name: "prelu" type: "PReLU" bottom: "a" top: "a" }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "sum" eltwise_param { operation: SUM coeff: 1 coeff: -0.5 } }
layer { name: "cat" type: "Concat" bottom: "sum" bottom: "b" top: "cat" concat_param { axis: 1 } }
layer { name: "up" type: "Deconvolution" bottom: "cat" top: "up" convolution_param { num_output: 2 kernel_size: 2 stride: 2 group: 2 } }
layer { name: "flat" type: "Flatten" bottom: "up" top: "flat" }
layer { name: "ip" type: "InnerProduct" bottom: "flat" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "drop" type: "Dropout" bottom: "ip" top: "ip" }
layer { name: "rs" type: "Reshape" bottom: "ip" top: "rs" reshape_param { shape { dim: 0 dim: -1 dim: 1 } } }
layer { name: "pw" type: "Power" bottom: "rs" top: "pw" power_param { power: 2 scale: 0.5 shift: 1 } }
layer { name: "prob" type: "Softmax" bottom: "pw" top: "prob" softmax_param { axis: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" include { phase: TRAIN } }
`,
  `name: "v1"
input: "data"
input_dim: 1 input_dim: 2 input_dim: 6 input_dim: 6
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" blobs_lr: 1 convolution_param { num_output: 3 kernel_size: 3 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "ip" type: INNER_PRODUCT bottom: "pool" top: "ip" inner_product_param { num_output: 4 } }
layers { name: "prob" type: SOFTMAX bottom: "ip" top: "prob" }
`,
];

/** Tokens a mutation may insert: syntax, field names, enum values, numbers, layer types. */
const TOKENS = [
  "{",
  "}",
  "<",
  ">",
  "[",
  "]",
  ":",
  ",",
  ";",
  "#",
  '"',
  "'",
  "\\",
  "\n",
  "-",
  ".",
  " ",
  "layer",
  "layers",
  "name",
  "type",
  "bottom",
  "top",
  "input",
  "input_dim",
  "dim",
  "num_output",
  "kernel_size",
  "stride",
  "pad",
  "group",
  "axis",
  "coeff",
  "include",
  "phase",
  "TEST",
  "TRAIN",
  "MAX",
  "AVE",
  "SUM",
  "PROD",
  "STOCHASTIC",
  "true",
  "false",
  "inf",
  "nan",
  "0",
  "1",
  "-1",
  "7",
  "65536",
  "4294967295",
  "1e9",
  "0x10",
  '"data"',
  '"conv"',
  '"Convolution"',
  '"Eltwise"',
  '"Pooling"',
  '"Reshape"',
  '"PriorBox"',
  "CONVOLUTION",
  "global_pooling: true",
  "bias_term: false",
  "transpose: true",
  "round_mode: FLOOR",
  "num_axes: -1",
  "end_axis: 0",
];

/** A position anywhere in the input (fast-check biases plain integers toward small values). */
const pos = fc.noBias(fc.nat());

const mutation = fc.oneof(
  fc.record({ kind: fc.constant("delete"), at: pos, len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant("insert"), at: pos, token: fc.constantFrom(...TOKENS) }),
  fc.record({ kind: fc.constant("char"), at: pos, code: fc.integer({ min: 0, max: 0x7f }) }),
  fc.record({ kind: fc.constant("duplicate"), at: pos, len: fc.integer({ min: 1, max: 200 }) }),
  fc.record({
    kind: fc.constant("number"),
    nth: fc.nat(),
    value: fc.constantFrom("0", "-3", "1000", "3.5", "99999", "2"),
  }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutateText(text: string, muts: Mutation[]): string {
  let s = text;
  for (const m of muts) {
    const at = "at" in m ? m.at % (s.length + 1) : 0;
    switch (m.kind) {
      case "delete":
        s = s.slice(0, at) + s.slice(at + m.len);
        break;
      case "insert":
        s = s.slice(0, at) + " " + m.token + " " + s.slice(at);
        break;
      case "char":
        s = s.slice(0, at) + String.fromCharCode(m.code) + s.slice(at + 1);
        break;
      case "duplicate":
        s = s.slice(0, at) + s.slice(at, at + m.len) + s.slice(at);
        break;
      case "number": {
        const nums = [...s.matchAll(/\b\d+(\.\d+)?\b/g)];
        if (nums.length) {
          const n = nums[m.nth % nums.length];
          s = s.slice(0, n.index) + m.value + s.slice(n.index! + n[0].length);
        }
        break;
      }
    }
  }
  return s;
}

/** Runs parseCaffe; anything thrown must be a KilnError; a result must pass verify(). */
async function importOrRefuse(
  deploy: string | Uint8Array,
  model?: Uint8Array,
): Promise<"ok" | "refused"> {
  try {
    const { network, blobs } = await parseCaffe({ deploy, model });
    const last = [...blobs.values()].pop();
    if (last) network.markOutput(last);
    verifyNetwork(network);
    return "ok";
  } catch (e) {
    if (e instanceof KilnError) return "refused";
    throw new Error(`a non-KilnError escaped: ${e instanceof Error ? e.stack : e}`);
  }
}

Deno.test("parseCaffe imports or refuses 1,200 mutated prototxts with KilnErrors only", async () => {
  const counts = { ok: 0, refused: 0 };
  const t0 = performance.now();
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...SEED_NETS),
      fc.array(mutation, { minLength: 1, maxLength: 4 }),
      async (net, muts) => {
        counts[await importOrRefuse(mutateText(net, muts))]++;
      },
    ),
    { numRuns: 1200, seed: 0x5eed },
  );
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `mutated prototxts: ${counts.ok} imported, ${counts.refused} refused, ${seconds.toFixed(1)} s`,
  );
  assert.equal(counts.ok + counts.refused, 1200);
  assert.ok(counts.ok >= 20 && counts.refused >= 20, JSON.stringify(counts));
  assert.ok(seconds < 60, `took ${seconds} s`);
});

/** The first seed net's weights as a caffemodel. */
function seedModel(): Uint8Array {
  const r = rng(31);
  const blob = (...dims: number[]) => ({
    dims,
    data: randomArray(dims.reduce((a, b) => a * b, 1), r),
  });
  return encodeModel([
    { name: "conv", blobs: [blob(4, 3, 3, 3), blob(4)] },
    { name: "bn", blobs: [blob(4), { dims: [4], data: [1, 2, 3, 4] }, { dims: [1], data: [1] }] },
    { name: "sc", blobs: [blob(4), blob(4)] },
    { name: "prelu", blobs: [blob(4)] },
    { name: "up", blobs: [blob(8, 1, 2, 2), blob(2)] },
    { name: "ip", blobs: [blob(5, 200), blob(5)] },
  ]);
}

const byteMutation = fc.oneof(
  fc.record({ kind: fc.constant("flip"), at: pos, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("set"), at: pos, value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("truncate"), at: pos }),
  fc.record({
    kind: fc.constant("insert"),
    at: pos,
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant("delete"), at: pos, len: fc.integer({ min: 1, max: 16 }) }),
);
type ByteMutation = typeof byteMutation extends fc.Arbitrary<infer T> ? T : never;

function mutateBytes(bytes: Uint8Array, muts: ByteMutation[]): Uint8Array {
  let b = bytes.slice();
  for (const m of muts) {
    const at = b.length ? m.at % b.length : 0;
    switch (m.kind) {
      case "flip":
        if (b.length) b[at] ^= 1 << m.bit;
        break;
      case "set":
        if (b.length) b[at] = m.value;
        break;
      case "truncate":
        b = b.slice(0, at);
        break;
      case "insert":
        b = new Uint8Array([...b.slice(0, at), ...m.bytes, ...b.slice(at)]);
        break;
      case "delete":
        b = new Uint8Array([...b.slice(0, at), ...b.slice(at + m.len)]);
        break;
    }
  }
  return b;
}

Deno.test("parseCaffe imports or refuses 1,200 mutated caffemodels with KilnErrors only", async () => {
  const model = seedModel();
  assert.equal(await importOrRefuse(SEED_NETS[0], model), "ok");
  const counts = { ok: 0, refused: 0 };
  const t0 = performance.now();
  await fc.assert(
    fc.asyncProperty(fc.array(byteMutation, { minLength: 1, maxLength: 3 }), async (muts) => {
      counts[await importOrRefuse(SEED_NETS[0], mutateBytes(model, muts))]++;
    }),
    { numRuns: 1200, seed: 0xca77e },
  );
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `mutated caffemodels: ${counts.ok} imported, ${counts.refused} refused, ${
      seconds.toFixed(1)
    } s`,
  );
  assert.ok(counts.ok >= 20 && counts.refused >= 20, JSON.stringify(counts));
  assert.ok(seconds < 60, `took ${seconds} s`);
});

Deno.test({
  name: "parseCaffe imports or refuses 60 mutated copies of sampleMNIST's caffemodel",
  ignore: !hasData("caffe/mnist/mnist.caffemodel"),
  fn: async () => {
    const deploy = Deno.readTextFileSync(DATA + "caffe/mnist/mnist.prototxt");
    const model = Deno.readFileSync(DATA + "caffe/mnist/mnist.caffemodel");
    const counts = { ok: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(byteMutation, { minLength: 1, maxLength: 3 }), async (muts) => {
        counts[await importOrRefuse(deploy, mutateBytes(model, muts))]++;
      }),
      { numRuns: 60, seed: 0x3157 },
    );
    console.log(`mutated mnist.caffemodel: ${counts.ok} imported, ${counts.refused} refused`);
    assert.ok(counts.refused > 0);
  },
});
