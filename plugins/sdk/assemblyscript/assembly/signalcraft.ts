// AssemblyScript SDK for SignalCraft remediation plugins, ABI v1 (see plugins/ABI.md).
//
// Build with `--runtime stub` (bump allocator, no GC: pointers handed across the
// ABI stay valid for the whole run; the host makes a fresh instance per run):
//
//   npx asc my-plugin.ts --runtime stub -O3 --noAssert -o my-plugin.wasm
//
// A plugin's entry file re-exports the ABI plumbing and defines `remediate`:
//
//   export { alloc, dealloc, signalcraft_abi_version } from "signalcraft";
//   import { Input, Output, output } from "signalcraft";
//   export function remediate(ptr: usize, len: u32): u64 {
//     const input = Input.read(ptr, len);
//     return output(new Output("success", "did nothing"));
//   }

// ---------------------------------------------------------------- host imports

@external("signalcraft:host/v1", "log")
declare function host_log(level: i32, ptr: usize, len: u32): void;

@external("signalcraft:host/v1", "now")
declare function host_now(): i64;

@external("signalcraft:host/v1", "http_request")
declare function host_http_request(ptr: usize, len: u32): i64;

@external("signalcraft:host/v1", "kv_get")
declare function host_kv_get(ptr: usize, len: u32): i64;

@external("signalcraft:host/v1", "kv_set")
declare function host_kv_set(kptr: usize, klen: u32, vptr: usize, vlen: u32): i32;

/** Host-call error codes (negative results). */
export const DENIED: i64 = -1;
export const INVALID: i64 = -2;
export const IO: i64 = -3;
export const NOT_FOUND: i64 = -4;
export const TOO_LARGE: i64 = -5;
export const NO_MEMORY: i64 = -6;

// ---------------------------------------------------------------- ABI exports

/** ABI v1 allocator: the host writes the input (and host-call results) here. */
export function alloc(len: u32): usize {
  return heap.alloc(<usize>len);
}

/** ABI v1: a no-op (the instance is discarded after the run). */
export function dealloc(ptr: usize, len: u32): void {}

/** ABI version this SDK speaks. */
export function signalcraft_abi_version(): i32 {
  return 1;
}

// ---------------------------------------------------------------- bytes and strings

function encode(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

function decode(packed: i64): string {
  const ptr = <usize>(<u64>packed >> 32);
  const len = <usize>(<u64>packed & 0xffffffff);
  return String.UTF8.decodeUnsafe(ptr, len);
}

/** Packs a string as the u64 result of `remediate`. */
export function pack(s: string): u64 {
  const buf = encode(s);
  return (<u64>changetype<usize>(buf) << 32) | <u64>buf.byteLength;
}

// ---------------------------------------------------------------- host helpers

export function log(level: i32, msg: string): void {
  const b = encode(msg);
  host_log(level, changetype<usize>(b), b.byteLength);
}

/** Unix milliseconds from the host's clock. */
export function nowMs(): i64 {
  return host_now();
}

/** Value stored under `key` for this plugin, or null (also when kv is not granted). */
export function kvGet(key: string): string | null {
  const k = encode(key);
  const r = host_kv_get(changetype<usize>(k), k.byteLength);
  return r < 0 ? null : decode(r);
}

/** Stores `value` under `key`; returns 0 or a negative error code. */
export function kvSet(key: string, value: string): i32 {
  const k = encode(key);
  const v = encode(value);
  return host_kv_set(changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
}

export class HttpResponse {
  constructor(
    public ok: bool,
    public error: i64,
    public status: i32,
    public body: string,
  ) {}
}

/** Sends an HTTP request through the host (only to the manifest's allowed_hosts). */
export function http(method: string, url: string, body: string): HttpResponse {
  const req =
    '{"method":' + quote(method) + ',"url":' + quote(url) +
    ',"headers":{"content-type":"application/json"},"body":' + quote(body) + "}";
  const b = encode(req);
  const r = host_http_request(changetype<usize>(b), b.byteLength);
  if (r < 0) return new HttpResponse(false, r, 0, "");
  const doc = decode(r);
  const status = jsonFind(doc, "status");
  const raw = jsonFind(doc, "body");
  return new HttpResponse(true, 0, status == null ? 0 : I32.parseInt(status), raw == null ? "" : unescape(raw));
}

// ---------------------------------------------------------------- JSON

/** Quotes and escapes `s` as a JSON string. */
export function quote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out += '\\"';
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c < 0x20) out += "\\u00" + (c < 16 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + '"';
}

/** Resolves the common escapes of a JSON string body (\" \\ \/ \n \t \r \uXXXX). */
export function unescape(s: string): string {
  if (s.indexOf("\\") < 0) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charAt(i);
    if (c != "\\" || i + 1 >= s.length) {
      out += c;
      continue;
    }
    const e = s.charAt(++i);
    if (e == "n") out += "\n";
    else if (e == "t") out += "\t";
    else if (e == "r") out += "\r";
    else if (e == "u" && i + 4 < s.length) {
      out += String.fromCharCode(<i32>I32.parseInt(s.substr(i + 1, 4), 16));
      i += 4;
    } else out += e;
  }
  return out;
}

function ws(s: string, i: i32): i32 {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
    i++;
  }
  return i;
}

function skip(s: string, i: i32): i32 {
  if (i >= s.length) return -1;
  const c = s.charCodeAt(i);
  if (c == 0x22) {
    for (i++; i < s.length; i++) {
      const d = s.charCodeAt(i);
      if (d == 0x5c) i++;
      else if (d == 0x22) return i + 1;
    }
    return -1;
  }
  if (c == 0x7b || c == 0x5b) {
    let depth = 0;
    for (; i < s.length; i++) {
      const d = s.charCodeAt(i);
      if (d == 0x22) {
        i = skip(s, i);
        if (i < 0) return -1;
        i--;
      } else if (d == 0x7b || d == 0x5b) depth++;
      else if (d == 0x7d || d == 0x5d) {
        if (--depth == 0) return i + 1;
      }
    }
    return -1;
  }
  while (i < s.length) {
    const d = s.charCodeAt(i);
    if (d == 0x2c || d == 0x7d || d == 0x5d || d == 0x20 || d == 0x0a || d == 0x0d || d == 0x09) break;
    i++;
  }
  return i;
}

/**
 * Finds a value by a dotted path of object keys ("params.service"). Strings come back
 * without quotes (escapes left as they are; see `unescape`), other values as raw JSON.
 */
export function jsonFind(json: string, path: string): string | null {
  const segs = path.split(".");
  let i = ws(json, 0);
  for (let k = 0; k < segs.length; k++) {
    if (i >= json.length || json.charCodeAt(i) != 0x7b) return null;
    i = ws(json, i + 1);
    let found = false;
    while (i < json.length && json.charCodeAt(i) == 0x22) {
      const kend = skip(json, i);
      if (kend < 0) return null;
      const key = json.substring(i + 1, kend - 1);
      i = ws(json, kend);
      if (i >= json.length || json.charCodeAt(i) != 0x3a) return null;
      i = ws(json, i + 1);
      if (key == segs[k]) {
        found = true;
        break;
      }
      i = skip(json, i);
      if (i < 0) return null;
      i = ws(json, i);
      if (i < json.length && json.charCodeAt(i) == 0x2c) i = ws(json, i + 1);
    }
    if (!found) return null;
  }
  const end = skip(json, i);
  if (end < 0) return null;
  if (json.charCodeAt(i) == 0x22) return json.substring(i + 1, end - 1);
  return json.substring(i, end);
}

// ---------------------------------------------------------------- input / output

/** The run's input document. */
export class Input {
  constructor(public json: string) {}

  static read(ptr: usize, len: u32): Input {
    return new Input(String.UTF8.decodeUnsafe(ptr, <usize>len));
  }

  /** A value by dotted path, see `jsonFind`. */
  get(path: string): string | null {
    return jsonFind(this.json, path);
  }

  get incidentId(): string {
    const v = this.get("incident_id");
    return v == null ? "" : v;
  }

  get dryRun(): bool {
    const v = this.get("dry_run");
    return v != null && v == "true";
  }

  /** A string parameter, unescaped, or `fallback`. */
  param(name: string, fallback: string = ""): string {
    const v = this.get("params." + name);
    return v == null ? fallback : unescape(v);
  }

  /** An integer parameter, or `fallback`. */
  intParam(name: string, fallback: i64 = 0): i64 {
    const v = this.get("params." + name);
    return v == null ? fallback : I64.parseInt(v);
  }
}

/** The run's result. `details` is a raw JSON object text. */
export class Output {
  details: string = "{}";
  followUp: string = "";

  constructor(public status: string, public message: string) {}

  /** Adds a follow-up without fields: "resolve", "acknowledge" or "mitigate". */
  follow(type: string): Output {
    this.followUp = '{"type":' + quote(type) + "}";
    return this;
  }

  /** Adds a note to the incident timeline. */
  note(text: string): Output {
    this.followUp = '{"type":"note","text":' + quote(text) + "}";
    return this;
  }

  toJson(): string {
    let s = '{"status":' + quote(this.status) + ',"message":' + quote(this.message) + ',"details":' + this.details;
    if (this.followUp.length > 0) s += ',"follow_up":' + this.followUp;
    return s + "}";
  }
}

/** Packs an output as the result of `remediate`. */
export function output(o: Output): u64 {
  return pack(o.toJson());
}
