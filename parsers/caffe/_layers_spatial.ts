/**
 * Importers of Caffe's spatial layers: Convolution, Deconvolution, InnerProduct, Pooling, LRN.
 * Caffe's blob layouts are Kiln's (convolution [O, C/g, kh, kw], deconvolution [C, O/g, kh, kw],
 * inner product [O, K]), so weights pass through unchanged (a transposed InnerProduct is
 * transposed once here).
 */
import { formatDims, N } from "../../dsl/ir/dims.ts";
import { poolOutputSize } from "../../dsl/layers/pooling.ts";
import type { TextMessage } from "./text_format.ts";
import { caffeAxis, channels, type ImportContext, registerImporter, single } from "./_registry.ts";

type Pair = [number, number];

/**
 * A 2-D setting given either as `name_h`/`name_w` or as `name` (one value for both, or, for
 * convolutions where it is repeated, one value per spatial dim), as Caffe's layer setup reads
 * them.
 */
function spatial(
  ctx: ImportContext,
  p: TextMessage,
  msgName: string,
  name: "kernel_size" | "stride" | "pad",
  dflt?: number,
): Pair {
  const base = name === "kernel_size" ? "kernel" : name;
  const hName = `${base}_h`, wName = `${base}_w`;
  const hasH = ctx.given(msgName, hName), hasW = ctx.given(msgName, wName);
  const raw = p[name];
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw as number[] : [raw as number];
  const given = ctx.given(msgName, name);
  if (hasH || hasW) {
    if (!(hasH && hasW)) ctx.fail(`${msgName}: ${hName} and ${wName} must be given together`);
    if (given && list.length) {
      ctx.fail(`${msgName}: give either ${name} or ${hName} and ${wName}, not both`);
    }
    return [p[hName] as number, p[wName] as number];
  }
  if (!given || list.length === 0) {
    if (dflt === undefined) ctx.fail(`${msgName}: ${name} (or ${hName} and ${wName}) is required`);
    return [dflt, dflt];
  }
  if (list.length === 1) return [list[0], list[0]];
  if (list.length === 2) return [list[0], list[1]];
  return ctx.fail(
    `${msgName}: ${name} has ${list.length} values; Kiln supports 2-D (1 or 2 values)`,
  );
}

/** Kernel, stride, padding and dilation of a (de)convolution. */
function convGeometry(ctx: ImportContext, p: TextMessage) {
  const kernel = spatial(ctx, p, "convolution_param", "kernel_size");
  const stride = spatial(ctx, p, "convolution_param", "stride", 1);
  const padding = spatial(ctx, p, "convolution_param", "pad", 0);
  const dil = p.dilation as number[];
  if (dil.length > 2) ctx.fail(`convolution_param: dilation has ${dil.length} values; 2-D only`);
  const dilation: Pair = dil.length === 0 ? [1, 1] : [dil[0], dil[dil.length - 1]];
  return { kernel, stride, padding, dilation };
}

/** Problems with settings Kiln does not support (N-D convolution, another channel axis). */
function checkConvolution(_l: unknown, param: (name: string) => TextMessage): string[] {
  const p = param("convolution_param");
  const problems: string[] = [];
  if (p.axis !== 1) problems.push(`convolution_param.axis ${p.axis} (only 1, NCHW, is supported)`);
  for (const f of ["kernel_size", "stride", "pad", "dilation"]) {
    const n = (p[f] as number[]).length;
    if (n > 2) problems.push(`${f} has ${n} values (N-D convolution; Kiln supports 2-D)`);
  }
  return problems;
}

for (const kind of ["Convolution", "Deconvolution"] as const) {
  registerImporter(kind, {
    kinds: [kind],
    check: checkConvolution,
    import: (ctx) => {
      const p = ctx.param("convolution_param");
      const g = convGeometry(ctx, p);
      const c = channels(ctx);
      const outputs = p.num_output as number, groups = p.group as number;
      if (!(groups > 0 && c % groups === 0 && outputs % groups === 0)) {
        ctx.fail(`channels (${c}) and num_output (${outputs}) must divide by group (${groups})`);
      }
      const dims = kind === "Convolution"
        ? [outputs, c / groups, ...g.kernel]
        : [c, outputs / groups, ...g.kernel];
      return single(ctx, kind, {
        outputs,
        ...g,
        groups,
        weights: ctx.blob(0, dims, "weights"),
        bias: p.bias_term ? ctx.blob(1, [outputs], "bias") : undefined,
      });
    },
  });
}

registerImporter("InnerProduct", {
  kinds: ["FullyConnected"],
  import: (ctx) => {
    const p = ctx.param("inner_product_param");
    const d = ctx.inputs[0].dims;
    const axis = caffeAxis(ctx, p.axis as number, d.length);
    if (d.slice(axis).includes(N)) {
      ctx.fail(
        `inner_product_param.axis ${p.axis} would fold the batch dimension of ${formatDims(d)}`,
      );
    }
    const k = (d.slice(axis) as number[]).reduce((a, b) => a * b, 1);
    const outputs = p.num_output as number;
    let weights: Float32Array;
    if (p.transpose) {
      // Stored [K, O]; Kiln wants [O, K].
      const t = ctx.blob(0, [k, outputs], "weights");
      weights = new Float32Array(t.length);
      for (let i = 0; i < k; i++) {
        for (let o = 0; o < outputs; o++) weights[o * k + i] = t[i * outputs + o];
      }
    } else {
      weights = ctx.blob(0, [outputs, k], "weights");
    }
    const bias = p.bias_term ? ctx.blob(1, [outputs], "bias") : undefined;
    return single(ctx, "FullyConnected", { outputs, axis, weights, bias });
  },
});

/**
 * Caffe's pooled size (pooling_layer.cpp): ceil or floor of (size + 2·pad − kernel) / stride,
 * plus one; then, when there is any padding, a last window that would start in the trailing
 * padding is dropped.
 */
export function caffePoolSize(
  size: number,
  kernel: number,
  stride: number,
  pad: number,
  anyPad: boolean,
  ceil: boolean,
): number {
  const span = (size + 2 * pad - kernel) / stride;
  let out = (ceil ? Math.ceil(span) : Math.floor(span)) + 1;
  if (anyPad && (out - 1) * stride >= size + pad) out--;
  return out;
}

registerImporter("Pooling", {
  kinds: ["Pooling"],
  check: (_l, param) => {
    const p = param("pooling_param");
    return p.pool === "STOCHASTIC" ? ["STOCHASTIC pooling (only MAX and AVE)"] : [];
  },
  import: (ctx) => {
    const p = ctx.param("pooling_param");
    const d = ctx.inputs[0].dims;
    channels(ctx);
    const [h, w] = [d[2] as number, d[3] as number];
    const global = p.global_pooling as boolean;
    const type = p.pool === "AVE" ? "average" : "max";
    const rounding = p.round_mode === "FLOOR" ? "floor" : "ceil";
    if (global) {
      if (ctx.given("pooling_param", "kernel_size") || ctx.given("pooling_param", "kernel_h")) {
        ctx.fail("pooling_param: with global_pooling the kernel size cannot be given");
      }
      const pad = spatial(ctx, p, "pooling_param", "pad", 0);
      const stride = spatial(ctx, p, "pooling_param", "stride", 1);
      if (pad[0] || pad[1] || stride[0] !== 1 || stride[1] !== 1) {
        ctx.fail("pooling_param: global pooling takes no padding and stride 1");
      }
      return single(ctx, "Pooling", { type, global: true, excludePadding: false });
    }
    const window = spatial(ctx, p, "pooling_param", "kernel_size");
    const stride = spatial(ctx, p, "pooling_param", "stride", 1);
    const padding = spatial(ctx, p, "pooling_param", "pad", 0);
    // Caffe drops a last window starting in the padding in both dims when either is padded;
    // Kiln's rule looks at each dim's own padding. Refuse the rare case where they differ.
    const anyPad = padding[0] > 0 || padding[1] > 0;
    for (const [i, size] of [[0, h], [1, w]] as const) {
      const caffe = caffePoolSize(
        size,
        window[i],
        stride[i],
        padding[i],
        anyPad,
        rounding === "ceil",
      );
      const kiln = poolOutputSize(size, window[i], stride[i], padding[i], padding[i], rounding);
      if (caffe !== kiln) {
        ctx.fail(
          `Caffe's pooled size ${caffe} differs from Kiln's ${kiln} (padding ${
            JSON.stringify(padding)
          }, stride ${JSON.stringify(stride)}): unsupported`,
          "UNSUPPORTED",
        );
      }
    }
    // Caffe's AVE divides by the window clipped to the padded image: padding counts.
    return single(ctx, "Pooling", {
      type,
      window,
      stride,
      padding,
      rounding,
      excludePadding: false,
    });
  },
});

registerImporter("LRN", {
  kinds: ["LRN"],
  check: (_l, param) => {
    const p = param("lrn_param");
    return p.norm_region === "WITHIN_CHANNEL"
      ? ["lrn_param.norm_region WITHIN_CHANNEL (only ACROSS_CHANNELS)"]
      : [];
  },
  import: (ctx) => {
    const p = ctx.param("lrn_param");
    // Caffe: y = x / (k + alpha/n · Σ x²)^beta over n = local_size channels: TensorRT's LRN.
    return single(ctx, "LRN", { window: p.local_size, alpha: p.alpha, beta: p.beta, k: p.k });
  },
});
