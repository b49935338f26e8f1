/** Scale: y = (x·scale + shift)^power per tensor, channel or element. */
import { type CpuKernel, f32 } from "./_kernel.ts";

export const scale: CpuKernel<
  { mode: "uniform" | "channel" | "elementwise"; channelAxis: number }
> = (
  { attrs, weights, inputs, outputs },
) => {
  const x = f32(inputs[0]), y = f32(outputs[0]);
  const dims = inputs[0].dims;
  const sc = weights.scale as Float32Array | undefined;
  const sh = weights.shift as Float32Array | undefined;
  const pw = weights.power as Float32Array | undefined;
  // Which coefficient index element i uses.
  let indexOf: (i: number) => number;
  if (attrs.mode === "uniform") indexOf = () => 0;
  else if (attrs.mode === "channel") {
    let inner = 1;
    for (let d = attrs.channelAxis + 1; d < dims.length; d++) inner *= dims[d];
    const c = dims[attrs.channelAxis];
    indexOf = (i) => Math.floor(i / inner) % c;
  } else {
    // One coefficient per element of an item: of the whole tensor when it is not batched.
    const per = (sc ?? sh ?? pw)?.length ?? 1;
    indexOf = (i) => i % per;
  }
  for (let i = 0; i < x.length; i++) {
    const k = indexOf(i);
    let v = x[i] * (sc ? sc[k] : 1) + (sh ? sh[k] : 0);
    if (pw && pw[k] !== 1) v = Math.pow(v, pw[k]);
    y[i] = v;
  }
};
