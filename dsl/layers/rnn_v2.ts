/**
 * RNNv2: a stack of recurrent layers (TensorRT's IRNNv2Layer): LSTM, GRU or a plain RNN with
 * ReLU or tanh, unidirectional or bidirectional, over an input laid out (batch, sequence,
 * embedding): [N, T, E] (or unbatched [B, T, E]).
 *
 * Per step t, with x the layer's input at t and h, c its state (σ = logistic sigmoid):
 *
 *   LSTM  i  = σ(Wi x + bWi + Ri h + bRi)        f = σ(Wf x + bWf + Rf h + bRf)
 *         o  = σ(Wo x + bWo + Ro h + bRo)        c̃ = tanh(Wc x + bWc + Rc h + bRc)
 *         c' = f ⊙ c + i ⊙ c̃                     h' = o ⊙ tanh(c')
 *   GRU   z  = σ(Wz x + bWz + Rz h + bRz)        r = σ(Wr x + bWr + Rr h + bRr)
 *         h̃  = tanh(Wh x + bWh + r ⊙ (Rh h + bRh))
 *         h' = (1 − z) ⊙ h̃ + z ⊙ h
 *   RNN   h' = act(Wi x + bWi + Ri h + bRi), act = relu or tanh
 *
 * The GRU is the "linear before reset" form of TensorRT and cuDNN (ONNX GRU with
 * linear_before_reset=1): the reset gate scales Rh h + bRh, not h before the product.
 *
 * Layer l > 0 reads layer l−1's output (2·H wide when bidirectional: forward then backward).
 * `inputMode: "skip"` adds the input directly instead of W x at the first layer only (as cuDNN's
 * CUDNN_SKIP_INPUT), so it needs E == H; deeper layers stay linear.
 *
 * Optional inputs, in this order after the data, each announced by an attribute so that shapes
 * are unambiguous: `hasHiddenState` (initial h, [N, layers·dirs, H]), `hasCellState` (initial c,
 * LSTM only, same dims) and `hasSequenceLengths` (int32 [N], each in [0, T]). Missing states
 * start at zero. Steps at or past a sequence's length leave its state unchanged and write zero
 * outputs; the backward direction runs over each sequence's own steps, from len−1 down to 0.
 *
 * Outputs: all hidden states [N, T, dirs·H] (forward then backward half), final hidden state
 * [N, layers·dirs, H] and, for LSTM, final cell state [N, layers·dirs, H]; index l·dirs + dir.
 *
 * Weights, per layer, direction and gate (TensorRT's gate names: LSTM input, output, forget,
 * cell; GRU update, reset, hidden; RNN input), set with `setWeightsForGate(layerIndex, gate,
 * isW, w)` and `setBiasForGate(...)` where layerIndex = l·dirs + dir as in TensorRT:
 *   W [H, inputSize_l] row-major (inputSize_0 = E, then dirs·H; none at layer 0 in skip mode),
 *   R [H, H], biases bW and bR [H] each.
 * Slots are named `l<l>.<gate>.<W|R|bW|bR>`, with `.fwd`/`.bwd` after the layer when
 * bidirectional (`l1.bwd.forget.R`), so `verify()` names any missing gate. W and R are required;
 * biases are optional and a missing bias is zero.
 */
import { z } from "zod";
import { KilnError } from "../../errors.ts";
import { type Dims, formatDims } from "../ir/dims.ts";
import { Layer, Tensor } from "../ir/graph.ts";
import type { WeightsInput } from "../ir/weights.ts";
import {
  type Args,
  defineLayer,
  expectRank,
  type FluentCall,
  num,
  type ShapeContext,
  shapeError,
  type TensorDesc,
  type TensorHandle,
  type WeightSlot,
} from "./_define.ts";
import { inferShapeOf } from "./_check.ts";

/** Gates of each operation, in TensorRT's names and order. */
export const RNN_GATES = {
  lstm: ["input", "output", "forget", "cell"],
  gru: ["update", "reset", "hidden"],
  rnn_relu: ["input"],
  rnn_tanh: ["input"],
} as const;

export type RnnOperation = keyof typeof RNN_GATES;
export type RnnGate = typeof RNN_GATES[RnnOperation][number];
export const RNN_OPERATIONS = Object.keys(RNN_GATES) as RnnOperation[];

const attrs = z.object({
  op: z.enum(["lstm", "gru", "rnn_relu", "rnn_tanh"]),
  direction: z.enum(["unidirectional", "bidirectional"]).default("unidirectional"),
  inputMode: z.enum(["linear", "skip"]).default("linear"),
  /** Number of stacked layers. */
  layers: z.number().int().positive().default(1),
  hiddenSize: z.number().int().positive(),
  /** The sequence dimension T of the input; checked against it when given. */
  maxSeqLen: z.number().int().positive().optional(),
  hasHiddenState: z.boolean().default(false),
  hasCellState: z.boolean().default(false),
  hasSequenceLengths: z.boolean().default(false),
});

export type RnnAttrs = z.output<typeof attrs>;

/** Which weights of a gate: W (input), R (recurrent) or their biases. */
export type GatePart = "W" | "R" | "bW" | "bR";

export function directionsOf(a: Pick<RnnAttrs, "direction">): 1 | 2 {
  return a.direction === "bidirectional" ? 2 : 1;
}

/** The slot holding one part of one gate of pseudo-layer `layerIndex` (= l·dirs + dir). */
export function gateSlot(
  a: Pick<RnnAttrs, "direction">,
  layerIndex: number,
  gate: RnnGate,
  part: GatePart,
): string {
  const dirs = directionsOf(a);
  const l = Math.floor(layerIndex / dirs);
  const dir = dirs === 2 ? (layerIndex % 2 === 0 ? ".fwd" : ".bwd") : "";
  return `l${l}${dir}.${gate}.${part}`;
}

/** Input width of stacked layer l: E for the first, dirs·H for the rest. */
export function layerInputSize(a: RnnAttrs, l: number, embedding: number): number {
  return l === 0 ? embedding : directionsOf(a) * a.hiddenSize;
}

/** Every weight slot with its dims, for the given embedding size E. */
export function rnnWeightSlots(a: RnnAttrs, embedding: number): Record<string, WeightSlot> {
  const slots: Record<string, WeightSlot> = {};
  const h = a.hiddenSize, dirs = directionsOf(a);
  for (let li = 0; li < a.layers * dirs; li++) {
    const l = Math.floor(li / dirs);
    for (const gate of RNN_GATES[a.op]) {
      if (!(a.inputMode === "skip" && l === 0)) {
        slots[gateSlot(a, li, gate, "W")] = { dims: [h, layerInputSize(a, l, embedding)] };
      }
      slots[gateSlot(a, li, gate, "R")] = { dims: [h, h] };
      slots[gateSlot(a, li, gate, "bW")] = { dims: [h], optional: true };
      slots[gateSlot(a, li, gate, "bR")] = { dims: [h], optional: true };
    }
  }
  return slots;
}

/** Positions of the optional inputs (undefined when absent). */
export function optionalInputIndex(
  a: Pick<RnnAttrs, "hasHiddenState" | "hasCellState" | "hasSequenceLengths">,
): { hiddenState?: number; cellState?: number; sequenceLengths?: number } {
  let next = 1;
  return {
    hiddenState: a.hasHiddenState ? next++ : undefined,
    cellState: a.hasCellState ? next++ : undefined,
    sequenceLengths: a.hasSequenceLengths ? next++ : undefined,
  };
}

function embeddingOf(ctx: ShapeContext<RnnAttrs>): number {
  const d = expectRank(ctx, 0, 3);
  return num(d[2], "the embedding dimension (2)");
}

function inferRnnShape(ctx: ShapeContext<RnnAttrs>): TensorDesc[] {
  const a = ctx.attrs;
  const d = expectRank(ctx, 0, 3);
  if (ctx.inputs[0].dtype !== "float32") shapeError("the data input must be float32");
  const t = num(d[1], "the sequence dimension (1)");
  const e = embeddingOf(ctx);
  if (a.maxSeqLen !== undefined && a.maxSeqLen !== t) {
    shapeError(`maxSeqLen ${a.maxSeqLen} does not match the input's sequence dimension ${t}`);
  }
  if (a.inputMode === "skip" && e !== a.hiddenSize) {
    shapeError(
      `skip input mode adds the input to the gates directly, so the embedding size (${e}) must equal hiddenSize (${a.hiddenSize})`,
    );
  }
  if (a.hasCellState && a.op !== "lstm") {
    shapeError(`only lstm has a cell state; op is ${a.op} (hasCellState must be false)`);
  }
  const idx = optionalInputIndex(a);
  const want = 1 + [idx.hiddenState, idx.cellState, idx.sequenceLengths]
    .filter((i) => i !== undefined).length;
  if (ctx.inputs.length !== want) {
    shapeError(
      `takes ${want} input(s) (data${a.hasHiddenState ? ", hiddenState" : ""}${
        a.hasCellState ? ", cellState" : ""
      }${
        a.hasSequenceLengths ? ", sequenceLengths" : ""
      }) as its has* attributes say; got ${ctx.inputs.length}`,
    );
  }
  const batch = d[0];
  const stateDims: Dims = [batch, a.layers * directionsOf(a), a.hiddenSize];
  for (const [what, i] of [["hiddenState", idx.hiddenState], ["cellState", idx.cellState]]) {
    if (i === undefined) continue;
    const s = ctx.inputs[i as number];
    if (s.dtype !== "float32" || !sameDimsAs(s.dims, stateDims)) {
      shapeError(
        `${what} (input ${i}) must be ${
          formatDims(stateDims)
        } float32 (batch, layers·dirs, hiddenSize); got ${formatDims(s.dims)} ${s.dtype}`,
      );
    }
  }
  if (idx.sequenceLengths !== undefined) {
    const s = ctx.inputs[idx.sequenceLengths];
    if (s.dtype !== "int32" || !sameDimsAs(s.dims, [batch])) {
      shapeError(
        `sequenceLengths (input ${idx.sequenceLengths}) must be ${formatDims([batch])} int32; got ${
          formatDims(s.dims)
        } ${s.dtype}`,
      );
    }
  }
  const outs: TensorDesc[] = [
    { dims: [batch, t, directionsOf(a) * a.hiddenSize], dtype: "float32" },
    { dims: stateDims, dtype: "float32" },
  ];
  if (a.op === "lstm") outs.push({ dims: stateDims, dtype: "float32" });
  return outs;
}

function sameDimsAs(a: Dims, b: Dims): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** One gate's weights for one pseudo-layer, as `setGates` and the `rnn` shortcut take them. */
export interface RnnGateWeights {
  /** l·dirs + dir, as TensorRT indexes pseudo-layers. */
  layerIndex: number;
  gate: RnnGate;
  W?: WeightsInput;
  R?: WeightsInput;
  bW?: WeightsInput;
  bR?: WeightsInput;
}

/**
 * Checks a pseudo-layer index and a gate name against the attributes and returns the slot;
 * errors name the layer.
 */
export function checkedGateSlot(
  a: RnnAttrs,
  layer: string,
  layerIndex: number,
  gate: string,
  part: GatePart,
): string {
  const dirs = directionsOf(a);
  const count = a.layers * dirs;
  if (!Number.isInteger(layerIndex) || layerIndex < 0 || layerIndex >= count) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `RNNv2 layer "${layer}": layerIndex ${layerIndex} is out of range [0, ${count}) (${a.layers} layer(s) × ${dirs} direction(s); layerIndex = l·${dirs} + dir)`,
      { layer },
    );
  }
  const gates: readonly string[] = RNN_GATES[a.op];
  if (!gates.includes(gate)) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `RNNv2 layer "${layer}": ${a.op} has no gate "${gate}"; its gates are ${gates.join(", ")}`,
      { layer },
    );
  }
  if (part === "W" && a.inputMode === "skip" && Math.floor(layerIndex / dirs) === 0) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `RNNv2 layer "${layer}": in skip input mode the first layer has no W matrix (gate "${gate}", layerIndex ${layerIndex})`,
      { layer },
    );
  }
  return gateSlot(a, layerIndex, gate as RnnGate, part);
}

/** Slot → weights for a list of gate weights (parts left out are not set). */
export function gateWeightsBySlot(
  a: RnnAttrs,
  layer: string,
  gates: readonly RnnGateWeights[],
): Record<string, WeightsInput> {
  const out: Record<string, WeightsInput> = {};
  for (const g of gates) {
    for (const part of ["W", "R", "bW", "bR"] as const) {
      const w = g[part];
      if (w !== undefined) out[checkedGateSlot(a, layer, g.layerIndex, g.gate, part)] = w;
    }
  }
  return out;
}

/** The layer `addRNNv2` returns: TensorRT's per-gate weight setters and optional inputs. */
export class RNNv2Layer extends Layer {
  get rnnAttrs(): RnnAttrs {
    return this.attrs as RnnAttrs;
  }

  /** Sets W (isW) or R of one gate of pseudo-layer `layerIndex` (= l·dirs + dir). */
  setWeightsForGate(layerIndex: number, gate: RnnGate, isW: boolean, weights: WeightsInput): this {
    return this.#setPart(layerIndex, gate, isW ? "W" : "R", weights);
  }

  /** Sets bW (isW) or bR of one gate of pseudo-layer `layerIndex`. */
  setBiasForGate(layerIndex: number, gate: RnnGate, isW: boolean, bias: WeightsInput): this {
    return this.#setPart(layerIndex, gate, isW ? "bW" : "bR", bias);
  }

  /** Sets every part given in each entry (e.g. the output of an ONNX gate converter). */
  setGates(gates: readonly RnnGateWeights[]): this {
    for (const g of gates) {
      for (const part of ["W", "R", "bW", "bR"] as const) {
        const w = g[part];
        if (w !== undefined) this.#setPart(g.layerIndex, g.gate, part, w);
      }
    }
    return this;
  }

  /** Initial hidden state [N, layers·dirs, H]. */
  setHiddenState(tensor: Tensor): this {
    return this.#setOptionalInput("hasHiddenState", tensor);
  }

  /** Initial cell state [N, layers·dirs, H] (LSTM only). */
  setCellState(tensor: Tensor): this {
    return this.#setOptionalInput("hasCellState", tensor);
  }

  /** Per-item sequence lengths, int32 [N], each in [0, T]. */
  setSequenceLengths(tensor: Tensor): this {
    return this.#setOptionalInput("hasSequenceLengths", tensor);
  }

  /** Sets (a copy of) one slot, checking that the slot exists and the size fits. */
  override setWeights(slot: string, weights: WeightsInput): this {
    const a = this.rnnAttrs;
    const spec = rnnWeightSlots(a, this.inputs[0].dims[2] as number)[slot];
    if (!spec) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `RNNv2 layer "${this.name}": "${slot}" is not a weight slot of this ${a.op} (slots are named like "${
          gateSlot(a, 0, RNN_GATES[a.op][0], "R")
        }")`,
        { layer: this.name },
      );
    }
    const previous = this.weights.get(slot);
    super.setWeights(slot, weights);
    const got = this.weights.get(slot)!;
    const count = spec.dims.reduce((x, y) => x * y, 1);
    if (got.values.length !== count || got.dtype !== "float32") {
      if (previous) this.weights.set(slot, previous);
      else this.weights.delete(slot);
      throw new KilnError(
        "INVALID_ARGUMENT",
        `RNNv2 layer "${this.name}": weights "${slot}" must be ${count} float32 values (dims ${
          formatDims(spec.dims)
        }); got ${got.values.length} ${got.dtype}`,
        { layer: this.name },
      );
    }
    return this;
  }

  #setPart(layerIndex: number, gate: RnnGate, part: GatePart, w: WeightsInput): this {
    return this.setWeights(checkedGateSlot(this.rnnAttrs, this.name, layerIndex, gate, part), w);
  }

  #setOptionalInput(
    flag: "hasHiddenState" | "hasCellState" | "hasSequenceLengths",
    tensor: Tensor,
  ): this {
    if (!(tensor instanceof Tensor) || tensor.graph !== this.graph) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `RNNv2 layer "${this.name}": ${flag.slice(3)} must be a Tensor of this network`,
        { layer: this.name },
      );
    }
    const oldAttrs = this.attrs, oldInputs = [...this.inputs];
    const a = { ...this.rnnAttrs, [flag]: true };
    const key = (flag[3].toLowerCase() + flag.slice(4)) as keyof ReturnType<
      typeof optionalInputIndex
    >;
    const at = optionalInputIndex(a)[key]!;
    if (this.rnnAttrs[flag]) this.inputs[at] = tensor;
    else this.inputs.splice(at, 0, tensor);
    this.attrs = a;
    try {
      inferShapeOf(
        RNNv2,
        {
          layer: this.name,
          inputs: this.inputs.map((t) => ({ dims: t.dims, dtype: t.dtype })),
          attrs: a,
          weights: this.weights,
        },
        this.inputs,
      );
    } catch (e) {
      this.attrs = oldAttrs;
      this.inputs.splice(0, this.inputs.length, ...oldInputs);
      throw e;
    }
    return this;
  }
}

/** What the `rnn` shortcut takes: attributes, optional input tensors and gate weights. */
export type RnnArgs =
  & Omit<Args<typeof attrs>, "hasHiddenState" | "hasCellState" | "hasSequenceLengths">
  & {
    hiddenState?: TensorHandle;
    cellState?: TensorHandle;
    sequenceLengths?: TensorHandle;
    gates?: readonly RnnGateWeights[];
  };

export const RNNv2 = defineLayer({
  kind: "RNNv2",
  summary: "stacked LSTM, GRU or RNN (relu/tanh), uni- or bidirectional, over [N, T, E]",
  attrs,
  inputs: { min: 1, max: 4 },
  // Data and states are float32, sequence lengths int32; inferShape checks each by position.
  inputDTypes: [["float32"], ["float32", "int32"]],
  weights: (ctx) => rnnWeightSlots(ctx.attrs, embeddingOf(ctx)),
  inferShape: inferRnnShape,
  layerClass: RNNv2Layer,
  fluent: {
    /** x.rnn({op, hiddenSize, ..., gates}) → all hidden outputs [N, T, dirs·H]. */
    rnn: (t: TensorHandle, args: RnnArgs): FluentCall => {
      const { hiddenState, cellState, sequenceLengths, gates, name, ...rest } = args;
      const callAttrs = {
        ...rest,
        hasHiddenState: hiddenState !== undefined,
        hasCellState: cellState !== undefined,
        hasSequenceLengths: sequenceLengths !== undefined,
      };
      const inputs = [t, hiddenState, cellState, sequenceLengths]
        .filter((x): x is TensorHandle => x !== undefined);
      const parsed = attrs.safeParse(callAttrs);
      // Bad attributes are reported by the network with the layer's name; gates need them valid.
      const weights = parsed.success && gates
        ? gateWeightsBySlot(parsed.data, name ?? "rnn", gates)
        : undefined;
      return { inputs, attrs: callAttrs, name, weights };
    },
  },
});
