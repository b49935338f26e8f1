/**
 * The layer list of a NetParameter in one form: current `layer { type: "Convolution" }` layers,
 * legacy V1 `layers { type: CONVOLUTION }` layers (translated as Caffe's upgrade_proto.cpp does;
 * NvCaffeParser refused them), and the deprecated `input:` / `input_shape` / `input_dim` header
 * turned into an Input layer at the front (as Caffe's UpgradeNetInput does).
 */
import { KilnError } from "../../errors.ts";
import { locationOf, type TextMessage } from "./text_format.ts";
import type { CaffeLayer } from "./_registry.ts";

/** V1LayerParameter.LayerType → LayerParameter.type (Caffe's UpgradeV1LayerType). */
export const V1_LAYER_TYPES: Record<string, string> = {
  NONE: "",
  ABSVAL: "AbsVal",
  ACCURACY: "Accuracy",
  ARGMAX: "ArgMax",
  BNLL: "BNLL",
  CONCAT: "Concat",
  CONTRASTIVE_LOSS: "ContrastiveLoss",
  CONVOLUTION: "Convolution",
  DECONVOLUTION: "Deconvolution",
  DATA: "Data",
  DROPOUT: "Dropout",
  DUMMY_DATA: "DummyData",
  EUCLIDEAN_LOSS: "EuclideanLoss",
  ELTWISE: "Eltwise",
  EXP: "Exp",
  FLATTEN: "Flatten",
  HDF5_DATA: "HDF5Data",
  HDF5_OUTPUT: "HDF5Output",
  HINGE_LOSS: "HingeLoss",
  IM2COL: "Im2col",
  IMAGE_DATA: "ImageData",
  INFOGAIN_LOSS: "InfogainLoss",
  INNER_PRODUCT: "InnerProduct",
  LRN: "LRN",
  MEMORY_DATA: "MemoryData",
  MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss",
  MVN: "MVN",
  POOLING: "Pooling",
  POWER: "Power",
  RELU: "ReLU",
  SIGMOID: "Sigmoid",
  SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss",
  SILENCE: "Silence",
  SOFTMAX: "Softmax",
  SOFTMAX_LOSS: "SoftmaxWithLoss",
  SPLIT: "Split",
  SLICE: "Slice",
  TANH: "TanH",
  WINDOW_DATA: "WindowData",
  THRESHOLD: "Threshold",
};

/** The layers of a NetParameter (text or binary), in order. */
export function layersOf(net: TextMessage, file: string): CaffeLayer[] {
  const current = (net.layer ?? []) as TextMessage[];
  const legacy = (net.layers ?? []) as TextMessage[];
  if (current.length && legacy.length) {
    const at = locationOf(legacy[0]);
    throw new KilnError(
      "PARSE_ERROR",
      `${file}${
        at ? `:${at.line}` : ""
      }: the net mixes current "layer" and legacy V1 "layers" entries`,
      { file, line: at?.line, column: at?.column },
    );
  }
  const layers = current.length
    ? current.map((m, i) => fromMessage(m, i, String(m.type ?? "")))
    : legacy.map((m, i) => {
      if (m.layer !== undefined) {
        const at = locationOf(m);
        throw new KilnError(
          "UNSUPPORTED",
          `${file}${
            at ? `:${at.line}` : ""
          }: layer ${i} is in the V0 format ("layers { layer { ... } }"); ` +
            "upgrade it with Caffe's upgrade_net_proto_text",
          { file, line: at?.line, column: at?.column },
        );
      }
      const t = m.type === undefined ? "NONE" : String(m.type);
      return fromMessage(m, i, V1_LAYER_TYPES[t] ?? t);
    });
  const input = headerInput(net, file);
  return input ? [input, ...layers.map((l) => ({ ...l, index: l.index + 1 }))] : layers;
}

function fromMessage(m: TextMessage, index: number, type: string): CaffeLayer {
  const at = locationOf(m);
  return {
    index,
    name: typeof m.name === "string" && m.name !== "" ? m.name : `(layer ${index})`,
    type,
    bottom: (m.bottom ?? []) as string[],
    top: (m.top ?? []) as string[],
    msg: m,
    line: at?.line,
    column: at?.column,
  };
}

/** The deprecated input header as an Input layer, or undefined when there is none. */
function headerInput(net: TextMessage, file: string): CaffeLayer | undefined {
  const names = (net.input ?? []) as string[];
  const shapes = (net.input_shape ?? []) as TextMessage[];
  const dims = (net.input_dim ?? []) as number[];
  const at = locationOf(net, "input") ?? locationOf(net, "input_shape") ??
    locationOf(net, "input_dim");
  const fail = (message: string): never => {
    throw new KilnError("PARSE_ERROR", `${file}${at ? `:${at.line}` : ""}: ${message}`, {
      file,
      line: at?.line,
      column: at?.column,
    });
  };
  if (!names.length) {
    if (shapes.length || dims.length) fail("input_shape / input_dim are given without input names");
    return undefined;
  }
  let shapeList: number[][];
  if (shapes.length) {
    if (dims.length) fail("give input_shape or input_dim, not both");
    if (shapes.length !== names.length) {
      fail(`${names.length} input(s) but ${shapes.length} input_shape(s)`);
    }
    shapeList = shapes.map((s) => (s.dim ?? []) as number[]);
  } else if (dims.length) {
    if (dims.length !== 4 * names.length) {
      fail(
        `input_dim must give 4 values per input: ${names.length} input(s), ${dims.length} values`,
      );
    }
    shapeList = names.map((_, i) => dims.slice(4 * i, 4 * i + 4));
  } else {
    return fail(
      `input${names.length > 1 ? "s" : ""} ${
        names.map((n) => `"${n}"`).join(", ")
      } have no shape (input_shape or input_dim)`,
    );
  }
  const msg: TextMessage = {
    name: "input",
    type: "Input",
    top: names,
    input_param: { shape: shapeList.map((dim) => ({ dim })) },
  };
  return {
    index: 0,
    name: "input",
    type: "Input",
    bottom: [],
    top: names,
    msg,
    fromHeader: true,
    line: at?.line,
    column: at?.column,
  };
}
