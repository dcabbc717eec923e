// FlowFilter.experimental.cel_expression: CEL expressions over the variable `_flow`, the flow as
// its protobuf message (proto field names: `_flow.verdict`, `_flow.source.namespace`,
// `_flow.l4.TCP.destination_port`, `_flow.IP.source`). Enums are ints and their values are named
// as in flow.proto (`Verdict.FORWARDED`, also `flow.Verdict.FORWARDED`), as in Hubble, whose
// environment uses the container "flow".
//
// Expressions are parsed and type-checked once; one that does not parse, or whose type is not
// bool, rejects the filter. Several expressions in one filter are ORed. An error while evaluating
// (a key the flow does not have, a type mismatch) makes the expression not match.
import { Environment } from '@marcbachmann/cel-js';
import {
  AuthType,
  DROP_REASON_NAMES,
  type Flow,
  FlowType,
  IPVersion,
  L7FlowType,
  TraceObservationPoint,
  TrafficDirection,
  Verdict,
} from '../flow/flow.js';
import { FilterError } from './filter-error.js';

/** Hubble's limit on the length of one expression. */
export const CEL_EXPRESSION_MAX_CHARS = 4096;

/** The name of the flow in an expression (`flow` would clash with the proto package). */
export const CEL_FLOW_VARIABLE = '_flow';

/** Compiles the expressions of one filter into a predicate: true when any of them is true. */
export function compileCelExpressions(exprs: readonly string[], path: string): (flow: Flow) => boolean {
  const env = celEnvironment();
  const programs = exprs.map((expr, i) => {
    const at = `${path}[${i}]`;
    if (expr.length > CEL_EXPRESSION_MAX_CHARS)
      throw new FilterError(at, `a CEL expression of at most ${CEL_EXPRESSION_MAX_CHARS} characters`, expr);
    let program: (ctx: Record<string, unknown>) => unknown;
    try {
      program = env.parse(expr) as (ctx: Record<string, unknown>) => unknown;
    } catch (err) {
      throw new FilterError(at, `a CEL expression (${firstLine(err)})`, expr);
    }
    const checked = env.check(expr);
    if (!checked.valid) throw new FilterError(at, `a CEL expression (${firstLine(checked.error)})`, expr);
    // A field read from `_flow` is dyn to the checker; its value is tested at evaluation.
    if (checked.type !== 'bool' && checked.type !== 'dyn')
      throw new FilterError(at, `a CEL expression of type bool, not ${checked.type}`, expr);
    return program;
  });
  return (flow) => {
    const ctx = { [CEL_FLOW_VARIABLE]: celFlow(flow) };
    for (const program of programs) {
      try {
        if (program(ctx) === true) return true;
      } catch {
        // No such key, no matching overload: this expression does not match this flow.
      }
    }
    return false;
  };
}

/**
 * The flow as CEL sees it: integers as CEL ints (bigint), the BoolValue `is_reply` unwrapped (null
 * when unknown), `time` as a timestamp, and the top-level enums and strings that a flow may leave
 * out set to their proto defaults. Messages the flow does not have stay absent, so
 * `has(_flow.l4.TCP)` tells TCP flows apart. Cached per flow object: flows are not changed once
 * stored, and several filters may look at the same flow.
 */
export function celFlow(flow: Flow): Record<string, unknown> {
  const cached = CACHE.get(flow);
  if (cached !== undefined) return cached;
  const out = toCel(flow) as Record<string, unknown>;
  for (const [k, v] of TOP_LEVEL_DEFAULTS) if (out[k] === undefined) out[k] = v;
  const isReply = (flow as { is_reply?: { value?: boolean } }).is_reply;
  out.is_reply = isReply === undefined || isReply === null ? null : isReply.value === true;
  const time = (flow as { time?: { seconds?: number | string; nanos?: number } }).time;
  if (time !== undefined && time !== null)
    out.time = new Date(Number(time.seconds ?? 0) * 1000 + Math.floor((time.nanos ?? 0) / 1e6));
  CACHE.set(flow, out);
  return out;
}

const CACHE = new WeakMap<object, Record<string, unknown>>();

const TOP_LEVEL_DEFAULTS: readonly [string, unknown][] = [
  ['verdict', 0n],
  ['drop_reason_desc', 0n],
  ['traffic_direction', 0n],
  ['Type', 0n],
  ['trace_observation_point', 0n],
  ['node_name', ''],
  ['source_names', []],
  ['destination_names', []],
];

let env: Environment | undefined;

function celEnvironment(): Environment {
  if (env !== undefined) return env;
  const enums: Record<string, Readonly<Record<string, number>>> = {
    Verdict,
    FlowType,
    TrafficDirection,
    IPVersion,
    L7FlowType,
    AuthType,
    TraceObservationPoint,
    DropReason: Object.fromEntries(Object.entries(DROP_REASON_NAMES).map(([n, name]) => [name, Number(n)])),
  };
  const asMap = (values: Readonly<Record<string, number>>) =>
    new Map(Object.entries(values).map(([k, v]) => [k, BigInt(v)]));
  let e = new Environment().registerVariable(CEL_FLOW_VARIABLE, 'map');
  const pkg = new Map<string, Map<string, bigint>>();
  for (const [name, values] of Object.entries(enums)) {
    e = e.registerConstant(name, 'map', asMap(values));
    pkg.set(name, asMap(values));
  }
  env = e.registerConstant('flow', 'map', pkg);
  return env;
}

function toCel(v: unknown): unknown {
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(toCel);
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Uint8Array) return v;
  const out: Record<string, unknown> = {};
  const obj = v as Record<string, unknown>;
  for (const k in obj) {
    const x = obj[k];
    if (x !== undefined) out[k] = toCel(x);
  }
  return out;
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}
