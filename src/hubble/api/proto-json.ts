// Protobuf JSON ("jsonpb") for the flow API, as Hubble prints it: proto field names, enum names,
// 64-bit integers as strings, RFC 3339 timestamps, wrapper types as bare values, default values
// left out. Reading accepts proto or lowerCamelCase names, enum names or numbers, and integers
// as numbers or strings, and gives back the proto objects the flow model uses.
import protobuf from 'protobufjs';

export class ProtoJsonError extends Error {
  readonly code = 'MBR_FLOW_JSON_INVALID';
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly got: string,
  ) {
    super(`${path}: expected ${expected}, got ${got}`);
    this.name = 'ProtoJsonError';
  }
}

export function toProtoJson(type: protobuf.Type, obj: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const o = obj as Record<string, unknown>;
  for (const field of type.fieldsArray) {
    const v = o[field.name];
    if (v === undefined || v === null) continue;
    if (field.repeated) {
      const arr = v as unknown[];
      if (arr.length === 0) continue;
      out[field.name] = arr.map((x) => valueToJson(field, x));
      continue;
    }
    const resolved = field.resolvedType;
    if (!(resolved instanceof protobuf.Type) && isDefault(v) && field.partOf === null) continue;
    out[field.name] = valueToJson(field, v);
  }
  return out;
}

export function fromProtoJson(
  type: protobuf.Type,
  json: unknown,
  path: string,
  opts: { ignoreUnknown?: boolean } = {},
): Record<string, unknown> {
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new ProtoJsonError(path, `a JSON object for ${type.name}`, describe(json));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(json as Record<string, unknown>)) {
    // Own properties only: "constructor" or "__proto__" must not find Object.prototype's members.
    const field = Object.hasOwn(type.fields, key) ? type.fields[key] : fieldByJsonName(type, key);
    if (field === undefined) {
      if (opts.ignoreUnknown) continue;
      throw new ProtoJsonError(`${path}.${key}`, `a field of ${type.name}`, 'an unknown field');
    }
    if (v === null) continue;
    const fpath = `${path}.${field.name}`;
    if (field.repeated) {
      if (!Array.isArray(v)) throw new ProtoJsonError(fpath, 'a JSON array', describe(v));
      out[field.name] = v.map((x, i) => valueFromJson(field, x, `${fpath}[${i}]`, opts));
    } else out[field.name] = valueFromJson(field, v, fpath, opts);
  }
  return out;
}

/** RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as protobuf JSON writes Timestamps. */
export function formatTimestamp(seconds: number, nanos: number): string {
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  if (nanos === 0) return `${base}Z`;
  let frac = String(nanos).padStart(9, '0');
  if (frac.endsWith('000000')) frac = frac.slice(0, 3);
  else if (frac.endsWith('000')) frac = frac.slice(0, 6);
  return `${base}.${frac}Z`;
}

export function parseTimestamp(text: string, path: string): { seconds: number; nanos: number } {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  const ms = m === null ? Number.NaN : Date.parse(`${m[1]}${m[3]}`);
  if (m === null || Number.isNaN(ms))
    throw new ProtoJsonError(path, 'an RFC 3339 timestamp like "2026-01-02T03:04:05.123456789Z"', JSON.stringify(text));
  return { seconds: Math.floor(ms / 1000), nanos: Number((m[2] ?? '').padEnd(9, '0')) };
}

const WRAPPERS = new Set([
  'google.protobuf.BoolValue',
  'google.protobuf.Int32Value',
  'google.protobuf.UInt32Value',
  'google.protobuf.Int64Value',
  'google.protobuf.UInt64Value',
  'google.protobuf.StringValue',
  'google.protobuf.DoubleValue',
  'google.protobuf.FloatValue',
]);
// [min, max, what] per integer type. 64-bit values are held as JS numbers, so they must be exact
// (within 2^53); a bigger one would silently read as a different number.
const INTEGER_RANGES: Readonly<Record<string, readonly [number, number, string]>> = {
  int32: [-2147483648, 2147483647, 'an int32'],
  sint32: [-2147483648, 2147483647, 'an int32'],
  sfixed32: [-2147483648, 2147483647, 'an int32'],
  uint32: [0, 4294967295, 'a uint32'],
  fixed32: [0, 4294967295, 'a uint32'],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'an int64'],
  sint64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'an int64'],
  sfixed64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'an int64'],
  uint64: [0, Number.MAX_SAFE_INTEGER, 'a uint64'],
  fixed64: [0, Number.MAX_SAFE_INTEGER, 'a uint64'],
};
const LONG_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

// protobufjs rebuilds fullName from the parent chain on every read; replays ask once per field.
const FULL_NAMES = new WeakMap<protobuf.Type, string>();

function fullName(t: protobuf.Type): string {
  let name = FULL_NAMES.get(t);
  if (name === undefined) {
    name = t.fullName.replace(/^\./, '');
    FULL_NAMES.set(t, name);
  }
  return name;
}

function isDefault(v: unknown): boolean {
  return v === 0 || v === '' || v === false || (typeof v === 'object' && v !== null && 'low' in v && Number(v) === 0);
}

function valueToJson(field: protobuf.Field, v: unknown): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Enum) return rt.valuesById[v as number] ?? v;
  if (rt instanceof protobuf.Type) {
    const name = fullName(rt);
    const o = v as Record<string, unknown>;
    if (name === 'google.protobuf.Timestamp') return formatTimestamp(Number(o.seconds ?? 0), Number(o.nanos ?? 0));
    if (WRAPPERS.has(name)) {
      const inner = o.value ?? (name.endsWith('BoolValue') ? false : name.endsWith('StringValue') ? '' : 0);
      return name.endsWith('64Value') ? String(inner) : inner;
    }
    if (name === 'google.protobuf.FieldMask') return ((o.paths as string[]) ?? []).join(',');
    if (name === 'google.protobuf.Any') return undefined;
    return toProtoJson(rt, o);
  }
  if (LONG_TYPES.has(field.type)) return String(v);
  return v;
}

function valueFromJson(field: protobuf.Field, v: unknown, path: string, opts: { ignoreUnknown?: boolean }): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Enum) {
    if (typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647) return v;
    if (typeof v === 'string' && Object.hasOwn(rt.values, v)) return rt.values[v];
    // Like protojson's DiscardUnknown: a name from a newer schema reads as the zero value.
    if (opts.ignoreUnknown && typeof v === 'string') return 0;
    throw new ProtoJsonError(path, `one of ${Object.keys(rt.values).join(', ')}`, describe(v));
  }
  if (rt instanceof protobuf.Type) {
    const name = fullName(rt);
    if (name === 'google.protobuf.Timestamp') {
      if (typeof v !== 'string') throw new ProtoJsonError(path, 'an RFC 3339 timestamp string', describe(v));
      return parseTimestamp(v, path);
    }
    if (WRAPPERS.has(name)) {
      const inner = rt.fields.value!;
      return { value: scalarFromJson(inner.type, v, path) };
    }
    if (name === 'google.protobuf.FieldMask') {
      if (typeof v !== 'string') throw new ProtoJsonError(path, 'a comma-separated field mask string', describe(v));
      return { paths: v === '' ? [] : v.split(',').map(snakeCase) };
    }
    if (name === 'google.protobuf.Any') return undefined;
    return fromProtoJson(rt, v, path, opts);
  }
  const n = scalarFromJson(field.type, v, path);
  // Ports are uint32 on the wire, but no port is above 65535: a bigger one is a corrupt line.
  if (
    typeof n === 'number' &&
    field.type === 'uint32' &&
    (field.name === 'port' || field.name.endsWith('_port')) &&
    n > 65535
  )
    throw new ProtoJsonError(path, 'a port 0-65535', describe(v));
  return n;
}

function scalarFromJson(type: string, v: unknown, path: string): unknown {
  switch (type) {
    case 'string':
      if (typeof v !== 'string') throw new ProtoJsonError(path, 'a string', describe(v));
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw new ProtoJsonError(path, 'true or false', describe(v));
      return v;
    case 'bytes':
      if (typeof v !== 'string') throw new ProtoJsonError(path, 'base64 bytes', describe(v));
      return Buffer.from(v, 'base64');
    case 'double':
    case 'float': {
      const n = typeof v === 'string' ? Number(v) : v;
      if (typeof n !== 'number' || Number.isNaN(n)) throw new ProtoJsonError(path, 'a number', describe(v));
      return n;
    }
    default: {
      const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isInteger(n)) throw new ProtoJsonError(path, 'an integer', describe(v));
      const range = INTEGER_RANGES[type];
      if (range !== undefined && (n < range[0] || n > range[1]))
        throw new ProtoJsonError(path, `${range[2]} ${range[0]}-${range[1]}`, describe(v));
      return n;
    }
  }
}

function fieldByJsonName(type: protobuf.Type, key: string): protobuf.Field | undefined {
  for (const f of type.fieldsArray) if (camelCase(f.name) === key) return f;
  return undefined;
}

function camelCase(s: string): string {
  return s.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function snakeCase(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'an object' : JSON.stringify(v);
}
