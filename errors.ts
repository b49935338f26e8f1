/**
 * The one error class of Kiln. Every layer of the library throws a `KilnError` with a stable
 * `code` and, where known, where the problem is: a file (with a byte offset or line/column),
 * a layer or a tensor.
 */

export type KilnErrorCode =
  | "INVALID_ARGUMENT"
  | "INVALID_ATTRIBUTE"
  | "INVALID_NETWORK"
  | "SHAPE_MISMATCH"
  | "UNSUPPORTED"
  | "PARSE_ERROR"
  | "PLAN_INVALID"
  | "PLAN_VERSION"
  | "PLAN_DEVICE"
  | "IO_ERROR"
  | "DEVICE_UNAVAILABLE"
  | "CUDA_ERROR"
  | "NATIVE_ERROR"
  | "INTERNAL";

export interface KilnErrorLocation {
  file?: string;
  offset?: number;
  line?: number;
  column?: number;
  layer?: string;
  tensor?: string;
}

export interface KilnErrorOptions extends KilnErrorLocation {
  cause?: unknown;
  /** Further problems found in the same check (verify reports every one). */
  problems?: readonly KilnProblem[];
}

export interface KilnProblem extends KilnErrorLocation {
  message: string;
}

export class KilnError extends Error {
  override name = "KilnError";
  readonly code: KilnErrorCode;
  readonly file?: string;
  readonly offset?: number;
  readonly line?: number;
  readonly column?: number;
  readonly layer?: string;
  readonly tensor?: string;
  readonly problems: readonly KilnProblem[];

  constructor(code: KilnErrorCode, message: string, options: KilnErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.file = options.file;
    this.offset = options.offset;
    this.line = options.line;
    this.column = options.column;
    this.layer = options.layer;
    this.tensor = options.tensor;
    this.problems = options.problems ?? [];
  }
}

/** Formats where a problem is, e.g. `layer "conv1", tensor "data"`. */
export function describeLocation(where: KilnErrorLocation): string {
  const parts: string[] = [];
  if (where.file !== undefined) {
    let f = `file "${where.file}"`;
    if (where.line !== undefined) {
      f += `:${where.line}${where.column !== undefined ? `:${where.column}` : ""}`;
    }
    if (where.offset !== undefined) f += ` at byte ${where.offset}`;
    parts.push(f);
  } else if (where.offset !== undefined) {
    parts.push(`byte ${where.offset}`);
  }
  if (where.layer !== undefined) parts.push(`layer "${where.layer}"`);
  if (where.tensor !== undefined) parts.push(`tensor "${where.tensor}"`);
  return parts.join(", ");
}
