/** Kiln: TensorRT-class inference for TypeScript on Deno. The public API. */
export { describeLocation, KilnError, type KilnErrorCode, type KilnProblem } from "./errors.ts";
export { type Dim, type Dims, N } from "./dsl/ir/dims.ts";
export type { DType, HostArray } from "./dsl/ir/dtype.ts";
export { Layer, type Precision, Tensor } from "./dsl/ir/graph.ts";
export type { Weights, WeightsInput } from "./dsl/ir/weights.ts";
export { verifyNetwork, type VerifyReport } from "./dsl/ir/verify.ts";
export { type LayerKind, LAYERS } from "./dsl/layers/mod.ts";
export { getPluginCreator, type PluginCreator, registerPlugin } from "./dsl/layers/plugin.ts";
export { Network } from "./dsl/network.ts";
export { type BuildConfig, buildEngine } from "./builder/build.ts";
export { type CompareOptions, compareWithFp32, type LayerError } from "./builder/compare.ts";
export {
  calibrate,
  type CalibrationHistogram,
  type CalibrationResult,
} from "./builder/quant/calibrate.ts";
export {
  EntropyCalibrator2,
  type Int8Calibrator,
  LegacyCalibrator,
  MinMaxCalibrator,
  PercentileCalibrator,
} from "./builder/quant/calibrator.ts";
export {
  ArrayBatchStream,
  BatchStream,
  type CalibrationStream,
  parseBatchFile,
} from "./builder/quant/batch_stream.ts";
export { parseCalibrationCache } from "./builder/quant/cache.ts";
export {
  applyDynamicRanges,
  applyScales,
  parseDynamicRanges,
  readDynamicRanges,
} from "./builder/quant/ranges.ts";
export { inspectPlan, KILN_VERSION, type PlanHeader } from "./plan/mod.ts";
export {
  type Binding,
  deserializeEngine,
  Engine,
  type ExecuteLoopOptions,
  type ExecuteOptions,
  ExecutionContext,
} from "./runtime/engine.ts";
export { type DeviceSpec } from "./runtime/device.ts";
export { Logger, MemoryLogger, type Severity } from "./runtime/logger.ts";
export { type LayerTime, Profiler } from "./runtime/profiler.ts";
export { parseCheckpoint, readCheckpoint } from "./parsers/tf/checkpoint.ts";
export { Checkpoint, type CheckpointTensor } from "./parsers/tf/checkpoint.ts";
export { applyGates, type ConvertedRnn, gateList } from "./parsers/tf/gates.ts";
export { kerasGruGates, kerasLstmGates } from "./parsers/tf/gates.ts";
export { tfGruCellGates, tfLstmCellGates } from "./parsers/tf/gates.ts";
export { onnxGruGates, onnxLstmGates, torchGruGates, torchLstmGates } from "./parsers/tf/gates.ts";
export * from "./viz/mod.ts";
export { parseCaffe, readCaffeBlob } from "./parsers/caffe/mod.ts";
export { float32Values, parseWts, readWts } from "./parsers/tf/wts.ts";
export { saveWts, writeWts, writeWts2 } from "./parsers/tf/wts.ts";
export type { SaveWtsOptions, WtsTensor, WtsTensors } from "./parsers/tf/wts.ts";
export { onnxHostArray, parseOnnx, readOnnxTensor } from "./parsers/onnx/mod.ts";
export type { OnnxDiagnostic, OnnxTensorData, ParseOnnxOptions } from "./parsers/onnx/mod.ts";
