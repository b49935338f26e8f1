import { z } from "zod";
import {
  type Args,
  defineLayer,
  num,
  type ShapeContext,
  shapeError,
  type TensorHandle,
} from "./_define.ts";

const attrs = z.object({
  /** uniform: one value; channel: one per channel; elementwise: one per element of an item. */
  mode: z.enum(["uniform", "channel", "elementwise"]).default("uniform"),
  /** The channel axis for the channel mode. */
  channelAxis: z.number().int().nonnegative().default(1),
});

type Attrs = z.output<typeof attrs>;

function count(ctx: ShapeContext<Attrs>): number {
  const d = ctx.inputs[0].dims;
  switch (ctx.attrs.mode) {
    case "uniform":
      return 1;
    case "channel":
      if (ctx.attrs.channelAxis >= d.length) {
        shapeError(
          `channelAxis ${ctx.attrs.channelAxis} is out of range for rank ${d.length} (allowed: ${
            d[0] === "N" ? 1 : 0
          }..${d.length - 1})`,
        );
      }
      return num(d[ctx.attrs.channelAxis], "the channel dimension");
    case "elementwise": {
      let v = 1;
      for (let i = d[0] === "N" ? 1 : 0; i < d.length; i++) v *= num(d[i], `dim ${i}`);
      return v;
    }
  }
}

/** Scale: y = (x·scale + shift)^power, per tensor, per channel or per element. */
export const Scale = defineLayer({
  kind: "Scale",
  summary: "y = (x*scale + shift)^power, uniform, per channel or per element",
  attrs,
  inputs: { min: 1, max: 1 },
  weightArgs: ["scale", "shift", "power"],
  weights: (ctx) => {
    const n = count(ctx);
    return {
      scale: { dims: [n], optional: true },
      shift: { dims: [n], optional: true },
      power: { dims: [n], optional: true },
    };
  },
  inferShape: (ctx) => {
    count(ctx);
    return [{ dims: ctx.inputs[0].dims, dtype: ctx.inputs[0].dtype }];
  },
  fluent: {
    scale: (t: TensorHandle, args: Args<typeof attrs, "scale" | "shift" | "power">) => ({
      inputs: [t],
      attrs: args,
    }),
  },
});
