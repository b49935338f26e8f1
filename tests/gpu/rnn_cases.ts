/**
 * Op-harness cases for RNNv2 (tests/gpu/op_cases.ts lists them under "RNNv2"): every operation ×
 * direction × input mode, with stacked layers, initial states and per-item sequence lengths
 * spread over them, one-step sequences (the fused single-launch path) and longer ones (the
 * projection GEMM + per-step kernels), hidden sizes with and without 16-byte vector loads, and
 * batches beyond one block's 8 items.
 *
 * The harness draws every input from one range. Sequence lengths come from an int32 input drawn
 * in [-T, T] through Unary abs (so [0, T], zero included); float inputs are drawn in the same
 * range and scaled by 1/T before the RNN, keeping the gates away from saturation.
 */
import { N } from "../../dsl/ir/dims.ts";
import type { Tensor } from "../../dsl/ir/graph.ts";
import { directionsOf, RNN_GATES, type RnnOperation } from "../../dsl/layers/rnn_v2.ts";
import type { Network } from "../../dsl/network.ts";
import { randomArray } from "../_util.ts";
import type { OpCase } from "./op_cases.ts";

interface RnnCase {
  op: RnnOperation;
  bidirectional: boolean;
  skip: boolean;
  layers: number;
  steps: number;
  embedding: number;
  hidden: number;
  states: boolean;
  lengths: boolean;
  maxBatch: number;
}

function rnnCase(c: RnnCase): OpCase {
  const name = [
    c.op,
    c.bidirectional ? "bidirectional" : "unidirectional",
    c.skip ? "skip" : "linear",
    `${c.layers} layer(s)`,
    `T ${c.steps}`,
    `E ${c.embedding}`,
    `H ${c.hidden}`,
    c.states ? "initial states" : "",
    c.lengths ? "lengths" : "",
  ].filter(Boolean).join(", ");
  const bound = c.lengths ? c.steps : 1;
  return {
    name,
    maxBatch: c.maxBatch,
    range: [-bound, bound],
    build(net: Network, r: () => number) {
      const dirs = c.bidirectional ? 2 : 1, states = c.layers * dirs;
      const scaled = (t: Tensor) =>
        bound === 1 ? t : t.scale({ scale: Float32Array.of(1 / bound) } as never);
      const x = scaled(net.input("x", [N, c.steps, c.embedding]));
      const h0 = c.states ? scaled(net.input("h0", [N, states, c.hidden])) : undefined;
      const c0 = c.states && c.op === "lstm"
        ? scaled(net.input("c0", [N, states, c.hidden]))
        : undefined;
      const lengths = c.lengths ? net.input("lengths", [N], "int32").abs() : undefined;
      const rnn = net.addRNNv2(x, {
        name: "rnn",
        op: c.op,
        hiddenSize: c.hidden,
        layers: c.layers,
        direction: c.bidirectional ? "bidirectional" : "unidirectional",
        inputMode: c.skip ? "skip" : "linear",
      });
      if (h0) rnn.setHiddenState(h0);
      if (c0) rnn.setCellState(c0);
      if (lengths) rnn.setSequenceLengths(lengths);
      const a = rnn.rnnAttrs;
      const scale = 1 / Math.sqrt(c.hidden);
      for (let li = 0; li < c.layers * directionsOf(a); li++) {
        const l = Math.floor(li / dirs);
        const inputSize = l === 0 ? c.embedding : dirs * c.hidden;
        for (const gate of RNN_GATES[c.op]) {
          if (!(c.skip && l === 0)) {
            rnn.setWeightsForGate(
              li,
              gate,
              true,
              randomArray(c.hidden * inputSize, r, -scale, scale),
            );
          }
          rnn.setWeightsForGate(
            li,
            gate,
            false,
            randomArray(c.hidden * c.hidden, r, -scale, scale),
          );
          // One bias of each pair left out on odd pseudo-layers: a missing bias is zero.
          rnn.setBiasForGate(li, gate, true, randomArray(c.hidden, r, -0.5, 0.5));
          if (li % 2 === 0) {
            rnn.setBiasForGate(li, gate, false, randomArray(c.hidden, r, -0.5, 0.5));
          }
        }
      }
      net.markOutput(rnn.output(0), "y");
      net.markOutput(rnn.output(1), "hT");
      if (c.op === "lstm") net.markOutput(rnn.output(2), "cT");
    },
  };
}

const OPS: RnnOperation[] = ["lstm", "gru", "rnn_relu", "rnn_tanh"];

/** op × direction × mode, the other features spread over them; then the paths' edge shapes. */
export const RNN_CASES: OpCase[] = [
  ...OPS.flatMap((op, o) =>
    [false, true].flatMap((bidirectional) =>
      [false, true].map((skip, s) => {
        const k = o * 4 + (bidirectional ? 2 : 0) + s;
        const hidden = k % 3 === 0 ? 6 : 8;
        return rnnCase({
          op,
          bidirectional,
          skip,
          layers: 1 + (k % 2),
          steps: k % 4 === 1 ? 1 : 5,
          embedding: skip ? hidden : 4 + (k % 3),
          hidden,
          states: k % 3 !== 1,
          lengths: k % 4 !== 0,
          maxBatch: 5 + (k % 7),
        });
      })
    )
  ),
  // One-step sequences at a batch over two blocks (the fused path, vector loads).
  ...OPS.map((op) =>
    rnnCase({
      op,
      bidirectional: op === "lstm",
      skip: false,
      layers: 2,
      steps: 1,
      embedding: 12,
      hidden: 36,
      states: true,
      lengths: op === "gru",
      maxBatch: 19,
    })
  ),
  // A one-step bidirectional stack at batch 1 and 3 (with KILN_RNN_PERSISTENT=1: one cooperative
  // launch for both layers) and at 40 (the cluster-split kernel: one 64-item tile, partly empty;
  // 70 units as 7 column tiles of 10 GRU units, 30 of their 32 columns used).
  rnnCase({
    op: "gru",
    bidirectional: true,
    skip: false,
    layers: 2,
    steps: 1,
    embedding: 20,
    hidden: 70,
    states: true,
    lengths: true,
    maxBatch: 40,
  }),
  // Wider layers, longer sequences and a batch of several blocks (the projection GEMM's tiles).
  rnnCase({
    op: "lstm",
    bidirectional: true,
    skip: false,
    layers: 2,
    steps: 9,
    embedding: 70,
    hidden: 68,
    states: true,
    lengths: true,
    maxBatch: 17,
  }),
  rnnCase({
    op: "gru",
    bidirectional: false,
    skip: false,
    layers: 3,
    steps: 7,
    embedding: 33,
    hidden: 45,
    states: false,
    lengths: true,
    maxBatch: 10,
  }),
];
