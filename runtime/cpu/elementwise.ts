/** ElementWise with numpy broadcasting; more than two inputs fold left to right. */
import { type CpuKernel, f32, type HostTensor } from "./_kernel.ts";
import { forEachBroadcast } from "./_broadcast.ts";

type Op = "sum" | "prod" | "max" | "min" | "sub" | "div" | "pow";

const OPS: Record<Op, (a: number, b: number) => number> = {
  sum: (a, b) => a + b,
  prod: (a, b) => a * b,
  max: (a, b) => (a >= b || a !== a ? a : b),
  min: (a, b) => (a <= b || a !== a ? a : b),
  sub: (a, b) => a - b,
  div: (a, b) => a / b,
  pow: (a, b) => Math.pow(a, b),
};

export const elementwise: CpuKernel<{ op: Op }> = ({ attrs, inputs, outputs }) => {
  const f = OPS[attrs.op];
  const out = outputs[0];
  const y = f32(out);
  // Fold: acc = in0 op in1, then acc op in2, ... each step broadcast to the output shape.
  let acc: HostTensor = inputs[0];
  for (let k = 1; k < inputs.length; k++) {
    const a = f32(acc), b = f32(inputs[k]);
    const dst = k === inputs.length - 1 ? y : new Float32Array(y.length);
    forEachBroadcast(out.dims, [acc.dims, inputs[k].dims], (o, idx) => {
      dst[o] = f(a[idx[0]], b[idx[1]]);
    });
    acc = { data: dst, dims: out.dims };
  }
};
