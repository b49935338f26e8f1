/**
 * A small ONNX reference evaluator for the conformance tests of models that come without
 * expected outputs (Polygraphy's test models): the op definitions written directly from ONNX's
 * operator docs, in float64, with naive loops. It reads models with tests/_onnx_tensors.ts and
 * decodes initializers itself, so nothing of Kiln's importer is involved. Only the ops those
 * models use are here; anything else throws.
 */
import protobuf from "protobufjs";
import { type OnnxAttr, readModel, SHARED_DATA } from "../../_onnx_tensors.ts";

export interface RefTensor {
  dims: number[];
  data: Float64Array;
}

// deno-lint-ignore no-explicit-any
type Msg = Record<string, any>;

const size = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** Initializers (float or int64, raw or typed, inline or external) of a model, by name. */
function initializers(path: string): Map<string, RefTensor> {
  const root = new protobuf.Root();
  protobuf.parse(
    Deno.readTextFileSync(new URL("proto/onnx.proto", SHARED_DATA)),
    root,
    { keepCase: true },
  );
  const type = root.lookupType("onnx.ModelProto");
  const m = type.toObject(type.decode(Deno.readFileSync(path)), { longs: Number }) as Msg;
  const out = new Map<string, RefTensor>();
  const dir = path.slice(0, path.lastIndexOf("/"));
  for (const t of (m.graph.initializer ?? []) as Msg[]) {
    const dims = (t.dims ?? []).map(Number);
    let raw: Uint8Array | undefined = t.raw_data?.length ? t.raw_data : undefined;
    if (t.data_location === 1) {
      const kv = new Map((t.external_data as Msg[]).map((e) => [e.key, e.value]));
      const file = Deno.readFileSync(`${dir}/${kv.get("location")}`);
      const offset = Number(kv.get("offset") ?? 0);
      raw = file.slice(offset, offset + Number(kv.get("length") ?? file.length - offset));
    }
    let data: Float64Array;
    if (t.data_type === 1) {
      data = Float64Array.from(raw ? new Float32Array(raw.slice().buffer) : t.float_data ?? []);
    } else if (t.data_type === 7) {
      data = raw
        ? Float64Array.from(new BigInt64Array(raw.slice().buffer), Number)
        : Float64Array.from((t.int64_data ?? []).map(Number));
    } else throw new Error(`reference: initializer ${t.name} has data type ${t.data_type}`);
    out.set(t.name, { dims, data });
  }
  return out;
}

/** Runs the model on `inputs` (by graph input name) and returns every graph output. */
export function evaluate(
  path: string,
  inputs: Record<string, RefTensor>,
): Record<string, RefTensor> {
  const model = readModel(path);
  const values = new Map<string, RefTensor>(initializers(path));
  for (const [k, v] of Object.entries(inputs)) values.set(k, v);
  const pending = [...model.nodes];
  // Nodes in any order: run each once its inputs exist.
  while (pending.length) {
    const i = pending.findIndex((n) => n.inputs.every((x) => x === "" || values.has(x)));
    if (i < 0) throw new Error("reference: the graph cannot be ordered");
    const [n] = pending.splice(i, 1);
    const ins = n.inputs.map((x) => values.get(x)!);
    const outs = run(n.opType, ins, n.attrs, n.outputs.length);
    n.outputs.forEach((name, k) => values.set(name, outs[k]));
  }
  return Object.fromEntries(model.outputs.map((o) => [o, values.get(o)!]));
}

function ints(attrs: Record<string, OnnxAttr>, name: string, fallback: number[]): number[] {
  return (attrs[name] as number[] | undefined) ?? fallback;
}

function run(
  op: string,
  x: RefTensor[],
  attrs: Record<string, OnnxAttr>,
  outputs: number,
): RefTensor[] {
  switch (op) {
    case "Identity":
      return [x[0]];
    case "Add":
    case "Sum":
      return [x.slice(1).reduce((a, b) => broadcastAdd(a, b), x[0])];
    case "Relu":
      return [{ dims: x[0].dims, data: x[0].data.map((v) => Math.max(v, 0)) }];
    case "Conv":
      return [conv(x[0], x[1], x[2], attrs)];
    case "MaxPool":
      return [maxPool(x[0], attrs)];
    case "BatchNormalization":
      return [batchNorm(x[0], x[1], x[2], x[3], x[4], (attrs.epsilon as number) ?? 1e-5)];
    case "InstanceNormalization":
      return [instanceNorm(x[0], x[1], x[2], (attrs.epsilon as number) ?? 1e-5)];
    case "MatMul":
      return [matmul(x[0], x[1])];
    case "Split":
      return split(x[0], (attrs.axis as number) ?? 0, x[1]?.data ?? attrs.split, outputs);
    case "Shape":
      return [{ dims: [x[0].dims.length], data: Float64Array.from(x[0].dims) }];
    case "ReduceProd": {
      const keep = (attrs.keepdims as number) ?? 1;
      const p = x[0].data.reduce((a, b) => a * b, 1);
      return [{ dims: keep ? x[0].dims.map(() => 1) : [], data: Float64Array.of(p) }];
    }
    case "Reshape": {
      const spec = Array.from(x[1].data);
      const known = spec.reduce((a, d, i) => a * (d === -1 ? 1 : d === 0 ? x[0].dims[i] : d), 1);
      const dims = spec.map((d, i) =>
        d === -1 ? size(x[0].dims) / known : d === 0 ? x[0].dims[i] : d
      );
      return [{ dims, data: x[0].data }];
    }
  }
  throw new Error(`reference: no definition of ${op}`);
}

function broadcastAdd(a: RefTensor, b: RefTensor): RefTensor {
  const rank = Math.max(a.dims.length, b.dims.length);
  const pad = (d: number[]) => [...new Array(rank - d.length).fill(1), ...d];
  const da = pad(a.dims), db = pad(b.dims);
  const dims = da.map((v, i) => Math.max(v, db[i]));
  const data = new Float64Array(size(dims));
  const idx = new Array(rank).fill(0);
  const at = (d: number[], ix: number[]) =>
    ix.reduce((o, v, i) => o * d[i] + (d[i] === 1 ? 0 : v), 0);
  for (let o = 0; o < data.length; o++) {
    data[o] = a.data[at(da, idx)] + b.data[at(db, idx)];
    for (let k = rank - 1; k >= 0 && ++idx[k] === dims[k]; k--) idx[k] = 0;
  }
  return { dims, data };
}

/** 2-D convolution, NCHW, with groups, strides, pads [t, l, b, r] and dilations. */
function conv(x: RefTensor, w: RefTensor, b: RefTensor | undefined, a: Record<string, OnnxAttr>) {
  const [n, c, h, wd] = x.dims;
  const [m, cg, kh, kw] = w.dims;
  const [sh, sw] = ints(a, "strides", [1, 1]);
  const [dh, dw] = ints(a, "dilations", [1, 1]);
  let [pt, pl, pb, pr] = ints(a, "pads", [0, 0, 0, 0]);
  if (a.auto_pad === "SAME_UPPER" || a.auto_pad === "SAME_LOWER") {
    // Output = ceil(input / stride); the odd padding row goes last for SAME_UPPER.
    const total = (n: number, s: number, k: number, d: number) =>
      Math.max(0, (Math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n);
    const th = total(h, sh, kh, dh), tw = total(wd, sw, kw, dw);
    const upper = a.auto_pad === "SAME_UPPER";
    [pt, pl] = upper
      ? [Math.floor(th / 2), Math.floor(tw / 2)]
      : [Math.ceil(th / 2), Math.ceil(tw / 2)];
    [pb, pr] = [th - pt, tw - pl];
  }
  const g = (a.group as number) ?? 1;
  const oh = Math.floor((h + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((wd + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
  const out = new Float64Array(n * m * oh * ow);
  const mg = m / g;
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < m; o++) {
      const group = Math.floor(o / mg);
      for (let y = 0; y < oh; y++) {
        for (let z = 0; z < ow; z++) {
          let s = b ? b.data[o] : 0;
          for (let k = 0; k < cg; k++) {
            const ch = group * cg + k;
            for (let p = 0; p < kh; p++) {
              const iy = y * sh - pt + p * dh;
              if (iy < 0 || iy >= h) continue;
              for (let q = 0; q < kw; q++) {
                const ix = z * sw - pl + q * dw;
                if (ix < 0 || ix >= wd) continue;
                s += x.data[((i * c + ch) * h + iy) * wd + ix] *
                  w.data[((o * cg + k) * kh + p) * kw + q];
              }
            }
          }
          out[((i * m + o) * oh + y) * ow + z] = s;
        }
      }
    }
  }
  return { dims: [n, m, oh, ow], data: out };
}

function maxPool(x: RefTensor, a: Record<string, OnnxAttr>): RefTensor {
  const [n, c, h, w] = x.dims;
  const [kh, kw] = ints(a, "kernel_shape", []);
  const [sh, sw] = ints(a, "strides", [1, 1]);
  const [pt, pl, pb, pr] = ints(a, "pads", [0, 0, 0, 0]);
  const oh = Math.floor((h + pt + pb - kh) / sh) + 1, ow = Math.floor((w + pl + pr - kw) / sw) + 1;
  const out = new Float64Array(n * c * oh * ow);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < oh; y++) {
      for (let z = 0; z < ow; z++) {
        let best = -Infinity;
        for (let u = 0; u < kh; u++) {
          for (let v = 0; v < kw; v++) {
            const iy = y * sh - pt + u, ix = z * sw - pl + v;
            if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
              best = Math.max(best, x.data[(p * h + iy) * w + ix]);
            }
          }
        }
        out[(p * oh + y) * ow + z] = best;
      }
    }
  }
  return { dims: [n, c, oh, ow], data: out };
}

function batchNorm(
  x: RefTensor,
  s: RefTensor,
  b: RefTensor,
  m: RefTensor,
  v: RefTensor,
  eps: number,
) {
  const [, c] = x.dims;
  const inner = size(x.dims.slice(2));
  const data = x.data.map((val, i) => {
    const ch = Math.floor(i / inner) % c;
    return s.data[ch] * (val - m.data[ch]) / Math.sqrt(v.data[ch] + eps) + b.data[ch];
  });
  return { dims: x.dims, data };
}

function instanceNorm(x: RefTensor, s: RefTensor, b: RefTensor, eps: number): RefTensor {
  const [n, c] = x.dims;
  const inner = size(x.dims.slice(2));
  const data = new Float64Array(x.data.length);
  for (let p = 0; p < n * c; p++) {
    const part = x.data.subarray(p * inner, (p + 1) * inner);
    const mean = part.reduce((a, v) => a + v, 0) / inner;
    const variance = part.reduce((a, v) => a + (v - mean) ** 2, 0) / inner;
    const ch = p % c;
    part.forEach((v, i) => {
      data[p * inner + i] = s.data[ch] * (v - mean) / Math.sqrt(variance + eps) + b.data[ch];
    });
  }
  return { dims: x.dims, data };
}

function matmul(a: RefTensor, b: RefTensor): RefTensor {
  const [m, k] = a.dims, [, n] = b.dims;
  const data = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a.data[i * k + t] * b.data[t * n + j];
      data[i * n + j] = s;
    }
  }
  return { dims: [m, n], data };
}

function split(
  x: RefTensor,
  axis: number,
  given: ArrayLike<number> | OnnxAttr | undefined,
  n: number,
) {
  const len = x.dims[axis];
  const sizes = given ? Array.from(given as ArrayLike<number>) : new Array(n).fill(len / n);
  const outer = size(x.dims.slice(0, axis)), inner = size(x.dims.slice(axis + 1));
  let at = 0;
  return sizes.map((s) => {
    const dims = [...x.dims];
    dims[axis] = s;
    const data = new Float64Array(outer * s * inner);
    for (let o = 0; o < outer; o++) {
      data.set(x.data.subarray((o * len + at) * inner, (o * len + at + s) * inner), o * s * inner);
    }
    at += s;
    return { dims, data };
  });
}
