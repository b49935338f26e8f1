/**
 * From a decoded model to a Kiln network: version checks, the checker pass (every unsupported
 * node in one error), the graph's structure (dangling values, cycles; nodes sorted
 * topologically), the inputs, then one importer call per node and the outputs.
 */
import { type Dim, formatDims, N } from "../../dsl/ir/dims.ts";
import type { Tensor } from "../../dsl/ir/graph.ts";
import { Network } from "../../dsl/network.ts";
import { KilnError, type KilnProblem } from "../../errors.ts";
import { ConstTensor } from "./_const.ts";
import type { OnnxModel, OnnxNode } from "./_model.ts";
import {
  AttrReader,
  describeNode,
  type ImportContext,
  IMPORTERS,
  type OnnxDiagnostic,
  type OnnxValue,
} from "./_registry.ts";
import {
  dataTypeName,
  decodeTensor,
  type ExternalReader,
  kilnDTypeOf,
  MAX_TENSOR_ELEMENTS,
  type OnnxTensorData,
} from "./tensor.ts";

export const IR_VERSIONS = { min: 3, max: 13 } as const;
export const OPSETS = { min: 6, max: 25 } as const;

export interface ImportOptions {
  external?: ExternalReader;
  /** Dims that replace the declared dims of graph inputs (a leading "N" makes the batch). */
  inputShapes?: Record<string, readonly Dim[]>;
  /** Graph inputs bound to fixed values: they become constants, not bindings. */
  constantInputs?: Record<string, OnnxTensorData>;
  diagnostics: OnnxDiagnostic[];
}

/** Errors already prefixed with their node (not wrapped again). */
const tagged = new WeakSet<Error>();

export function importModel(model: OnnxModel, options: ImportOptions): Network {
  const file = model.file;
  checkVersions(model);
  checkNodes(model, options.external);
  const order = sortNodes(model);

  const net = new Network();
  const values = new Map<string, OnnxValue>();
  const inits = model.initializers;
  const shadowed = model.inputs.filter((v) => inits.has(v.name)).length;
  if (shadowed) {
    options.diagnostics.push({
      severity: "note",
      message:
        `${shadowed} graph input(s) also have initializers (IR ${model.irVersion} lists weights among the inputs): they are imported as constants`,
    });
  }
  const fixed = options.constantInputs ?? {};
  for (
    const [option, names] of [
      ["inputShapes", Object.keys(options.inputShapes ?? {})],
      ["constantInputs", Object.keys(fixed)],
    ] as const
  ) {
    for (const name of names) {
      if (!model.inputs.some((v) => v.name === name && !inits.has(name))) {
        throw new KilnError(
          "INVALID_ARGUMENT",
          `${option} names "${name}", which is not a graph input of ${file} (inputs: ${
            model.inputs.filter((v) => !inits.has(v.name)).map((v) => v.name).join(", ")
          })`,
          { file, tensor: name },
        );
      }
    }
  }
  for (const v of model.inputs) {
    if (inits.has(v.name)) continue;
    const given = fixed[v.name];
    if (given) values.set(v.name, constantInput(v, given, file));
    else values.set(v.name, net.input(v.name, inputDims(v, options, file), inputDType(v, file)));
  }

  const constantOf = (name: string): OnnxValue | undefined => {
    const known = values.get(name);
    if (known) return known;
    const t = inits.get(name);
    if (!t) return undefined;
    const d = decodeTensor(t, `${file}: initializer "${name}"`, {
      file,
      external: options.external,
    });
    const c = new ConstTensor(d.dataType, d.dims, d.values);
    values.set(name, c);
    return c;
  };
  const materialized = new WeakMap<ConstTensor, Tensor>();

  for (const node of order) {
    const opset = model.opsets.get(node.domain)!;
    const importer = IMPORTERS.get(node.opType)!;
    const before = net.layers.length;
    const ctx = makeContext(node, opset, net, {
      value: constantOf,
      materialized,
      diagnostics: options.diagnostics,
      attr: new AttrReader(node, options.external, file),
    });
    let results: OnnxValue[];
    try {
      const given = node.inputs.map((_, i) => i).filter((i) => ctx.has(i));
      // Folds read input 0; without it the import reports the missing input.
      const folded = importer.fold && ctx.has(0) && given.every((i) =>
          ctx.constant(i) !== undefined
        )
        ? importer.fold(ctx)
        : undefined;
      const r = folded ?? importer.import(ctx);
      results = Array.isArray(r) ? r : [r];
      node.outputs.forEach((name, i) => {
        if (name === "") return;
        if (results[i] === undefined) {
          ctx.fail(`output ${i} ("${name}") is not supported; only ${results.length} are`);
        }
        // A tensor beyond the decoder's limit would only fail later, allocating.
        const items = results[i].dims.reduce<number>((a, d) => (d === N ? a : a * d), 1);
        if (items > MAX_TENSOR_ELEMENTS) {
          ctx.fail(
            `output "${name}" ${
              formatDims(results[i].dims)
            } would hold more than ${MAX_TENSOR_ELEMENTS} elements${
              results[i].dims[0] === N ? " per batch item" : ""
            }`,
            "INVALID_NETWORK",
          );
        }
      });
    } catch (e) {
      throw nodeError(e, node, file);
    }
    const created = new Set(net.layers.slice(before));
    node.outputs.forEach((name, i) => {
      if (name === "") return;
      const v = results[i];
      values.set(name, v);
      // Tensors this node made take the ONNX names (for messages, profiles and debugging).
      if (!(v instanceof ConstTensor) && v.producer && created.has(v.producer)) {
        if (!net.tensors.has(name)) net.renameTensor(v, name);
      }
    });
  }

  for (const out of model.outputs) {
    let v = constantOf(out.name);
    if (v === undefined) {
      throw new KilnError("PARSE_ERROR", `${file}: graph output "${out.name}" is never computed`, {
        file,
        tensor: out.name,
      });
    }
    if (v instanceof ConstTensor) {
      options.diagnostics.push({
        severity: "note",
        message: `graph output "${out.name}" is a constant ${v}`,
      });
      v = materializeConst(net, v, `${out.name}/constant`, materialized, out.name);
    }
    let t = v as Tensor;
    if (t.isNetworkInput || t.isNetworkOutput) {
      // A binding is one tensor: an output that is an input, or another output, gets a copy.
      t = net.addIdentity(t, { name: `${out.name}/copy` }).output(0);
    }
    let binding = out.name;
    const holder = net.tensors.get(out.name);
    if (holder && holder !== t) {
      if (holder.isNetworkInput || holder.isNetworkOutput) {
        // Binding names are unique: the input (or the earlier output) keeps the name.
        binding = net.uniqueTensorName(`${out.name}/output`);
        options.diagnostics.push({
          severity: "warning",
          message: `graph output "${out.name}" is also a graph ${
            holder.isNetworkInput ? "input" : "output"
          }: its output binding is named "${binding}"`,
        });
      } else net.renameTensor(holder, net.uniqueTensorName(`${out.name}/inner`));
    }
    net.markOutput(t, binding);
    const declared = out.elemType === undefined ? undefined : kilnDTypeOf(out.elemType);
    if (out.elemType !== undefined && declared !== t.dtype) {
      options.diagnostics.push({
        severity: "warning",
        message: `graph output "${out.name}" is declared ${
          dataTypeName(out.elemType)
        } but computes ${t.dtype}`,
      });
    }
  }
  if (model.outputs.length === 0) {
    throw new KilnError("PARSE_ERROR", `${file}: the graph has no outputs`, { file });
  }
  return net;
}

function checkVersions(model: OnnxModel): void {
  const file = model.file;
  const ir = model.irVersion;
  if (!(ir >= IR_VERSIONS.min && ir <= IR_VERSIONS.max)) {
    throw new KilnError(
      "UNSUPPORTED",
      `${file}: IR version ${ir} is not supported (Kiln reads IR ${IR_VERSIONS.min} to ${IR_VERSIONS.max})`,
      { file },
    );
  }
  const opset = model.opsets.get("");
  if (opset === undefined) {
    throw new KilnError("PARSE_ERROR", `${file}: the model imports no opset of ai.onnx`, { file });
  }
  if (!(opset >= OPSETS.min && opset <= OPSETS.max)) {
    throw new KilnError(
      "UNSUPPORTED",
      `${file}: opset ${opset} of ai.onnx is not supported (Kiln imports opsets ${OPSETS.min} to ${OPSETS.max})`,
      { file },
    );
  }
}

/** The checker pass: every node without an importer, or with settings it refuses, at once. */
function checkNodes(model: OnnxModel, external: ExternalReader | undefined): void {
  const problems: KilnProblem[] = [];
  for (const node of model.nodes) {
    const opset = model.opsets.get(node.domain);
    const domain = node.domain === "" ? "ai.onnx" : node.domain;
    const where = `${node.opType} (domain ${domain}, opset ${
      opset ?? "not imported"
    }) node ${node.index} "${node.name}"`;
    let reasons: string[];
    if (node.domain !== "") reasons = [`Kiln imports only the ai.onnx domain`];
    else {
      const importer = IMPORTERS.get(node.opType);
      if (!importer) reasons = ["no importer for this op"];
      else {
        try {
          reasons = importer.check?.(new AttrReader(node, external, model.file), opset!, node) ??
            [];
        } catch (e) {
          throw nodeError(e, node, model.file);
        }
      }
    }
    for (const r of reasons) problems.push({ layer: node.name, message: `${where}: ${r}` });
  }
  if (problems.length) {
    const nodes = new Set(problems.map((p) => p.layer)).size;
    throw new KilnError(
      "UNSUPPORTED",
      `${model.file}: ${nodes} node(s) cannot be imported:\n${
        problems.map((p) => `  - ${p.message}`).join("\n")
      }`,
      { file: model.file, layer: problems[0].layer, problems },
    );
  }
}

/** Nodes in an order where each runs after the producers of its inputs (Kahn's algorithm). */
function sortNodes(model: OnnxModel): OnnxNode[] {
  const file = model.file;
  const producer = new Map<string, OnnxNode>();
  const available = new Set<string>([
    ...model.initializers.keys(),
    ...model.inputs.map((v) => v.name),
  ]);
  for (const node of model.nodes) {
    for (const out of node.outputs) {
      if (out === "") continue;
      const other = producer.get(out);
      if (other || available.has(out)) {
        throw new KilnError(
          "PARSE_ERROR",
          `${file}: value "${out}" is written twice (by ${describeNode(node)} and ${
            other ? describeNode(other) : "an input or initializer"
          }); ONNX values are assigned once`,
          { file, layer: node.name, tensor: out },
        );
      }
      producer.set(out, node);
    }
  }
  const problems: KilnProblem[] = [];
  for (const node of model.nodes) {
    for (const input of node.inputs) {
      if (input !== "" && !producer.has(input) && !available.has(input)) {
        problems.push({
          layer: node.name,
          tensor: input,
          message: `${
            describeNode(node)
          } reads "${input}", which no node, initializer or graph input provides`,
        });
      }
    }
  }
  for (const out of model.outputs) {
    if (!producer.has(out.name) && !available.has(out.name)) {
      problems.push({
        tensor: out.name,
        message: `graph output "${out.name}" is not computed by any node`,
      });
    }
  }
  if (problems.length) {
    throw new KilnError(
      "PARSE_ERROR",
      `${file}: ${problems.map((p) => p.message).join("; ")}`,
      { file, layer: problems[0].layer, tensor: problems[0].tensor, problems },
    );
  }
  const waiting = new Map<OnnxNode, number>();
  const readers = new Map<OnnxNode, OnnxNode[]>();
  for (const node of model.nodes) {
    const deps = new Set(
      node.inputs.filter((i) => i !== "" && producer.has(i)).map((i) => producer.get(i)!),
    );
    waiting.set(node, deps.size);
    for (const d of deps) {
      if (!readers.has(d)) readers.set(d, []);
      readers.get(d)!.push(node);
    }
  }
  const ready = model.nodes.filter((n) => waiting.get(n) === 0);
  const order: OnnxNode[] = [];
  while (ready.length) {
    const n = ready.shift()!;
    order.push(n);
    for (const r of readers.get(n) ?? []) {
      const left = waiting.get(r)! - 1;
      waiting.set(r, left);
      if (left === 0) ready.push(r);
    }
  }
  if (order.length !== model.nodes.length) {
    // The nodes left wait on a cycle; those only downstream of it (read by none of the others)
    // are dropped so that the message names the cycle.
    let stuck = model.nodes.filter((n) => waiting.get(n)! > 0);
    for (let changed = true; changed;) {
      const left = new Set(stuck);
      const kept = stuck.filter((n) => (readers.get(n) ?? []).some((r) => left.has(r)));
      changed = kept.length !== stuck.length;
      stuck = kept;
    }
    throw new KilnError(
      "PARSE_ERROR",
      `${file}: the graph has a cycle through ${stuck.length} node(s): ${
        stuck.slice(0, 10).map(describeNode).join(", ")
      }${stuck.length > 10 ? ", ..." : ""}`,
      { file, layer: stuck[0].name },
    );
  }
  return order;
}

/** A graph input bound to a value: its type and declared dims must agree with the value's. */
function constantInput(
  v: OnnxModel["inputs"][number],
  t: OnnxTensorData,
  file: string,
): ConstTensor {
  const agrees = (v.elemType === undefined || v.elemType === t.dataType) &&
    (v.dims === undefined ||
      (v.dims.length === t.dims.length &&
        v.dims.every((d, i) => typeof d !== "number" || d < 0 || d === t.dims[i])));
  if (!agrees) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `constantInputs["${v.name}"] is ${dataTypeName(t.dataType)} ${
        formatDims(t.dims)
      }; the model declares ${v.elemType === undefined ? "?" : dataTypeName(v.elemType)} ${
        v.dims ? formatDims(v.dims.map((d) => d ?? "?") as Dim[]) : "(no shape)"
      }`,
      { file, tensor: v.name },
    );
  }
  return new ConstTensor(t.dataType, t.dims, t.values);
}

function inputDims(
  v: OnnxModel["inputs"][number],
  options: ImportOptions,
  file: string,
): Dim[] {
  const given = options.inputShapes?.[v.name];
  if (given) {
    const ok = Array.isArray(given) &&
      given.every((d, i) => (d === N && i === 0) || (Number.isInteger(d) && (d as number) > 0));
    if (!ok) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `inputShapes["${v.name}"] must be positive integers (a leading "N" for the batch), got ${
          JSON.stringify(given)
        }`,
        { file, tensor: v.name },
      );
    }
    if (v.dims && v.dims.length !== given.length) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `inputShapes["${v.name}"] ${
          formatDims(given)
        } has rank ${given.length}; the model declares rank ${v.dims.length}`,
        { file, tensor: v.name },
      );
    }
    return [...given];
  }
  if (!v.dims) {
    throw new KilnError(
      "UNSUPPORTED",
      `${file}: graph input "${v.name}" declares no shape; give it one with options.inputShapes`,
      { file, tensor: v.name },
    );
  }
  return v.dims.map((d, i): Dim => {
    if (typeof d === "number" && d > 0) return d;
    if (d === 0) {
      throw new KilnError(
        "UNSUPPORTED",
        `${file}: graph input "${v.name}" has an empty dim (dim ${i} is 0); Kiln has no empty tensors`,
        { file, tensor: v.name },
      );
    }
    if (i === 0) return N;
    throw new KilnError(
      "UNSUPPORTED",
      `${file}: graph input "${v.name}" dim ${i} is ${
        typeof d === "string" ? `symbolic ("${d}")` : "unknown"
      }; only the leading dim may be (it becomes the batch N): give concrete dims with options.inputShapes`,
      { file, tensor: v.name },
    );
  });
}

function inputDType(v: OnnxModel["inputs"][number], file: string) {
  if (v.elemType === undefined) {
    throw new KilnError("UNSUPPORTED", `${file}: graph input "${v.name}" is not a tensor`, {
      file,
      tensor: v.name,
    });
  }
  const dtype = kilnDTypeOf(v.elemType);
  if (!dtype) {
    throw new KilnError(
      "UNSUPPORTED",
      `${file}: graph input "${v.name}" is ${
        dataTypeName(v.elemType)
      }; Kiln bindings are float32, float16, int32 (int64 travels as int32) or int8`,
      { file, tensor: v.name },
    );
  }
  return dtype;
}

function materializeConst(
  net: Network,
  c: ConstTensor,
  name: string,
  cache: WeakMap<ConstTensor, Tensor>,
  tensor?: string,
): Tensor {
  const known = cache.get(c);
  if (known) return known;
  const fail = (msg: string): never => {
    throw new KilnError("UNSUPPORTED", `constant ${c}: ${msg}`, { tensor: tensor ?? name });
  };
  if (c.dims.some((d) => d === 0)) fail("Kiln has no empty tensors");
  let values: { dtype: "float32" | "int32"; values: Float32Array | Int32Array };
  if (c.isFloat) values = { dtype: "float32", values: Float32Array.from(c.values) };
  else {
    if (c.hasBatch) fail("it holds the symbolic batch N, which a run-time tensor cannot");
    const out = c.values.findIndex((v) => !(v >= -(2 ** 31) && v < 2 ** 31));
    if (out >= 0) fail(`element ${out} (${c.values[out]}) does not fit int32`);
    values = { dtype: "int32", values: Int32Array.from(c.values) };
  }
  const layer = net.addConstant([], {
    name: net.uniqueLayerName(name),
    dims: [...c.dims],
    dtype: values.dtype,
    values,
  });
  const t = layer.output(0);
  cache.set(c, t);
  return t;
}

interface ContextDeps {
  value: (name: string) => OnnxValue | undefined;
  materialized: WeakMap<ConstTensor, Tensor>;
  diagnostics: OnnxDiagnostic[];
  attr: AttrReader;
}

function makeContext(
  node: OnnxNode,
  opset: number,
  net: Network,
  deps: ContextDeps,
): ImportContext {
  const ctx: ImportContext = {
    net,
    node,
    opset,
    attr: deps.attr,
    has: (i) => i >= 0 && i < node.inputs.length && node.inputs[i] !== "",
    value(i) {
      if (!ctx.has(i)) ctx.fail(`input ${i} is required`, "INVALID_NETWORK");
      return deps.value(node.inputs[i])!;
    },
    constant(i) {
      if (!ctx.has(i)) return undefined;
      const v = ctx.value(i);
      return v instanceof ConstTensor ? v : undefined;
    },
    constInput(i, what) {
      const c = ctx.constant(i);
      if (!c) {
        ctx.value(i);
        ctx.fail(
          `input ${i} (${what}, "${
            node.inputs[i]
          }") must be a constant (an initializer, or computed from constants); it is computed at run time`,
          "UNSUPPORTED",
          node.inputs[i],
        );
      }
      return c!;
    },
    tensor(i) {
      const v = ctx.value(i);
      return v instanceof ConstTensor ? ctx.materialize(v, node.inputs[i]) : v;
    },
    dims(i) {
      return ctx.value(i).dims;
    },
    materialize: (c, name) =>
      materializeConst(net, c, name ?? `${node.name}/const`, deps.materialized),
    add(kind, inputs, args, suffix) {
      const name = net.uniqueLayerName(suffix ? `${node.name}/${suffix}` : node.name);
      return net.addLayer(kind, inputs, { ...args, name });
    },
    note(message) {
      deps.diagnostics.push({
        severity: "note",
        message: `${describeNode(node)}: ${message}`,
        node: node.name,
      });
    },
    fail(message, code = "UNSUPPORTED", tensor) {
      const e = new KilnError(code, `${describeNode(node)}: ${message}`, {
        layer: node.name,
        tensor,
      });
      tagged.add(e);
      throw e;
    },
  };
  return ctx;
}

/** An error raised while importing `node`, as a KilnError that names it. */
function nodeError(e: unknown, node: OnnxNode, file: string): KilnError {
  if (e instanceof KilnError) {
    if (tagged.has(e)) {
      return new KilnError(e.code, `${file}: ${e.message}`, {
        file,
        layer: e.layer,
        tensor: e.tensor,
        problems: e.problems,
        cause: e.cause,
      });
    }
    return new KilnError(e.code, `${file}: ${describeNode(node)}: ${e.message}`, {
      file,
      layer: e.layer ?? node.name,
      tensor: e.tensor,
      problems: e.problems,
      cause: e,
    });
  }
  return new KilnError(
    "INTERNAL",
    `${file}: ${describeNode(node)}: import failed: ${e instanceof Error ? e.message : String(e)}`,
    { file, layer: node.name, cause: e },
  );
}
