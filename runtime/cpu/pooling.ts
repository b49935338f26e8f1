/** Max and average pooling on the CPU (NCHW). */
import { poolGeometry, type PoolingAttrs } from "../../dsl/layers/pooling.ts";
import { type CpuKernel, f32 } from "./_kernel.ts";

export const pooling: CpuKernel<PoolingAttrs> = ({ attrs, inputs, outputs }) => {
  const x = f32(inputs[0]), y = f32(outputs[0]);
  const [n, c, h, w] = inputs[0].dims;
  const [, , oh, ow] = outputs[0].dims;
  const { window, stride, pad, post } = poolGeometry(attrs, h, w);
  const isMax = attrs.type === "max";
  // The output may be a view inside a wider tensor (plan/views.ts): images lie a stride apart.
  const yStride = outputs[0].batchStride ?? c * oh * ow;
  for (let p = 0; p < n * c; p++) {
    const xo = p * h * w, yo = Math.floor(p / c) * yStride + (p % c) * oh * ow;
    for (let oy = 0; oy < oh; oy++) {
      const y0 = oy * stride[0] - pad[0];
      const y1 = Math.min(y0 + window[0], h + post[0]);
      const ys = Math.max(y0, 0), ye = Math.min(y1, h);
      for (let ox = 0; ox < ow; ox++) {
        const x0 = ox * stride[1] - pad[1];
        const x1 = Math.min(x0 + window[1], w + post[1]);
        const xs = Math.max(x0, 0), xe = Math.min(x1, w);
        let acc = isMax ? -Infinity : 0;
        for (let iy = ys; iy < ye; iy++) {
          const row = xo + iy * w;
          for (let ix = xs; ix < xe; ix++) {
            const v = x[row + ix];
            if (isMax) acc = v > acc || v !== v ? v : acc;
            else acc += v;
          }
        }
        if (!isMax) {
          const count = attrs.excludePadding ? (ye - ys) * (xe - xs) : (y1 - y0) * (x1 - x0);
          acc = count > 0 ? acc / count : 0;
        }
        y[yo + oy * ow + ox] = acc;
      }
    }
  }
};
