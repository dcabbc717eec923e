// Fuzzes the flow JSON decoder behind `membrane observe --input-file` (fromProtoJson on each line,
// as flow.Flow or observer.GetFlowsResponse) and the FlowFilter path (--allowlist/--denylist JSON
// decoded the same way, then compileFlowFilter): they return or throw ProtoJsonError / FilterError
// (an MBR_ code), never a TypeError or a RangeError.
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { fromProtoJson } from '../../src/hubble/api/proto-json.js';
import { protoType } from '../../src/hubble/api/proto-root.js';
import { compileFlowFilter, type FlowFilter } from '../../src/hubble/filters/flow-filter.js';
import type { Flow } from '../../src/hubble/flow/flow.js';
import { fuzzProperty, hasMembraneCode, hostileJson, mutatedJson, returnsOrThrowsTyped } from '../support/fuzz.js';

const GOLDEN = new URL('../../../test/golden/hubble/hubble-observe.jsonpb', import.meta.url).pathname;
const goldenLines: unknown[] = readFileSync(GOLDEN, 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => JSON.parse(l));
const responseType = protoType('observer.GetFlowsResponse');
const flowType = protoType('flow.Flow');
const filterType = protoType('flow.FlowFilter');

const typed = (parse: () => unknown) => returnsOrThrowsTyped(parse, hasMembraneCode);

/**
 * One --input-file line's object, read both ways the replay reads a line; a flow that decodes is
 * matched against the seed filters below, since whatever decodes reaches the filters.
 */
function decodeLine(json: unknown): void {
  const flows: Flow[] = [];
  typed(() => {
    const r = fromProtoJson(responseType, json, 'f:1', { ignoreUnknown: true }) as { flow?: Flow };
    if (r.flow !== undefined) flows.push(r.flow);
  });
  typed(() => flows.push(fromProtoJson(flowType, json, 'f:1', { ignoreUnknown: true }) as Flow));
  for (const f of flows) for (const match of seedMatchers()) match(f);
}

/** The golden flows, decoded: a compiled filter is run on each (matching must not throw either). */
const goldenFlows = goldenLines
  .map((l) => (fromProtoJson(responseType, l, 'golden', { ignoreUnknown: true }) as { flow?: Flow }).flow)
  .filter((f): f is Flow => f !== undefined);

/** Compiles a filter (a typed error is fine) and, if it compiles, matches it against every golden flow. */
function compileAndMatch(filter: () => FlowFilter): void {
  let match: ((f: Flow) => boolean) | undefined;
  typed(() => {
    match = compileFlowFilter(filter(), 'whitelist[0]');
  });
  if (match !== undefined) for (const f of goldenFlows) match(f);
}

/** A FlowFilter from JSON, decoded and compiled as observe does with --allowlist. */
function compileFilterJson(json: unknown): void {
  compileAndMatch(() => fromProtoJson(filterType, json, '--allowlist') as FlowFilter);
}

const FILTER_SEEDS: FlowFilter[] = [
  { source_pod: ['shop/frontend'], verdict: [2] },
  { destination_ip: ['10.0.0.0/8', '192.168.1.1'], destination_port: ['80', '443'], protocol: ['tcp'] },
  { source_label: ['k8s:app=frontend', 'env in (prod, staging)'], http_status_code: ['40+', '503'] },
  { destination_fqdn: ['*.example.com'], dns_query: ['^api\\.'], http_path: ['^/v1/.*'], http_method: ['GET'] },
  { node_name: ['cluster/node*'], source_workload: [{ kind: 'Deployment', name: 'frontend' }] },
  { tcp_flags: [{ SYN: true }], event_type: [{ type: 1, match_sub_type: true, sub_type: 3 }], reply: [false] },
  { http_header: [{ key: 'x-id', value: 'a' }], interface: [{ index: 3, name: 'mbr-veth3' }], ip_version: [1] },
];
const filterSeedsJson: unknown[] = FILTER_SEEDS.map((f) => JSON.parse(JSON.stringify(f)));
let compiledSeeds: Array<(f: Flow) => boolean> | undefined;
function seedMatchers(): Array<(f: Flow) => boolean> {
  compiledSeeds ??= FILTER_SEEDS.map((f, i) => compileFlowFilter(f, `seed[${i}]`));
  return compiledSeeds;
}

/** A FlowFilter as the gRPC decoder hands it over: right types, any strings and numbers. */
const typedFilter: fc.Arbitrary<FlowFilter> = (() => {
  const strs = fc.array(
    fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.constantFrom('*', '**', '/', 'a/', '/b', '0/0', '::/0', '1.2.3.4/33', '(', 'a in (', '40+', '9+', '-1'),
    ),
    { maxLength: 3 },
  );
  const nums = fc.array(fc.oneof(fc.integer(), fc.constantFrom(0, 2 ** 32, -1)), { maxLength: 3 });
  return fc.record(
    {
      uuid: strs,
      source_ip: strs,
      source_pod: strs,
      source_fqdn: strs,
      source_label: strs,
      source_service: strs,
      source_cluster_name: strs,
      destination_ip: strs,
      destination_port: strs,
      destination_fqdn: strs,
      http_status_code: strs,
      protocol: strs,
      dns_query: strs,
      http_method: strs,
      http_path: strs,
      http_url: strs,
      node_name: strs,
      node_labels: strs,
      trace_id: strs,
      verdict: nums,
      traffic_direction: nums,
      drop_reason_desc: nums,
      source_identity: nums,
      ip_version: nums,
      source_workload: fc.array(fc.record({ kind: fc.string(), name: fc.string() }, { requiredKeys: [] }), {
        maxLength: 2,
      }),
      interface: fc.array(fc.record({ index: fc.integer(), name: fc.string() }, { requiredKeys: [] }), {
        maxLength: 2,
      }),
      event_type: fc.array(
        fc.record({ type: fc.integer(), match_sub_type: fc.boolean(), sub_type: fc.integer() }, { requiredKeys: [] }),
        { maxLength: 2 },
      ),
      http_header: fc.array(fc.record({ key: fc.string(), value: fc.string() }, { requiredKeys: [] }), {
        maxLength: 2,
      }),
    },
    { requiredKeys: [] },
  );
})();

describe('fuzzing the flow JSON decoder and the flow filter compiler', () => {
  it('decodes any JSON line to a flow or a typed error, and filters match the flow', () => {
    fuzzProperty(fc.string({ unit: 'binary', maxLength: 300 }), (line) => {
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch {
        return; // the replay reports a line that is not JSON before decoding it
      }
      decodeLine(json);
    });
  });

  it('decodes any JSON value to a flow or a typed error, and filters match the flow', () => {
    fuzzProperty(hostileJson(), (json) => decodeLine(json));
  });

  it('decodes a mutated golden flow line (values, keys and types changed) or throws a typed error, and filters match the flow', () => {
    fuzzProperty(fc.constantFrom(...goldenLines).chain(mutatedJson), (json) => decodeLine(json));
  });

  it('decodes a flow line with keys named like Object.prototype members to a flow or a typed error', () => {
    fuzzProperty(fc.constantFrom(...goldenLines).chain(mutatedJson), (json) => decodeLine(json));
  });

  it('compiles any FlowFilter JSON or throws a typed error, and matches flows', () => {
    fuzzProperty(hostileJson(), (json) => compileFilterJson(json));
  });

  it('compiles a mutated valid FlowFilter JSON or throws a typed error, and matches flows', () => {
    fuzzProperty(fc.constantFrom(...filterSeedsJson).chain(mutatedJson), (json) => compileFilterJson(json));
  });

  it('compiles any well-typed FlowFilter (as gRPC decodes one) or throws a typed error, and matches flows', () => {
    fuzzProperty(typedFilter, (f) => compileAndMatch(() => f));
  });
});
