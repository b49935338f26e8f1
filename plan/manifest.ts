/** The plan manifest: layers, tensors, bindings and weight references, validated with zod on load. */
import { z } from "zod";

const dim = z.union([z.number().int().positive(), z.literal("N")]);
const dtype = z.enum(["float32", "float16", "int8", "int32"]);

export const weightRef = z.object({
  dtype,
  /** Byte offset inside the weight section (aligned to the element size). */
  offset: z.number().int().nonnegative(),
  /** Element count. */
  count: z.number().int().nonnegative(),
});

export const manifestSchema = z.object({
  maxBatchSize: z.number().int().positive(),
  tensors: z.array(z.object({
    name: z.string().min(1),
    dims: z.array(dim),
    dtype,
    /** Set when the tensor owns no memory and lives in a channel range of another (plan/views.ts). */
    view: z.object({
      of: z.number().int().nonnegative(),
      channelOffset: z.number().int().nonnegative(),
    }).optional(),
    /** Storage precision when reduced (absent: FP32); float32 memory holds the reduced values. */
    precision: z.enum(["fp16", "int8"]).optional(),
    /** The INT8 step (amax / 127) of a tensor with a known dynamic range. */
    scale: z.number().positive().finite().optional(),
    /** Set when the tensor owns no memory: a Constant's weights or a reshaped tensor (plan/aliases.ts). */
    alias: z.union([
      z.object({ tensor: z.number().int().nonnegative() }),
      z.object({ constant: z.number().int().nonnegative() }),
    ]).optional(),
  })),
  bindings: z.array(z.object({
    name: z.string().min(1),
    tensor: z.number().int().nonnegative(),
    isInput: z.boolean(),
  })),
  layers: z.array(z.object({
    name: z.string().min(1),
    kind: z.string().min(1),
    attrs: z.record(z.string(), z.unknown()),
    inputs: z.array(z.number().int().nonnegative()),
    outputs: z.array(z.number().int().nonnegative()),
    weights: z.record(z.string(), weightRef),
    sources: z.array(z.string()),
    precision: z.enum(["fp32", "fp16", "int8"]),
    tactic: z.string().optional(),
  })),
  /** The activation arena: one offset per tensor, lifetimes permitting reuse (builder/memory.ts). */
  memory: z.object({
    arenaBytes: z.number().int().nonnegative(),
    offsets: z.array(z.number().int().nonnegative()),
    naiveBytes: z.number().int().nonnegative(),
  }),
  /** Builder diagnostics and settings worth keeping with the plan. */
  build: z.object({
    /** What each pass did: layers before and after, and its changes in words. */
    passes: z.array(z.object({
      name: z.string(),
      layersBefore: z.number().int().nonnegative(),
      layersAfter: z.number().int().nonnegative(),
      changes: z.array(z.string()),
    })),
    workspaceBytes: z.number().int().nonnegative(),
    /** Reduced-precision settings and why each layer runs in its precision (builder/precision.ts). */
    precision: z.object({
      fp16: z.boolean(),
      int8: z.boolean(),
      strictTypes: z.boolean(),
      /** Where the INT8 scales came from: a calibrator's algorithm, "dynamic ranges" or none. */
      scalesFrom: z.string().optional(),
      layers: z.array(z.object({
        layer: z.string(),
        precision: z.enum(["fp32", "fp16", "int8"]),
        reason: z.string(),
      })),
    }).optional(),
  }),
});

export type Manifest = z.output<typeof manifestSchema>;
export type ManifestLayer = Manifest["layers"][number];
export type WeightRef = z.output<typeof weightRef>;

export const headerSchema = z.object({
  format: z.number().int(),
  kilnVersion: z.string(),
  device: z.object({
    kind: z.enum(["cpu", "cuda"]),
    /** "cpu" or a CUDA architecture such as "sm_90". */
    arch: z.string(),
    name: z.string(),
  }),
  cuda: z.object({ runtime: z.number().int(), driver: z.number().int() }).optional(),
  irHash: z.string().regex(/^[0-9a-f]{64}$/),
  weightsHash: z.string().regex(/^[0-9a-f]{64}$/),
  manifestOffset: z.number().int().nonnegative(),
  manifestBytes: z.number().int().nonnegative(),
  weightsOffset: z.number().int().nonnegative(),
  weightsBytes: z.number().int().nonnegative(),
});

export type PlanHeader = z.output<typeof headerSchema>;
