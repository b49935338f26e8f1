/**
 * The CharRNN benchmark network: TensorRT sampleCharRNN's own dimensions (vocabulary 65,
 * embedding 512, 2 LSTM layers of hidden 512) with seeded random weights, built as
 * examples/charrnn.ts builds the real model and with the same bindings (index, hiddenIn, cellIn
 * → next, hiddenOut, cellOut), so a generation loop feeds next → index and the states back.
 */
import { N, Network } from "../mod.ts";
import { seeded, weights } from "./networks.ts";

export const CHARRNN_BENCH = { vocab: 65, embedding: 512, layers: 2, hidden: 512 } as const;

/** LSTM gates in PyTorch's order (i, f, g, o), as the weights are drawn. */
const GATE_ORDER = ["input", "forget", "cell", "output"] as const;

/**
 * The network with weights drawn from `seeded(seed)` (bench/networks.ts) in this order, so a
 * peer can draw the same ones: the embedding table [65, 512] (uniform ±1); then per layer l and
 * gate in PyTorch's order input, forget, cell, output: W [512, in_l], R [512, 512], bW [512],
 * bR [512] (uniform ±1/√512; stacked per gate these are nn.LSTM's weight_ih_l{l}, weight_hh_l{l},
 * bias_ih_l{l}, bias_hh_l{l}); then softmax_w [512, 65] and softmax_b [65] (uniform ±1/√512).
 *
 *   index int32 [N, 1] → Gather(Constant embedding) [N, 1, 512] → RNNv2 (hiddenIn, cellIn
 *   [N, 2, 512]) → Shuffle [N, 512] → MatrixMultiply(Constant softmax_w) + Constant softmax_b
 *   → TopK(max, 1) → next int32 [N, 1]; hiddenOut, cellOut [N, 2, 512].
 */
export function charRnnBenchNet(seed = 5): Network {
  const { vocab, embedding, layers, hidden } = CHARRNN_BENCH;
  const r = seeded(seed);
  const net = new Network();
  const index = net.input("index", [N, 1], "int32");
  const hiddenIn = net.input("hiddenIn", [N, layers, hidden]);
  const cellIn = net.input("cellIn", [N, layers, hidden]);
  const table = net.addConstant([], {
    name: "embedding",
    dims: [vocab, embedding],
    values: weights(vocab * embedding, 1, r),
  });
  const rnn = net.addRNNv2(table.output(0).gather(index), {
    name: "rnn",
    op: "lstm",
    layers,
    hiddenSize: hidden,
    maxSeqLen: 1,
  });
  rnn.setHiddenState(hiddenIn).setCellState(cellIn);
  for (let l = 0; l < layers; l++) {
    const inputSize = l === 0 ? embedding : hidden;
    for (const gate of GATE_ORDER) {
      rnn.setWeightsForGate(l, gate, true, weights(hidden * inputSize, hidden, r));
      rnn.setWeightsForGate(l, gate, false, weights(hidden * hidden, hidden, r));
      rnn.setBiasForGate(l, gate, true, weights(hidden, hidden, r));
      rnn.setBiasForGate(l, gate, false, weights(hidden, hidden, r));
    }
  }
  const w = net.addConstant([], {
    name: "softmax_w",
    dims: [hidden, vocab],
    values: weights(hidden * vocab, hidden, r),
  });
  const b = net.addConstant([], {
    name: "softmax_b",
    dims: [1, vocab],
    values: weights(vocab, hidden, r),
  });
  const logits = rnn.output(0).reshape([0, -1]).matmul(w.output(0)).add(b.output(0));
  const pred = net.addTopK(logits, { name: "pred", op: "max", k: 1, axis: 1 });
  net.markOutput(pred.output(1), "next");
  net.markOutput(rnn.output(1), "hiddenOut");
  net.markOutput(rnn.output(2), "cellOut");
  return net;
}
