// The page's filters, applied on the server: query parameters named after `membrane observe`'s
// filter flags (`namespace=shop`, `to-pod=db/`, `verdict=DROPPED`, `not`, `http-status=5+`, ...),
// in order, go through the CLI's own flag-to-FlowFilter builder and the filter compiler, so the
// page and `membrane observe` mean the same thing by the same words. `since`/`until` take
// observe's time syntax; `ns` (repeatable) is the map's namespace selection and narrows the table
// to flows with a side in one of them.
import { Option } from 'commander';
import { buildFilters, filterFlagNames, parseTimeArg } from '../cli/commands/observe.js';
import { compileFlowFilters, type FlowFilter } from '../hubble/filters/flow-filter.js';
import { compareTimestamps, type Flow, type Timestamp } from '../hubble/flow/flow.js';

export class UiFilterError extends Error {
  readonly code = 'MBR_UI_FILTER';
}

export interface UiFilter {
  readonly match: (f: Flow) => boolean;
  readonly whitelist: FlowFilter[];
  readonly blacklist: FlowFilter[];
  readonly namespaces: string[];
}

/** Parameters that are not filters. */
const NON_FILTER = new Set(['ns', 'since', 'until', 'before', 'after', 'limit', 'format', 'seq']);

export function compileUiFilter(params: URLSearchParams, nowMs: number): UiFilter {
  const known = new Set(filterFlagNames());
  const ops: [string, string | true][] = [];
  for (const [k, v] of params) {
    if (NON_FILTER.has(k)) continue;
    if (!known.has(k)) throw new UiFilterError(`filter ${JSON.stringify(k)}: expected a membrane observe filter flag`);
    ops.push([new Option(`--${k}`).attributeName(), v]);
  }
  let whitelist: FlowFilter[];
  let blacklist: FlowFilter[];
  let match: (f: Flow) => boolean;
  let since: Timestamp | undefined;
  let until: Timestamp | undefined;
  try {
    ({ whitelist, blacklist } = buildFilters(ops));
    match = compileFlowFilters(whitelist, blacklist);
    const s = params.get('since');
    const u = params.get('until');
    if (s) since = parseTimeArg(s, 'since', nowMs);
    if (u) until = parseTimeArg(u, 'until', nowMs);
  } catch (e) {
    throw new UiFilterError((e as Error).message);
  }
  const namespaces = params.getAll('ns').filter((n) => n !== '');
  const nsSet = new Set(namespaces);
  const inNamespaces = (f: Flow) =>
    nsSet.has(f.source?.namespace ?? '\u0000') || nsSet.has(f.destination?.namespace ?? '\u0000');
  const preds: ((f: Flow) => boolean)[] = [];
  if (whitelist.length > 0 || blacklist.length > 0) preds.push(match);
  if (nsSet.size > 0) preds.push(inNamespaces);
  if (since !== undefined) preds.push((f) => compareTimestamps(f.time, since) >= 0);
  if (until !== undefined) preds.push((f) => compareTimestamps(f.time, until) <= 0);
  const all =
    preds.length === 0
      ? () => true
      : preds.length === 1
        ? preds[0]!
        : (f: Flow) => {
            for (const p of preds) if (!p(f)) return false;
            return true;
          };
  return { match: all, whitelist, blacklist, namespaces };
}
