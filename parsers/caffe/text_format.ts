/**
 * The protobuf TEXT format (what `.prototxt` files are), read against a message type known by
 * protobufjs reflection. protobufjs reads only the binary form; this reader covers the text
 * grammar of protobuf's C++ `TextFormat::Parser`: `name: value`, `name { ... }` / `name: { ... }`
 * / `name < ... >`, repeated fields (repeated lines or `name: [a, b]`), strings in single or
 * double quotes with C escapes (adjacent strings concatenate), integers in decimal, hex and
 * octal, floats with `inf`/`nan`, booleans, enums by name or number, `#` comments and optional
 * `,`/`;` separators.
 *
 * The result is a plain object like protobufjs's `toObject(message, {enums: String, longs:
 * Number, bytes: Uint8Array})`: field names as written in the .proto, only the fields present,
 * repeated fields as arrays. Where each message and field was written is kept under a symbol
 * (`locationOf`). Every error is a `KilnError` (PARSE_ERROR) with the file, line and column.
 */
import type protobuf from "protobufjs";
import { KilnError } from "../../errors.ts";

/** A decoded message: field name → value (number, string, boolean, Uint8Array, message, array). */
export type TextMessage = { [field: string]: TextValue };
export type TextValue = number | string | boolean | Uint8Array | TextMessage | TextValue[];

export interface SourceLocation {
  line: number;
  column: number;
}

interface MessageLocation extends SourceLocation {
  /** Where each field was first written. */
  fields: Record<string, SourceLocation>;
}

const LOCATION = Symbol("textFormatLocation");

/** Where a message read by `parseTextFormat` starts, or where one of its fields was written. */
export function locationOf(message: object, field?: string): SourceLocation | undefined {
  const loc = (message as { [LOCATION]?: MessageLocation })[LOCATION];
  if (!loc) return undefined;
  if (field === undefined) return { line: loc.line, column: loc.column };
  return loc.fields[field];
}

export interface TextFormatOptions {
  /** Named in errors; `<text>` when omitted. */
  file?: string;
}

/** Parses `text` as a `type` message in protobuf text format. */
export function parseTextFormat(
  text: string,
  type: protobuf.Type,
  options: TextFormatOptions = {},
): TextMessage {
  const p = new Parser(new Tokenizer(text, options.file ?? "<text>"));
  const msg = p.message(type, undefined, { line: 1, column: 1 }, 0);
  return msg;
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

type TokenKind = "ident" | "number" | "string" | "symbol" | "eof";

interface Token extends SourceLocation {
  kind: TokenKind;
  /** Source text (for strings: the decoded bytes are in `bytes`). */
  text: string;
  bytes?: Uint8Array;
}

const IDENT = /[A-Za-z_][A-Za-z0-9_]*/y;
const NUMBER = /(?:0[xX][0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fF]?)/y;
const SYMBOLS = "{}<>[]:,;-/";
const MAX_DEPTH = 100;

class Tokenizer {
  #pos = 0;
  #line = 1;
  #lineStart = 0;
  current!: Token;

  constructor(readonly src: string, readonly file: string) {
    this.next();
  }

  error(message: string, at: SourceLocation = this.current): never {
    throw new KilnError("PARSE_ERROR", `${this.file}:${at.line}:${at.column}: ${message}`, {
      file: this.file,
      line: at.line,
      column: at.column,
    });
  }

  /** Advances to the next token and returns the one that was current. */
  next(): Token {
    const prev = this.current;
    this.#skipSpaceAndComments();
    const src = this.src, pos = this.#pos;
    const at = { line: this.#line, column: pos - this.#lineStart + 1 };
    if (pos >= src.length) {
      this.current = { kind: "eof", text: "end of file", ...at };
      return prev;
    }
    const c = src[pos];
    if (c === '"' || c === "'") {
      this.current = { kind: "string", ...this.#string(c, at), ...at };
      return prev;
    }
    for (const [re, kind] of [[IDENT, "ident"], [NUMBER, "number"]] as const) {
      re.lastIndex = pos;
      const m = re.exec(src);
      if (m) {
        const end = pos + m[0].length;
        if (end < src.length && /[A-Za-z0-9_.]/.test(src[end])) {
          this.error(
            `invalid ${kind === "ident" ? "identifier" : "number"} "${src.slice(pos, end + 1)}"`,
            at,
          );
        }
        this.#pos = end;
        this.current = { kind, text: m[0], ...at };
        return prev;
      }
    }
    if (SYMBOLS.includes(c)) {
      this.#pos++;
      this.current = { kind: "symbol", text: c, ...at };
      return prev;
    }
    this.error(`unexpected character ${JSON.stringify(c)}`, at);
  }

  #skipSpaceAndComments(): void {
    const src = this.src;
    while (this.#pos < src.length) {
      const c = src[this.#pos];
      if (c === "\n") {
        this.#pos++;
        this.#line++;
        this.#lineStart = this.#pos;
      } else if (c === " " || c === "\t" || c === "\r" || c === "\f" || c === "\v") {
        this.#pos++;
      } else if (c === "#") {
        while (this.#pos < src.length && src[this.#pos] !== "\n") this.#pos++;
      } else {
        return;
      }
    }
  }

  /** A quoted string with C escapes, as bytes (characters outside ASCII as UTF-8). */
  #string(quote: string, at: SourceLocation): { text: string; bytes: Uint8Array } {
    const src = this.src;
    const start = this.#pos;
    const out: number[] = [];
    const enc = new TextEncoder();
    let i = start + 1;
    for (;;) {
      if (i >= src.length || src[i] === "\n") this.error("unterminated string", at);
      const c = src[i];
      if (c === quote) break;
      if (c !== "\\") {
        const cp = src.codePointAt(i)!;
        const ch = String.fromCodePoint(cp);
        if (cp < 0x80) out.push(cp);
        else out.push(...enc.encode(ch));
        i += ch.length;
        continue;
      }
      const e = src[i + 1];
      const escAt = { line: at.line, column: at.column + (i - start) };
      if (e === undefined || e === "\n") this.error("unterminated string", at);
      const simple: Record<string, number> = {
        n: 10,
        t: 9,
        r: 13,
        a: 7,
        b: 8,
        f: 12,
        v: 11,
        "\\": 92,
        "'": 39,
        '"': 34,
        "?": 63,
      };
      if (e in simple) {
        out.push(simple[e]);
        i += 2;
      } else if (/[0-7]/.test(e)) {
        let j = i + 1, v = 0;
        while (j < i + 4 && /[0-7]/.test(src[j] ?? "")) v = v * 8 + Number(src[j++]);
        if (v > 255) this.error(`octal escape \\${src.slice(i + 1, j)} is above \\377`, escAt);
        out.push(v);
        i = j;
      } else if (e === "x" || e === "X") {
        let j = i + 2, v = 0;
        while (j < i + 4 && /[0-9a-fA-F]/.test(src[j] ?? "")) v = v * 16 + parseInt(src[j++], 16);
        if (j === i + 2) this.error("\\x must be followed by hex digits", escAt);
        out.push(v);
        i = j;
      } else if (e === "u" || e === "U") {
        const n = e === "u" ? 4 : 8;
        const hex = src.slice(i + 2, i + 2 + n);
        if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) {
          this.error(`\\${e} must be followed by ${n} hex digits`, escAt);
        }
        const cp = parseInt(hex, 16);
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
          this.error(`\\${e}${hex} is not a Unicode scalar value`, escAt);
        }
        out.push(...enc.encode(String.fromCodePoint(cp)));
        i += 2 + n;
      } else {
        this.error(`unknown escape \\${e}`, escAt);
      }
    }
    this.#pos = i + 1;
    return { text: src.slice(start, i + 1), bytes: Uint8Array.from(out) };
  }
}

// ---------------------------------------------------------------------------------------------
// Parser

const INT_RANGES: Record<string, [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

class Parser {
  constructor(readonly tok: Tokenizer) {}

  /** Fields until `close` (or the end of the file at the top level). */
  message(
    type: protobuf.Type,
    close: string | undefined,
    at: SourceLocation,
    depth: number,
  ): TextMessage {
    const tok: Tokenizer = this.tok;
    if (depth > MAX_DEPTH) tok.error(`messages nest deeper than ${MAX_DEPTH} levels`);
    const msg: TextMessage = {};
    const loc: MessageLocation = { ...at, fields: {} };
    Object.defineProperty(msg, LOCATION, { value: loc, enumerable: false });
    for (;;) {
      const t = tok.current;
      if (close === undefined ? t.kind === "eof" : t.kind === "symbol" && t.text === close) {
        const missing = type.fieldsArray.filter((f) => f.required && !(f.name in msg));
        if (missing.length) {
          tok.error(
            `${typeName(type)} is missing its required field${missing.length > 1 ? "s" : ""} ${
              missing.map((f) => `"${f.name}"`).join(", ")
            }`,
            at,
          );
        }
        tok.next();
        return msg;
      }
      if (t.kind === "eof") tok.error(`expected "${close}" to close the ${type.name} message`);
      this.field(type, msg, loc, depth);
      const sep = tok.current;
      if (sep.kind === "symbol" && (sep.text === "," || sep.text === ";")) tok.next();
    }
  }

  field(type: protobuf.Type, msg: TextMessage, loc: MessageLocation, depth: number): void {
    const tok: Tokenizer = this.tok;
    const nameTok = tok.current;
    if (nameTok.kind === "symbol" && nameTok.text === "[") {
      tok.error(`extensions and Any fields ("[...]") are not supported in ${type.fullName}`);
    }
    if (nameTok.kind !== "ident") {
      tok.error(`expected a field name of ${typeName(type)}, got ${describe(nameTok)}`);
    }
    tok.next();
    const field = type.fields[nameTok.text];
    if (!field) {
      tok.error(`${typeName(type)} has no field "${nameTok.text}"`, nameTok);
    }
    if (!field.repeated && nameTok.text in msg) {
      tok.error(
        `non-repeated field "${field.name}" is given more than once (first at line ${
          loc.fields[field.name].line
        })`,
        nameTok,
      );
    }
    loc.fields[field.name] ??= { line: nameTok.line, column: nameTok.column };
    field.resolve();
    const sub = field.resolvedType;
    const isMessage = sub !== null && "fieldsArray" in sub;
    const hasColon = this.#accept(":");
    if (!isMessage && !hasColon) {
      tok.error(`expected ":" after field "${field.name}", got ${describe(tok.current)}`);
    }
    const readOne = (at: SourceLocation): TextValue =>
      isMessage
        ? this.#subMessage(sub as protobuf.Type, field.name, at, depth)
        : this.scalar(field);
    const open = tok.current;
    if (hasColon && this.#accept("[")) {
      if (!field.repeated) {
        tok.error(`"[...]" lists are only for repeated fields; "${field.name}" is not`, open);
      }
      const list = (msg[field.name] ??= []) as TextValue[];
      if (!this.#accept("]")) {
        for (;;) {
          list.push(readOne(tok.current));
          if (this.#accept("]")) break;
          if (!this.#accept(",")) tok.error(`expected "," or "]" in the list of "${field.name}"`);
        }
      }
      return;
    }
    const v = readOne(nameTok);
    if (field.repeated) ((msg[field.name] ??= []) as TextValue[]).push(v);
    else msg[field.name] = v;
  }

  /** A nested message; `at` (its field name, or its place in a list) is where it is reported. */
  #subMessage(
    type: protobuf.Type,
    name: string,
    at: SourceLocation,
    depth: number,
  ): TextMessage {
    const tok: Tokenizer = this.tok;
    const open = tok.current;
    if (open.kind !== "symbol" || (open.text !== "{" && open.text !== "<")) {
      tok.error(
        `expected "{" to start the ${typeName(type)} field "${name}", got ${describe(open)}`,
      );
    }
    tok.next();
    const loc = { line: at.line, column: at.column };
    return this.message(type, open.text === "{" ? "}" : ">", loc, depth + 1);
  }

  #accept(symbol: string): boolean {
    const t = this.tok.current;
    if (t.kind === "symbol" && t.text === symbol) {
      this.tok.next();
      return true;
    }
    return false;
  }

  scalar(field: protobuf.Field): TextValue {
    const tok: Tokenizer = this.tok;
    const start = tok.current;
    const sub = field.resolvedType;
    if (sub !== null) return this.#enumValue(sub as protobuf.Enum, field);
    switch (field.type) {
      case "string":
      case "bytes": {
        if (start.kind !== "string") {
          tok.error(`field "${field.name}" takes a quoted string, got ${describe(start)}`);
        }
        const parts: Uint8Array[] = [];
        while (tok.current.kind === "string") parts.push(tok.next().bytes!);
        const bytes = concatBytes(parts);
        return field.type === "bytes" ? bytes : new TextDecoder().decode(bytes);
      }
      case "bool": {
        const t = tok.next();
        if (t.kind === "ident" && ["true", "t", "True"].includes(t.text)) return true;
        if (t.kind === "ident" && ["false", "f", "False"].includes(t.text)) return false;
        if (t.kind === "number" && (t.text === "1" || t.text === "0")) return t.text === "1";
        return tok.error(`field "${field.name}" takes true or false, got ${describe(t)}`, t);
      }
      case "float":
      case "double": {
        const v = this.#float(field);
        return field.type === "float" ? Math.fround(v) : v;
      }
    }
    const range = INT_RANGES[field.type];
    if (!range) tok.error(`field "${field.name}" has type ${field.type}, which is not supported`);
    const v = this.#integer(field);
    if (v < range[0] || v > range[1]) {
      tok.error(`${v} is out of range for field "${field.name}" (${field.type})`, start);
    }
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
      tok.error(`${v} is too large to be represented exactly (field "${field.name}")`, start);
    }
    return Number(v);
  }

  #integer(field: protobuf.Field): bigint {
    const tok: Tokenizer = this.tok;
    const start = tok.current;
    const negative = this.#accept("-");
    const t = tok.next();
    if (t.kind !== "number" || !/^(0[xX][0-9a-fA-F]+|[0-9]+)$/.test(t.text)) {
      tok.error(`field "${field.name}" (${field.type}) takes an integer, got ${describe(t)}`, t);
    }
    let v: bigint;
    if (/^0[xX]/.test(t.text)) v = BigInt(t.text);
    else if (t.text.length > 1 && t.text[0] === "0") {
      if (!/^[0-7]+$/.test(t.text)) tok.error(`invalid octal integer "${t.text}"`, t);
      v = BigInt("0o" + t.text.slice(1));
    } else v = BigInt(t.text);
    if (negative && field.type.startsWith("u") || negative && field.type.startsWith("fixed")) {
      tok.error(`field "${field.name}" (${field.type}) cannot be negative`, start);
    }
    return negative ? -v : v;
  }

  #float(field: protobuf.Field): number {
    const tok: Tokenizer = this.tok;
    const negative = this.#accept("-");
    const t = tok.next();
    let v: number;
    if (t.kind === "ident" && /^(inf|infinity)$/i.test(t.text)) v = Infinity;
    else if (t.kind === "ident" && /^nan$/i.test(t.text)) v = NaN;
    else if (t.kind === "number") {
      const s = t.text.replace(/[fF]$/, "");
      if (/^0[xX]/.test(s)) v = Number(s);
      else if (/^0[0-7]+$/.test(s)) v = parseInt(s, 8);
      else v = Number(s);
      if (Number.isNaN(v)) tok.error(`invalid number "${t.text}"`, t);
    } else {
      tok.error(`field "${field.name}" (${field.type}) takes a number, got ${describe(t)}`, t);
    }
    return negative ? -v : v;
  }

  #enumValue(e: protobuf.Enum, field: protobuf.Field): string {
    const tok: Tokenizer = this.tok;
    const start = tok.current;
    const negative = this.#accept("-");
    const t = tok.next();
    if (t.kind === "ident" && !negative) {
      if (!Object.hasOwn(e.values, t.text)) {
        tok.error(
          `"${t.text}" is not a value of enum ${e.name} (field "${field.name}"; values: ${
            Object.keys(e.values).join(", ")
          })`,
          t,
        );
      }
      return t.text;
    }
    if (t.kind === "number" && /^[0-9]+$/.test(t.text)) {
      const n = Number(t.text) * (negative ? -1 : 1);
      const name = e.valuesById[n];
      if (name === undefined) tok.error(`${n} is not a value of enum ${e.name}`, start);
      return name;
    }
    tok.error(`field "${field.name}" takes a value of enum ${e.name}, got ${describe(t)}`, t);
  }
}

function typeName(type: protobuf.Type): string {
  return type.fullName.replace(/^\./, "");
}

function describe(t: Token): string {
  if (t.kind === "eof") return "the end of the file";
  const s = t.text.length > 40 ? t.text.slice(0, 37) + "..." : t.text;
  return t.kind === "string" ? `the string ${s}` : `"${s}"`;
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * `msg` with the .proto defaults filled in for absent singular scalar and enum fields and `[]`
 * for absent repeated fields (nested messages stay absent), as `toObject({defaults: true})`.
 */
export function withDefaults(type: protobuf.Type, msg: TextMessage | undefined): TextMessage {
  const out: TextMessage = { ...(msg ?? {}) };
  for (const f of type.fieldsArray) {
    if (f.name in out) continue;
    if (f.repeated) {
      out[f.name] = [];
      continue;
    }
    f.resolve();
    const sub = f.resolvedType;
    if (sub && "fieldsArray" in sub) continue;
    if (sub) {
      const e = sub as protobuf.Enum;
      const d = f.options?.default;
      out[f.name] = typeof d === "string" ? d : e.valuesById[Number(f.typeDefault ?? 0)];
    } else {
      const d = f.defaultValue ?? f.typeDefault;
      out[f.name] = typeof d === "object" && d !== null && "low" in d ? Number(d) : d as TextValue;
    }
  }
  if (msg) {
    const loc = (msg as { [LOCATION]?: MessageLocation })[LOCATION];
    if (loc) Object.defineProperty(out, LOCATION, { value: loc, enumerable: false });
  }
  return out;
}
