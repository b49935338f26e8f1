/**
 * A small ONNX reference evaluator for the conformance tests of models that come without
 * expected outputs (Polygraphy's test models): the op definitions written directly from ONNX's
 * operator docs, in float64, with naive loops. It decodes the models itself (protobufjs over
 * the repository's onnx.proto), so nothing of Kiln's importer is involved. Only the ops those
 * models use are here; anything else throws.
 */
import protobuf from "protobufjs";

export interface RefTensor {
  dims: number[];
  data: Float64Array;
}

// deno-lint-ignore no-explicit-any
type Msg = Record<string, any>;
type OnnxAttr = number | string | number[] | RefTensor;

const size = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

let modelType: protobuf.Type | undefined;

/** The ModelProto as a plain object, read with the repository's copy of onnx.proto. */
function readModelObject(path: string): Msg {
  if (!modelType) {
    const root = new protobuf.Root();
    const proto = new URL("../../../parsers/onnx/onnx.proto", import.meta.url);
    protobuf.parse(Deno.readTextFileSync(proto), root, { keepCase: true });
    modelType = root.lookupType("onnx.ModelProto");
  }
  return modelType.toObject(modelType.decode(Deno.readFileSync(path)), { longs: Number }) as Msg;
}

/** A float or int64 tensor (raw or typed, inline or external) as float64 values. */
function tensor(t: Msg, dir: string): RefTensor {
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
    data = Float64Array.from(
      raw ? new Float32Array(new Uint8Array(raw).buffer) : t.float_data ?? [],
    );
  } else if (t.data_type === 7) {
    data = raw
      ? Float64Array.from(new BigInt64Array(new Uint8Array(raw).buffer), Number)
      : Float64Array.from((t.int64_data ?? []).map(Number));
  } else throw new Error(`reference: tensor ${t.name} has data type ${t.data_type}`);
  return { dims, data };
}

function attribute(a: Msg, dir: string): OnnxAttr {
  switch (a.type) {
    case 1:
      return a.f ?? 0;
    case 2:
      return Number(a.i ?? 0);
    case 3:
      return new TextDecoder().decode(a.s);
    case 4:
      return tensor(a.t, dir);
    case 6:
      return a.floats ?? [];
    case 7:
      return (a.ints ?? []).map(Number);
    case 8:
      return (a.strings ?? []).map((x: Uint8Array) => new TextDecoder().decode(x)).join(",");
  }
  throw new Error(`reference: attribute ${a.name} of type ${a.type}`);
}

/** Runs the model on `inputs` (by graph input name) and returns every graph output. */
export function evaluate(
  path: string,
  inputs: Record<string, RefTensor>,
): Record<string, RefTensor> {
  const m = readModelObject(path);
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
  const values = new Map<string, RefTensor>();
  for (const t of (m.graph.initializer ?? []) as Msg[]) values.set(t.name, tensor(t, dir));
  for (const [k, v] of Object.entries(inputs)) values.set(k, v);
  const pending = ((m.graph.node ?? []) as Msg[]).map((n) => ({
    op: n.op_type as string,
    inputs: (n.input ?? []) as string[],
    outputs: (n.output ?? []) as string[],
    attrs: Object.fromEntries(
      ((n.attribute ?? []) as Msg[]).map((a) => [a.name, attribute(a, dir)]),
    ),
  }));
  // Nodes in any order: run each once its inputs exist.
  while (pending.length) {
    const i = pending.findIndex((n) => n.inputs.every((x) => x === "" || values.has(x)));
    if (i < 0) throw new Error("reference: the graph cannot be ordered");
    const [n] = pending.splice(i, 1);
    const ins = n.inputs.map((x) => (x === "" ? undefined : values.get(x))) as RefTensor[];
    const outs = run(n.op, ins, n.attrs, n.outputs.length);
    n.outputs.forEach((name, k) => values.set(name, outs[k]));
  }
  return Object.fromEntries(
    ((m.graph.output ?? []) as Msg[]).map((o) => [o.name, values.get(o.name)!]),
  );
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
      return split(
        x[0],
        (attrs.axis as number) ?? 0,
        x[1]?.data ?? (attrs.split as number[]),
        outputs,
      );
    case "Shape":
      return [{ dims: [x[0].dims.length], data: Float64Array.from(x[0].dims) }];
    case "ReduceProd": {
      const keep = (attrs.keepdims as number) ?? 1;
      const p = x[0].data.reduce((a, b) => a * b, 1);
      return [{ dims: keep ? x[0].dims.map(() => 1) : [], data: Float64Array.of(p) }];
    }
    case "Flatten": {
      const axis = (attrs.axis as number) ?? 1;
      return [{
        dims: [size(x[0].dims.slice(0, axis)), size(x[0].dims.slice(axis))],
        data: x[0].data,
      }];
    }
    case "Gemm":
      return [gemm(x[0], x[1], x[2], attrs)];
    case "Softmax":
      return [softmax(x[0], (attrs.axis as number) ?? -1)];
    case "RNN":
    case "GRU":
    case "LSTM":
      return recurrent(op, x, attrs);
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
  given: ArrayLike<number> | undefined,
  n: number,
) {
  const len = x.dims[axis];
  const sizes = given ? Array.from(given) : new Array(n).fill(len / n);
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

/** Y = α·op(A)·op(B) + β·C (C broadcast over rows or a scalar). */
function gemm(a: RefTensor, b: RefTensor, c: RefTensor | undefined, at: Record<string, OnnxAttr>) {
  const ta = at.transA === 1, tb = at.transB === 1;
  const alpha = (at.alpha as number) ?? 1, beta = (at.beta as number) ?? 1;
  const [m, k] = ta ? [a.dims[1], a.dims[0]] : a.dims;
  const n = tb ? b.dims[0] : b.dims[1];
  const data = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    for (let q = 0; q < n; q++) {
      let sum = 0;
      for (let p = 0; p < k; p++) {
        sum += a.data[ta ? p * m + r : r * k + p] * b.data[tb ? q * k + p : p * n + q];
      }
      const cv = !c
        ? 0
        : c.data.length === 1
        ? c.data[0]
        : c.data.length === n
        ? c.data[q]
        : c.data[r * n + q];
      data[r * n + q] = alpha * sum + beta * cv;
    }
  }
  return { dims: [m, n], data };
}

/** Softmax over one axis (opset 13's definition). */
function softmax(x: RefTensor, axis: number): RefTensor {
  const a = axis < 0 ? axis + x.dims.length : axis;
  const outer = size(x.dims.slice(0, a)), len = x.dims[a], inner = size(x.dims.slice(a + 1));
  const data = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (j: number) => (o * len + j) * inner + i;
      let max = -Infinity, sum = 0;
      for (let j = 0; j < len; j++) max = Math.max(max, x.data[at(j)]);
      for (let j = 0; j < len; j++) sum += Math.exp(x.data[at(j)] - max);
      for (let j = 0; j < len; j++) data[at(j)] = Math.exp(x.data[at(j)] - max) / sum;
    }
  }
  return { dims: x.dims, data };
}

/**
 * ONNX RNN (tanh), GRU (either linear_before_reset) and LSTM (with peepholes), forward, reverse
 * or bidirectional, layout 0 (X [T, B, I], states [D, B, H]) or 1 (X [B, T, I], states
 * [B, D, H]). W [D, G·H, I], R [D, G·H, H], B [D, 2·G·H], P [D, 3·H], gates in ONNX's order
 * (LSTM i, o, f, c; GRU z, r, h). A backward direction runs each item from its last step down to
 * 0; steps past an item's length output 0 and keep its state. Outputs Y, Y_h (and Y_c).
 */
function recurrent(op: string, x: RefTensor[], a: Record<string, OnnxAttr>): RefTensor[] {
  const [X0, W, R, Bias, lens, h00, c00, P] = x;
  const layout = (a.layout as number) ?? 0;
  const swap = (t: RefTensor | undefined) => {
    if (!t) return t;
    const [p, q, r] = t.dims;
    const data = new Float64Array(t.data.length);
    for (let i = 0; i < p; i++) {
      for (let j = 0; j < q; j++) {
        for (let k = 0; k < r; k++) data[(j * p + i) * r + k] = t.data[(i * q + j) * r + k];
      }
    }
    return { dims: [q, p, r], data };
  };
  const X = layout === 1 ? swap(X0)! : X0, h0 = layout === 1 ? swap(h00) : h00;
  const c0 = layout === 1 ? swap(c00) : c00;
  const [steps, batch, inSize] = X.dims;
  const H = a.hidden_size as number;
  const dirs = a.direction === "bidirectional" ? 2 : 1;
  const G = op === "LSTM" ? 4 : op === "GRU" ? 3 : 1;
  const lbr = (a.linear_before_reset as number) ?? 0;
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  const Y = new Float64Array(steps * dirs * batch * H);
  const Yh = new Float64Array(dirs * batch * H), Yc = new Float64Array(dirs * batch * H);
  for (let d = 0; d < dirs; d++) {
    const back = d === 1 || a.direction === "reverse";
    // gate g, unit j: x·W + b_W  and  v·R + b_R, for a vector v.
    const wx = (g: number, j: number, t: number, b: number) => {
      let v = Bias ? Bias.data[d * 2 * G * H + g * H + j] : 0;
      for (let q = 0; q < inSize; q++) {
        v += W.data[((d * G + g) * H + j) * inSize + q] * X.data[(t * batch + b) * inSize + q];
      }
      return v;
    };
    const rv = (g: number, j: number, v: number[]) => {
      let s = Bias ? Bias.data[d * 2 * G * H + G * H + g * H + j] : 0;
      for (let q = 0; q < H; q++) s += R.data[((d * G + g) * H + j) * H + q] * v[q];
      return s;
    };
    for (let b = 0; b < batch; b++) {
      const len = lens ? lens.data[b] : steps;
      const state = (t: RefTensor | undefined) =>
        Array.from({ length: H }, (_, j) => (t ? t.data[(d * batch + b) * H + j] : 0));
      let h = state(h0), c = state(c0);
      for (let k = 0; k < len; k++) {
        const t = back ? len - 1 - k : k;
        const idx = [...Array(H).keys()];
        if (op === "RNN") h = idx.map((j) => Math.tanh(wx(0, j, t, b) + rv(0, j, h)));
        else if (op === "GRU") {
          const z = idx.map((j) => sig(wx(0, j, t, b) + rv(0, j, h)));
          const r = idx.map((j) => sig(wx(1, j, t, b) + rv(1, j, h)));
          const rh = idx.map((j) => r[j] * h[j]);
          const hh = idx.map((j) =>
            Math.tanh(wx(2, j, t, b) + (lbr ? r[j] * rv(2, j, h) : rv(2, j, rh)))
          );
          h = idx.map((j) => (1 - z[j]) * hh[j] + z[j] * h[j]);
        } else {
          const p = (g: number, j: number) => (P ? P.data[(d * 3 + g) * H + j] : 0);
          const i = idx.map((j) => sig(wx(0, j, t, b) + rv(0, j, h) + p(0, j) * c[j]));
          const f = idx.map((j) => sig(wx(2, j, t, b) + rv(2, j, h) + p(2, j) * c[j]));
          const cc = idx.map((j) => Math.tanh(wx(3, j, t, b) + rv(3, j, h)));
          c = idx.map((j) => f[j] * c[j] + i[j] * cc[j]);
          const o = idx.map((j) => sig(wx(1, j, t, b) + rv(1, j, h) + p(1, j) * c[j]));
          h = idx.map((j) => o[j] * Math.tanh(c[j]));
        }
        for (let j = 0; j < H; j++) Y[((t * dirs + d) * batch + b) * H + j] = h[j];
      }
      for (let j = 0; j < H; j++) {
        Yh[(d * batch + b) * H + j] = h[j];
        Yc[(d * batch + b) * H + j] = c[j];
      }
    }
  }
  let y: RefTensor = { dims: [steps, dirs, batch, H], data: Y };
  const states = [{ dims: [dirs, batch, H], data: Yh }, { dims: [dirs, batch, H], data: Yc }];
  if (layout === 1) {
    // [T, D, B, H] → [B, T, D, H]; states [D, B, H] → [B, D, H].
    const data = new Float64Array(Y.length);
    for (let t = 0; t < steps; t++) {
      for (let d = 0; d < dirs; d++) {
        for (let b = 0; b < batch; b++) {
          for (let j = 0; j < H; j++) {
            data[((b * steps + t) * dirs + d) * H + j] = Y[((t * dirs + d) * batch + b) * H + j];
          }
        }
      }
    }
    y = { dims: [batch, steps, dirs, H], data };
    return [y, ...states.map((s) => swap(s)!)];
  }
  return [y, ...states];
}
