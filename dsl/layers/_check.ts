/** Checks shared by the network (at definition) and by verify() (over the whole graph). */
import { KilnError } from "../../errors.ts";
import { formatDims } from "../ir/dims.ts";
import type { Tensor } from "../ir/graph.ts";
import type { Weights } from "../ir/weights.ts";
import {
  type FluentFn,
  type LayerDef,
  type ShapeContext,
  ShapeError,
  type TensorDesc,
} from "./_define.ts";

// deno-lint-ignore no-explicit-any
export type AnyDef = LayerDef<string, any, string, Record<string, FluentFn>>;

/** Runs a layer's shape inference, turning shape errors into errors that name the layer. */
export function inferShapeOf(
  def: AnyDef,
  ctx: ShapeContext<unknown>,
  ins?: Tensor[],
): TensorDesc[] {
  const allowed = def.inputDTypes ?? [["float32"]];
  ctx.inputs.forEach((t, i) => {
    const ok = allowed[Math.min(i, allowed.length - 1)];
    if (!ok.includes(t.dtype)) {
      throw new KilnError(
        "SHAPE_MISMATCH",
        `${def.kind} layer "${ctx.layer}": input ${i}${
          ins ? ` ("${ins[i].name}")` : ""
        } is ${t.dtype}; expected ${ok.join(" or ")}`,
        { layer: ctx.layer, tensor: ins?.[i].name },
      );
    }
  });
  try {
    return def.inferShape(ctx);
  } catch (e) {
    if (e instanceof ShapeError) {
      const shapes = ctx.inputs.map((t, i) =>
        `${ins ? ins[i].name : `input ${i}`} ${formatDims(t.dims)}`
      )
        .join(", ");
      throw new KilnError(
        "SHAPE_MISMATCH",
        `${def.kind} layer "${ctx.layer}": ${e.message} (inputs: ${shapes})`,
        {
          layer: ctx.layer,
          tensor: ins?.[0]?.name,
        },
      );
    }
    if (e instanceof KilnError) throw e;
    throw new KilnError(
      "INTERNAL",
      `${def.kind} layer "${ctx.layer}": shape inference failed: ${e}`,
      {
        layer: ctx.layer,
        cause: e,
      },
    );
  }
}

/**
 * Checks weights against the layer's slots: unknown slots and wrong element counts always;
 * missing required slots only for the slots a caller passes to `addX` when `atDefinition`
 * (slots set later, like RNN gates, are checked by `verify()`).
 */
export function checkWeights(
  def: AnyDef,
  ctx: ShapeContext<unknown>,
  weights: ReadonlyMap<string, Weights>,
  atDefinition: boolean,
): string[] {
  const problems: string[] = [];
  const slots = def.weights ? def.weights(ctx) : {};
  const passable = new Set<string>(def.weightArgs ?? []);
  for (const [slot, spec] of Object.entries(slots)) {
    const w = weights.get(slot);
    if (!w) {
      if (!spec.optional && (!atDefinition || passable.has(slot))) {
        problems.push(`weights "${slot}" are missing (expected dims ${formatDims(spec.dims)})`);
      }
      continue;
    }
    const want = spec.dims.reduce((a, b) => a * b, 1);
    if (w.values.length !== want) {
      problems.push(
        `weights "${slot}" have ${w.values.length} values; expected ${want} (dims ${
          formatDims(spec.dims)
        })`,
      );
    }
    const dtypes = spec.dtypes ?? ["float32"];
    if (!dtypes.includes(w.dtype)) {
      problems.push(`weights "${slot}" are ${w.dtype}; expected ${dtypes.join(" or ")}`);
    }
  }
  for (const slot of weights.keys()) {
    if (!(slot in slots)) problems.push(`weights "${slot}" are not a slot of ${def.kind}`);
  }
  if (atDefinition && problems.length) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `${def.kind} layer "${ctx.layer}": ${problems.join("; ")}`,
      {
        layer: ctx.layer,
      },
    );
  }
  return problems;
}
