/**
 * The network IR: named tensors produced and consumed by layers. A `NetworkGraph` is a plain
 * container; `dsl/network.ts` adds the fluent API on top and `verify.ts` checks a whole graph.
 */
import { KilnError } from "../../errors.ts";
import type { Dims } from "./dims.ts";
import { formatDims } from "./dims.ts";
import type { DType } from "./dtype.ts";
import { toWeights, type Weights, type WeightsInput } from "./weights.ts";

export type Precision = "fp32" | "fp16" | "int8";

export class Tensor {
  /** The layer that writes this tensor; undefined for network inputs. */
  producer: Layer | undefined;
  /** Per-tensor dynamic range for INT8 (set by the user or by calibration). */
  dynamicRange: { min: number; max: number } | undefined;

  constructor(
    readonly graph: NetworkGraph,
    public name: string,
    public dims: Dims,
    public dtype: DType,
    producer?: Layer,
  ) {
    this.producer = producer;
  }

  get isNetworkInput(): boolean {
    return this.graph.inputs.includes(this);
  }

  get isNetworkOutput(): boolean {
    return this.graph.outputs.includes(this);
  }

  /** Sets the INT8 range [min, max] (the scale is max(|min|, |max|) / 127); min < max, finite. */
  setDynamicRange(min: number, max: number): this {
    // An empty range would give a zero scale: every value of the tensor would quantize to 0.
    if (!(Number.isFinite(min) && Number.isFinite(max) && min < max)) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `dynamic range of tensor "${this.name}" must be finite with min < max, got [${min}, ${max}]`,
        { tensor: this.name },
      );
    }
    this.dynamicRange = { min, max };
    return this;
  }

  toString(): string {
    return `Tensor ${this.name} ${formatDims(this.dims)} ${this.dtype}`;
  }
}

export class Layer {
  /** Names of the layers this one stands for after fusion (itself alone before any pass). */
  sources: string[];
  /** Forced precision; undefined lets the builder choose. */
  precision: Precision | undefined;
  /** Forced output types, by output index. */
  readonly outputTypes = new Map<number, DType>();

  constructor(
    readonly graph: NetworkGraph,
    public name: string,
    readonly kind: string,
    public attrs: Record<string, unknown>,
    readonly weights: Map<string, Weights>,
    public inputs: Tensor[],
    public outputs: Tensor[] = [],
  ) {
    this.sources = [name];
  }

  output(index = 0): Tensor {
    const t = this.outputs[index];
    if (!t) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `layer has ${this.outputs.length} output(s); output(${index}) does not exist`,
        { layer: this.name },
      );
    }
    return t;
  }

  input(index = 0): Tensor {
    const t = this.inputs[index];
    if (!t) {
      throw new KilnError("INVALID_ARGUMENT", `layer has no input ${index}`, { layer: this.name });
    }
    return t;
  }

  /** Rewires input `index` (as TensorRT's ILayer::setInput); `verify()` re-checks shapes. */
  setInput(index: number, tensor: Tensor): this {
    if (index < 0 || index > this.inputs.length) {
      throw new KilnError("INVALID_ARGUMENT", `input index ${index} out of range`, {
        layer: this.name,
      });
    }
    this.inputs[index] = tensor;
    return this;
  }

  /** Sets (a copy of) the weights of one slot; `verify()` checks their size. */
  setWeights(slot: string, weights: WeightsInput): this {
    this.weights.set(slot, toWeights(weights, `layer "${this.name}", ${slot}`));
    return this;
  }

  setOutputType(index: number, dtype: DType): this {
    this.output(index);
    this.outputTypes.set(index, dtype);
    return this;
  }

  toString(): string {
    return `${this.kind} ${this.name}`;
  }
}

export class NetworkGraph {
  readonly layers: Layer[] = [];
  readonly inputs: Tensor[] = [];
  readonly outputs: Tensor[] = [];
  readonly tensors = new Map<string, Tensor>();
  readonly #layerNames = new Set<string>();

  /** A name not yet used by a layer, derived from `base`. */
  uniqueLayerName(base: string): string {
    if (!this.#layerNames.has(base)) return base;
    for (let i = 1;; i++) {
      const n = `${base}_${i}`;
      if (!this.#layerNames.has(n)) return n;
    }
  }

  uniqueTensorName(base: string): string {
    if (!this.tensors.has(base)) return base;
    for (let i = 1;; i++) {
      const n = `${base}_${i}`;
      if (!this.tensors.has(n)) return n;
    }
  }

  registerLayer(layer: Layer): void {
    if (this.#layerNames.has(layer.name)) {
      throw new KilnError("INVALID_ARGUMENT", `a layer named "${layer.name}" already exists`, {
        layer: layer.name,
      });
    }
    this.#layerNames.add(layer.name);
    this.layers.push(layer);
  }

  registerTensor(tensor: Tensor): void {
    if (this.tensors.has(tensor.name)) {
      throw new KilnError("INVALID_ARGUMENT", `a tensor named "${tensor.name}" already exists`, {
        tensor: tensor.name,
      });
    }
    this.tensors.set(tensor.name, tensor);
  }

  /** Removes a layer (its outputs stay registered until no one refers to them). */
  removeLayer(layer: Layer): void {
    const i = this.layers.indexOf(layer);
    if (i >= 0) this.layers.splice(i, 1);
    this.#layerNames.delete(layer.name);
  }

  /** Renames a layer, keeping the name index consistent. */
  renameLayer(layer: Layer, name: string): void {
    if (layer.name === name) return;
    if (this.#layerNames.has(name)) {
      throw new KilnError("INVALID_ARGUMENT", `a layer named "${name}" already exists`, {
        layer: layer.name,
      });
    }
    this.#layerNames.delete(layer.name);
    layer.name = name;
    this.#layerNames.add(name);
  }

  /** Renames a tensor, keeping the name index consistent. */
  renameTensor(tensor: Tensor, name: string): void {
    if (tensor.name === name) return;
    if (this.tensors.has(name)) {
      throw new KilnError("INVALID_ARGUMENT", `a tensor named "${name}" already exists`, {
        tensor: tensor.name,
      });
    }
    this.tensors.delete(tensor.name);
    tensor.name = name;
    this.tensors.set(name, tensor);
  }

  getLayer(name: string): Layer | undefined {
    return this.layers.find((l) => l.name === name);
  }

  /** Layers that read `tensor`. */
  consumers(tensor: Tensor): Layer[] {
    return this.layers.filter((l) => l.inputs.includes(tensor));
  }
}
