/** Logger with TensorRT's severities. Messages below the minimum severity are dropped. */
export type Severity = "error" | "warning" | "info" | "verbose";

const RANK: Record<Severity, number> = { error: 0, warning: 1, info: 2, verbose: 3 };

export type LogSink = (severity: Severity, message: string) => void;

export class Logger {
  constructor(
    readonly minSeverity: Severity = "warning",
    readonly sink: LogSink = (s, m) => {
      const line = `[kiln] ${s.toUpperCase()}: ${m}`;
      if (s === "error" || s === "warning") console.error(line);
      else console.log(line);
    },
  ) {}

  enabled(severity: Severity): boolean {
    return RANK[severity] <= RANK[this.minSeverity];
  }

  log(severity: Severity, message: string): void {
    if (this.enabled(severity)) this.sink(severity, message);
  }

  error(message: string): void {
    this.log("error", message);
  }
  warning(message: string): void {
    this.log("warning", message);
  }
  info(message: string): void {
    this.log("info", message);
  }
  verbose(message: string): void {
    this.log("verbose", message);
  }
}

/** A logger that keeps every message in memory (tests, notebooks). */
export class MemoryLogger extends Logger {
  readonly messages: { severity: Severity; message: string }[] = [];
  constructor(minSeverity: Severity = "verbose") {
    super(minSeverity, (severity, message) => this.messages.push({ severity, message }));
  }
}
