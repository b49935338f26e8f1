/**
 * The benchmark networks, with seeded random weights (the same seeds give the PyTorch peers the
 * same weights through bench/run.ts): sampleMNIST's LeNet, sampleMLP's 784→256→256→10, and a
 * one-element identity network that measures the FFI + runtime overhead of execute().
 */
import { N, Network } from "../mod.ts";

/** mulberry32, seeded: the weights of a network are a function of its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform in ±1/sqrt(fanIn) (PyTorch's default init scale), never exactly 0. */
export function weights(n: number, fanIn: number, r: () => number): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  return Float32Array.from({ length: n }, () => (2 * r() - 1) * bound || bound / 2);
}

export interface LenetWeights {
  conv1: Float32Array;
  conv1Bias: Float32Array;
  conv2: Float32Array;
  conv2Bias: Float32Array;
  ip1: Float32Array;
  ip1Bias: Float32Array;
  ip2: Float32Array;
  ip2Bias: Float32Array;
}

export function lenetWeights(seed = 1): LenetWeights {
  const r = seeded(seed);
  return {
    conv1: weights(20 * 1 * 5 * 5, 25, r),
    conv1Bias: weights(20, 25, r),
    conv2: weights(50 * 20 * 5 * 5, 500, r),
    conv2Bias: weights(50, 500, r),
    ip1: weights(500 * 800, 800, r),
    ip1Bias: weights(500, 800, r),
    ip2: weights(10 * 500, 500, r),
    ip2Bias: weights(10, 500, r),
  };
}

/** sampleMNIST's LeNet (Caffe): conv 20 5x5, max pool, conv 50 5x5, max pool, fc 500 + relu, fc 10, softmax. */
export function lenet(w: LenetWeights = lenetWeights()): Network {
  const net = new Network();
  const prob = net.input("data", [N, 1, 28, 28])
    .conv({ outputs: 20, kernel: 5, weights: w.conv1, bias: w.conv1Bias, name: "conv1" })
    .maxPool({ window: 2, stride: 2, name: "pool1" })
    .conv({ outputs: 50, kernel: 5, weights: w.conv2, bias: w.conv2Bias, name: "conv2" })
    .maxPool({ window: 2, stride: 2, name: "pool2" })
    .fc({ outputs: 500, weights: w.ip1, bias: w.ip1Bias, name: "ip1" })
    .relu()
    .fc({ outputs: 10, weights: w.ip2, bias: w.ip2Bias, name: "ip2" })
    .softmax();
  net.markOutput(prob, "prob");
  return net;
}

export interface MlpWeights {
  w: Float32Array[];
  b: Float32Array[];
}

export const MLP_SIZES = [784, 256, 256, 10];

export function mlpWeights(seed = 2): MlpWeights {
  const r = seeded(seed);
  const w: Float32Array[] = [], b: Float32Array[] = [];
  for (let i = 0; i + 1 < MLP_SIZES.length; i++) {
    w.push(weights(MLP_SIZES[i + 1] * MLP_SIZES[i], MLP_SIZES[i], r));
    b.push(weights(MLP_SIZES[i + 1], MLP_SIZES[i], r));
  }
  return { w, b };
}

/** sampleMLP: 784→256 relu →256 relu →10. */
export function mlp(wts: MlpWeights = mlpWeights()): Network {
  const net = new Network();
  let t = net.input("input", [N, 784]);
  for (let i = 0; i < wts.w.length; i++) {
    t = t.fc({ outputs: MLP_SIZES[i + 1], weights: wts.w[i], bias: wts.b[i], name: `fc${i + 1}` });
    if (i + 1 < wts.w.length) t = t.relu();
  }
  net.markOutput(t, "output");
  return net;
}

/**
 * One float through one Identity layer: what execute() costs beyond the device work (build it
 * with `disablePasses: "all"` so the layer is kept).
 */
export function identityNet(): Network {
  const net = new Network();
  net.markOutput(net.input("x", [N, 1]).identity(), "y");
  return net;
}
