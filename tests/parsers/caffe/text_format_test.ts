import assert from "node:assert/strict";
import protobuf from "protobufjs";
import { KilnError } from "../../../errors.ts";
import {
  locationOf,
  parseTextFormat,
  type TextMessage,
  withDefaults,
} from "../../../parsers/caffe/text_format.ts";

// A schema with every kind of field the reader handles (independent of caffe.proto).
const SCHEMA = `
syntax = "proto2";
package t;
enum Color { RED = 0; GREEN = 1; BLUE = 5; }
message Inner {
  optional int32 a = 1;
  repeated string tags = 2;
  optional Inner child = 3;
}
message Req { required float x = 1; optional float y = 2; }
message All {
  optional string s = 1;
  optional bytes b = 2;
  optional bool flag = 3 [default = true];
  optional float f = 4 [default = 0.5];
  optional double d = 5;
  optional int32 i32 = 6 [default = -7];
  optional uint32 u32 = 7;
  optional int64 i64 = 8;
  optional sint32 s32 = 9;
  optional uint64 u64 = 10;
  optional Color color = 11 [default = GREEN];
  optional Inner inner = 12;
  repeated Inner items = 13;
  repeated float values = 14;
  repeated Color colors = 15;
  optional Req req = 16;
}
`;
const root = protobuf.parse(SCHEMA, { keepCase: true }).root;
root.resolveAll();
const All = root.lookupType("t.All");

const parse = (text: string) => parseTextFormat(text, All, { file: "t.prototxt" });

/** Asserts `text` is refused with a PARSE_ERROR at line:column whose message matches. */
function assertParseError(text: string, line: number, column: number, pattern: RegExp): void {
  assert.throws(() => parse(text), (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.code, "PARSE_ERROR");
    assert.equal(e.file, "t.prototxt");
    assert.deepEqual([e.line, e.column], [line, column], e.message);
    assert.match(e.message, new RegExp(`^t\\.prototxt:${line}:${column}: `));
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("parseTextFormat reads scalars of every type", () => {
  const m = parse(`
    s: "hello" b: "\\x00\\377" flag: false f: 1.5 d: -2.25e3 i32: -12 u32: 4000000000
    i64: -9007199254740991 s32: -3 u64: 0x1F color: BLUE`);
  assert.deepEqual({ ...m, b: [...(m.b as Uint8Array)] }, {
    s: "hello",
    b: [0, 255],
    flag: false,
    f: 1.5,
    d: -2250,
    i32: -12,
    u32: 4000000000,
    i64: -9007199254740991,
    s32: -3,
    u64: 31,
    color: "BLUE",
  });
});

Deno.test("parseTextFormat reads nested messages in every spelling and repeated fields", () => {
  const m = parse(`
    inner { a: 1 tags: "x" tags: "y" child < a: 2 > }
    items: { a: 3 }
    items { a: 4 };
    items: [{ a: 5 }, < a: 6 >]
    values: 1 values: [2, 3.5, -4]
    values: []
    colors: [RED, 5] colors: GREEN`);
  assert.deepEqual(m, {
    inner: { a: 1, tags: ["x", "y"], child: { a: 2 } },
    items: [{ a: 3 }, { a: 4 }, { a: 5 }, { a: 6 }],
    values: [1, 2, 3.5, -4],
    colors: ["RED", "BLUE", "GREEN"],
  });
});

Deno.test("parseTextFormat handles comments, separators and empty input", () => {
  assert.deepEqual(parse(""), {});
  assert.deepEqual(parse("# only a comment\n\n   # another"), {});
  const m = parse('i32: 1, # trailing comment with { and "\n  u32: 2; s: "a#b" # x');
  assert.deepEqual(m, { i32: 1, u32: 2, s: "a#b" });
});

Deno.test("parseTextFormat reads string escapes and concatenates adjacent strings", () => {
  const m = parse(
    `s: "a\\n\\t\\\\\\"\\'" 'single "quoted"' "\\101\\x42\\u00e9\\U0001F600" "é"`,
  );
  assert.equal(m.s, "a\n\t\\\"'" + 'single "quoted"' + "AB\u00e9\u{1F600}é");
});

Deno.test("parseTextFormat reads integers in decimal, hex and octal and floats in every form", () => {
  const m = parse(
    "i32: 010 u32: 0xff values: 1 values: 2. values: .5 values: 1e2 values: 1.5E-1 values: 3f " +
      "values: inf values: -Infinity values: nan values: 0x10",
  );
  assert.equal(m.i32, 8);
  assert.equal(m.u32, 255);
  const v = m.values as number[];
  assert.deepEqual(v.slice(0, 8), [1, 2, 0.5, 100, Math.fround(0.15), 3, Infinity, -Infinity]);
  assert.ok(Number.isNaN(v[8]));
  assert.equal(v[9], 16);
});

Deno.test("parseTextFormat reads booleans in every spelling", () => {
  for (const [text, want] of [["true", true], ["t", true], ["True", true], ["1", true]] as const) {
    assert.equal(parse(`flag: ${text}`).flag, want);
  }
  for (const text of ["false", "f", "False", "0"]) assert.equal(parse(`flag: ${text}`).flag, false);
});

Deno.test("parseTextFormat rounds float fields to float32 and keeps doubles", () => {
  const m = parse("f: 0.1 d: 0.1");
  assert.equal(m.f, Math.fround(0.1));
  assert.equal(m.d, 0.1);
});

Deno.test("locationOf gives where each message and field was written", () => {
  const m = parse("i32: 1\n  inner {\n    a: 2\n  }\nitems: [\n {a: 1}]");
  assert.deepEqual(locationOf(m, "i32"), { line: 1, column: 1 });
  assert.deepEqual(locationOf(m, "inner"), { line: 2, column: 3 });
  assert.deepEqual(locationOf(m.inner as TextMessage), { line: 2, column: 3 });
  assert.deepEqual(locationOf(m.inner as TextMessage, "a"), { line: 3, column: 5 });
  assert.deepEqual(locationOf((m.items as TextMessage[])[0]), { line: 6, column: 2 });
  assert.equal(locationOf(m, "s"), undefined);
  // Locations are not enumerable: results compare like plain objects.
  assert.deepEqual(Object.keys(m), ["i32", "inner", "items"]);
});

Deno.test("withDefaults fills the .proto defaults of absent fields", () => {
  const m = withDefaults(All, parse("i32: 3"));
  assert.equal(m.i32, 3);
  assert.equal(m.flag, true);
  assert.equal(m.f, 0.5);
  assert.equal(m.color, "GREEN");
  assert.equal(m.s, "");
  assert.equal(m.u64, 0);
  assert.deepEqual(m.items, []);
  assert.equal(m.inner, undefined);
});

Deno.test("parseTextFormat reports unknown fields and values with line and column", () => {
  assertParseError("i32: 1\n  nope: 2", 2, 3, /t\.All has no field "nope"/);
  assertParseError("inner {\n  a: 1\n  b: 2 }", 3, 3, /t\.Inner has no field "b"/);
  assertParseError(
    "color: PURPLE",
    1,
    8,
    /"PURPLE" is not a value of enum Color.*RED, GREEN, BLUE/,
  );
  assertParseError("color: 3", 1, 8, /3 is not a value of enum Color/);
  assertParseError('colors: [RED, "x"]', 1, 15, /takes a value of enum Color/);
});

Deno.test("parseTextFormat reports bad numbers and ranges with line and column", () => {
  assertParseError("i32: 2147483648", 1, 6, /out of range for field "i32" \(int32\)/);
  assertParseError("i32: -2147483649", 1, 6, /out of range/);
  assertParseError("u32: -1", 1, 6, /cannot be negative/);
  assertParseError("i32: 1.5", 1, 6, /takes an integer, got "1\.5"/);
  assertParseError("i32: 09", 1, 6, /invalid octal integer "09"/);
  assertParseError("u64: 18446744073709551615", 1, 6, /too large to be represented exactly/);
  assertParseError("f: abc", 1, 4, /takes a number, got "abc"/);
  assertParseError("f: 1.2.3", 1, 4, /invalid number "1\.2\."/);
  assertParseError("i32: 12ab", 1, 6, /invalid number "12a"/);
  assertParseError("flag: yes", 1, 7, /takes true or false, got "yes"/);
  assertParseError("s: 12", 1, 4, /takes a quoted string, got "12"/);
});

Deno.test("parseTextFormat reports broken structure with line and column", () => {
  assertParseError("inner {\n  a: 1\n", 3, 1, /expected "}" to close the Inner message/);
  assertParseError("inner { a: 1 >", 1, 14, /has no field|expected a field name/);
  assertParseError("i32 5", 1, 5, /expected ":" after field "i32", got "5"/);
  assertParseError("inner: 5", 1, 8, /expected "\{" to start the t\.Inner field "inner", got "5"/);
  assertParseError("i32: [1, 2]", 1, 6, /lists are only for repeated fields/);
  assertParseError("values: [1 2]", 1, 12, /expected "," or "]"/);
  assertParseError(
    "i32: 1 i32: 2",
    1,
    8,
    /non-repeated field "i32" is given more than once \(first at line 1\)/,
  );
  assertParseError("}", 1, 1, /expected a field name of t\.All, got "}"/);
  assertParseError("[ext.x]: 1", 1, 1, /extensions and Any fields/);
  assertParseError("i32: 1 @", 1, 8, /unexpected character "@"/);
  assertParseError("req { y: 1 }", 1, 1, /t\.Req is missing its required field "x"/);
});

Deno.test("parseTextFormat reports broken strings with line and column", () => {
  assertParseError('s: "abc', 1, 4, /unterminated string/);
  assertParseError('s: "ab\nc"', 1, 4, /unterminated string/);
  assertParseError('\n  s: "a\\qb"', 2, 8, /unknown escape \\q/);
  assertParseError('s: "\\400"', 1, 5, /octal escape \\400 is above \\377/);
  assertParseError('s: "\\xZZ"', 1, 5, /\\x must be followed by hex digits/);
  assertParseError('s: "\\u12"', 1, 5, /\\u must be followed by 4 hex digits/);
  assertParseError(
    's: "\\UD800DC00"',
    1,
    5,
    /must be followed by 8 hex digits|not a Unicode scalar/,
  );
});

Deno.test("parseTextFormat refuses nesting deeper than 100 levels", () => {
  const deep = "inner { " + "child { ".repeat(120) + "}".repeat(121);
  assert.throws(() => parse(deep), (e: unknown) => {
    assert.ok(e instanceof KilnError && e.code === "PARSE_ERROR");
    assert.match(e.message, /nest deeper than 100/);
    return true;
  });
});

Deno.test("parseTextFormat names <text> when no file is given", () => {
  assert.throws(() => parseTextFormat("x: 1", All), /^KilnError: <text>:1:1: /);
});
