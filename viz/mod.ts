export {
  comparisonFigure,
  type Figure,
  type Histogram,
  histogramFigure,
  memoryLifetimeFigure,
  profileFigure,
  type TensorLifetime,
  timelineFigure,
} from "./figures.ts";
export { display, type Displayable, PlotlyFigure, show } from "./display.ts";
export { type GridImage, imageGridFigure, type ImageGridOptions } from "./images.ts";
export { toHtml } from "./html.ts";
export * from "./precision.ts";
export { drawNetwork, type GraphView, Svg, toDot, viewOfEngine, viewOfNetwork } from "./network.ts";
export { type Progress, progress } from "./progress.ts";
export { JUPYTER_DISPLAY } from "./_jupyter.ts";
export {
  activationHistogramFigure,
  calibrationScalesFigure,
  klDivergenceFigure,
  type TensorCalibration,
} from "./calibration.ts";
