// The page: header (connection, namespaces, live/paused, export), filter bar, service map, flow
// table and a details panel. All data comes from /api/events (aggregated map, sampled rows) and
// small requests for pages, details and policies; filters are compiled on the server.
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type {
  Card,
  CardPolicies,
  FlowDetails,
  FlowRow,
  MapEdge,
  MapEvent,
  RowsEvent,
  StatusEvent,
} from '../../src/ui/ui-api-types.js';
import {
  BOOLEAN_FLAGS,
  COMMON_FLAGS,
  type Filter,
  parseFilterText,
  readHash,
  toQuery,
  type ViewState,
  writeHash,
} from './filters.js';
import { FlowTable } from './flow-table.js';
import { applyMapEvent, type MapSelection, MapView, newMapModel } from './map-view.js';
import { openRawFeed, rawFeedUrl } from './raw-feed.js';

/** Rows kept in the browser; older ones are paged from the server on demand. */
const MAX_ROWS = 5000;

type Connection = 'connecting' | 'connected' | 'disconnected';

export function App() {
  const [view, setView] = useState<ViewState>(readHash);
  const [conn, setConn] = useState<Connection>('connecting');
  const [status, setStatus] = useState<StatusEvent | undefined>();
  const model = useRef(newMapModel());
  const [mapVersion, setMapVersion] = useState(0);
  const [rows, setRows] = useState<readonly FlowRow[]>([]);
  const [paused, setPaused] = useState(false);
  const [pending, setPending] = useState(0);
  const [error, setError] = useState<string | undefined>();
  const [selection, setSelection] = useState<MapSelection | undefined>();
  const [detailSeq, setDetailSeq] = useState<number | undefined>();
  const cards = useRef(new Map<string, Card>());
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  useEffect(() => writeHash(view), [view]);
  // A pasted or bookmarked link, or back/forward, changes the view.
  useEffect(() => {
    const onHash = () => setView(readHash());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  // One EventSource per view; the browser reconnects it by itself (the server asks for 1 s).
  useEffect(() => {
    const raw = rawFeedUrl();
    if (raw !== undefined)
      return openRawFeed(
        raw,
        (m) => {
          for (const c of m.newCards) cards.current.set(c.id, c);
          applyMapEvent(model.current, m);
          setMapVersion((v) => v + 1);
        },
        (r) => {
          if (!pausedRef.current) setRows(r);
        },
        () => setConn('connected'),
      );
    let closed = false;
    let es: EventSource | undefined;
    let retry: number | undefined;
    const open = async () => {
      // Check the filters first: an EventSource cannot read a 400's message.
      const check = await fetch(`/api/flows?${toQuery(view, { limit: '1' })}`).catch(() => undefined);
      if (closed) return;
      if (check === undefined) {
        setConn('disconnected');
        retry = window.setTimeout(open, 1000);
        return;
      }
      if (check.status === 400) {
        setError(((await check.json()) as { error: string }).error);
        return;
      }
      setError(undefined);
      es = new EventSource(`/api/events?${toQuery(view)}`);
      cards.current = new Map();
      es.onopen = () => setConn('connected');
      es.onerror = () => {
        setConn('disconnected');
        if (es?.readyState === EventSource.CLOSED) {
          es = undefined;
          retry = window.setTimeout(open, 1000);
        }
      };
      es.addEventListener('status', (e) => setStatus(JSON.parse((e as MessageEvent).data)));
      es.addEventListener('map', (e) => {
        const m = JSON.parse((e as MessageEvent).data) as MapEvent;
        for (const c of m.newCards) cards.current.set(c.id, c);
        applyMapEvent(model.current, m);
        setMapVersion((v) => v + 1);
      });
      es.addEventListener('rows', (e) => {
        const r = JSON.parse((e as MessageEvent).data) as RowsEvent;
        if (r.initial) {
          setRows(r.rows);
          setPending(0);
          return;
        }
        if (pausedRef.current) {
          setPending((n) => n + r.rows.length);
          return;
        }
        setRows((old) => {
          const next = r.rows.concat(old);
          return next.length > MAX_ROWS ? next.slice(0, MAX_ROWS) : next;
        });
      });
    };
    setConn('connecting');
    void open();
    return () => {
      closed = true;
      if (retry !== undefined) clearTimeout(retry);
      es?.close();
    };
  }, [toQuery(view)]);

  const setFilters = useCallback((filters: readonly Filter[]) => setView((v) => ({ ...v, filters })), []);
  const addFilters = useCallback(
    (add: readonly Filter[]) => setView((v) => ({ ...v, filters: [...v.filters, ...add] })),
    [],
  );

  const selectCard = (id: string) => {
    const c = cards.current.get(id);
    setSelection({ kind: 'card', id });
    setDetailSeq(undefined);
    if (c !== undefined) setFilters([[c.match.flag, c.match.value]]);
  };
  const selectEdge = (e: MapEdge) => {
    const s = cards.current.get(e.source);
    const t = cards.current.get(e.target);
    setSelection({ kind: 'edge', id: e.id });
    setDetailSeq(undefined);
    const f: Filter[] = [];
    if (s !== undefined) f.push([`from-${s.match.flag}`, s.match.value]);
    if (t !== undefined) f.push([`to-${t.match.flag}`, t.match.value]);
    if (e.port > 0 && (e.protocol === 'TCP' || e.protocol === 'UDP' || e.protocol === 'SCTP'))
      f.push(['to-port', String(e.port)]);
    if (e.protocol !== 'ANY') f.push(['protocol', e.protocol.toLowerCase()]);
    setFilters(f);
  };

  const loadOlder = async () => {
    const oldest = rows[rows.length - 1];
    if (oldest === undefined) return;
    const r = await fetch(`/api/flows?${toQuery(view, { before: String(oldest.seq), limit: '500' })}`);
    if (!r.ok) return;
    const page = (await r.json()) as { rows: FlowRow[] };
    setRows((old) => old.concat(page.rows));
  };

  const togglePause = () => {
    if (paused) {
      setPending(0);
      // Resume from the newest rows.
      void fetch(`/api/flows?${toQuery(view, { limit: '200' })}`)
        .then((r) => r.json())
        .then((p: { rows: FlowRow[] }) => setRows(p.rows));
    }
    setPaused(!paused);
  };

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA') return;
      if (e.key === '/') {
        document.getElementById('filter-input')?.focus();
        e.preventDefault();
      } else if (e.key === 'p' || e.key === ' ') {
        if (t.classList.contains('tbody') && e.key === ' ') return;
        togglePause();
        e.preventDefault();
      } else if (e.key === 'Escape') {
        setDetailSeq(undefined);
        setSelection(undefined);
      } else if (e.key === 'm') document.querySelector<HTMLElement>('.map')?.focus();
      else if (e.key === 't') document.querySelector<HTMLElement>('.tbody')?.focus();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });

  const relayDown = status !== undefined && !status.relay.connected;
  const query = toQuery(view);
  const map = model.current;
  const dropped = useMemo(() => {
    let n = 0;
    for (const e of map.edges.values()) if (e.state !== 'forwarded') n++;
    return n;
  }, [mapVersion]);

  return (
    <div class="app">
      <header>
        <h1>Membrane</h1>
        <span class={`conn ${conn}`} role="status" aria-live="polite">
          {conn === 'connected'
            ? relayDown
              ? `Relay disconnected: ${status?.relay.error ?? ''} (reconnecting)`
              : 'Live'
            : conn === 'connecting'
              ? 'Connecting…'
              : 'Disconnected from the UI server (reconnecting)'}
        </span>
        <NamespacePicker
          all={map.namespaces}
          selected={view.namespaces}
          onChange={(namespaces) => setView((v) => ({ ...v, namespaces }))}
        />
        <span class="counts">
          {map.last
            ? `${map.cards.length} cards · ${map.edges.size} edges (${dropped} with drops) · ${map.flowsInWindow} flows / ${map.windowSeconds}s`
            : ''}
        </span>
        <button type="button" onClick={togglePause} aria-pressed={paused} title="Pause or resume the table (p)">
          {paused ? `Resume${pending ? ` (${pending} new)` : ''}` : 'Pause'}
        </button>
        <a class="button" href={`/api/export?${query}&format=jsonpb`} download data-testid="export-json">
          Export JSON
        </a>
        <a class="button" href={`/api/export?${query}&format=csv`} download data-testid="export-csv">
          Export CSV
        </a>
      </header>
      <FilterBar filters={view.filters} error={error} onChange={setFilters} onAdd={addFilters} />
      <main>
        <section class="left">
          <MapView
            model={map}
            version={mapVersion}
            cards={cards.current}
            selection={selection}
            onSelectCard={selectCard}
            onSelectEdge={selectEdge}
            onClear={() => setSelection(undefined)}
          />
          <div class="table-wrap">
            <FlowTable
              rows={rows}
              selectedSeq={detailSeq}
              onSelect={(seq) => {
                setDetailSeq(seq);
              }}
            />
            <div class="table-foot">
              <span>
                {rows.length} rows{paused ? ' (paused)' : ''}
              </span>
              <button type="button" onClick={loadOlder}>
                Load older
              </button>
            </div>
          </div>
        </section>
        {(detailSeq !== undefined || selection !== undefined) && (
          <aside class="details" aria-label="Details">
            <button
              type="button"
              class="close"
              aria-label="Close details"
              onClick={() => {
                setDetailSeq(undefined);
                setSelection(undefined);
              }}
            >
              ×
            </button>
            {detailSeq !== undefined ? (
              <FlowDetailsPanel seq={detailSeq} />
            ) : selection?.kind === 'edge' ? (
              <EdgePanel edge={map.edges.get(selection.id)} />
            ) : (
              <CardPanel id={selection!.id} policyView={status?.policyView === true} />
            )}
          </aside>
        )}
      </main>
    </div>
  );
}

function NamespacePicker(p: { all: readonly string[]; selected: readonly string[]; onChange: (ns: string[]) => void }) {
  const options = [...new Set([...p.all, ...p.selected])].sort();
  const summary = p.selected.length === 0 ? 'all namespaces' : p.selected.join(', ');
  return (
    <details class="ns">
      <summary>Namespaces: {summary}</summary>
      <fieldset>
        <legend>Namespaces (none checked: all)</legend>
        {options.map((ns) => (
          <label key={ns}>
            <input
              type="checkbox"
              name="ns"
              value={ns}
              checked={p.selected.includes(ns)}
              onChange={(e) =>
                p.onChange(
                  (e.currentTarget as HTMLInputElement).checked
                    ? [...p.selected, ns]
                    : p.selected.filter((x) => x !== ns),
                )
              }
            />{' '}
            {ns}
          </label>
        ))}
        {options.length === 0 && <span>No namespaces seen yet.</span>}
      </fieldset>
    </details>
  );
}

function FilterBar(p: {
  filters: readonly Filter[];
  error: string | undefined;
  onChange: (f: readonly Filter[]) => void;
  onAdd: (f: readonly Filter[]) => void;
}) {
  const [text, setText] = useState('');
  const [flag, setFlag] = useState<string>('verdict');
  const [value, setValue] = useState('');
  return (
    <div class="filters">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const f = parseFilterText(text);
          if (f.length > 0) p.onAdd(f);
          setText('');
        }}
      >
        <input
          id="filter-input"
          value={text}
          placeholder="--verdict DROPPED --to-namespace db   (press / to focus)"
          aria-label="Filters, as membrane observe flags"
          onInput={(e) => setText((e.currentTarget as HTMLInputElement).value)}
        />
      </form>
      <form
        class="picker"
        onSubmit={(e) => {
          e.preventDefault();
          if (value === '' && !BOOLEAN_FLAGS.has(flag)) return;
          p.onAdd([[flag, value]]);
          setValue('');
        }}
      >
        <select
          aria-label="Filter flag"
          value={flag}
          onChange={(e) => setFlag((e.currentTarget as HTMLSelectElement).value)}
        >
          {COMMON_FLAGS.map((f) => (
            <option key={f} value={f}>
              {f}
            </option>
          ))}
          <option value="since">since</option>
          <option value="until">until</option>
        </select>
        <input
          aria-label="Filter value"
          value={value}
          placeholder={PLACEHOLDERS[flag] ?? 'value'}
          onInput={(e) => setValue((e.currentTarget as HTMLInputElement).value)}
        />
        <button type="submit">Add</button>
      </form>
      <ul class="chips" aria-label="Active filters">
        {p.filters.map(([f, v], i) => (
          <li key={`${i}-${f}-${v}`} class="chip">
            <span>
              --{f}
              {v !== '' ? ` ${v}` : ''}
            </span>
            <button
              type="button"
              aria-label={`Remove filter ${f} ${v}`}
              onClick={() => p.onChange(p.filters.filter((_, j) => j !== i))}
            >
              ×
            </button>
          </li>
        ))}
        {p.filters.length > 0 && (
          <li>
            <button type="button" class="link" onClick={() => p.onChange([])}>
              clear all
            </button>
          </li>
        )}
      </ul>
      {p.error !== undefined && (
        <div class="error" role="alert">
          {p.error}
        </div>
      )}
    </div>
  );
}

const PLACEHOLDERS: Record<string, string> = {
  verdict: 'DROPPED, FORWARDED, AUDIT',
  protocol: 'tcp, udp, http, dns',
  'http-status': '404, 5+',
  port: '8080',
  'to-port': '8080',
  ip: '10.0.0.1 or 10.0.0.0/8',
  pod: 'namespace/pod-prefix',
  label: 'app=web',
  since: '5m or 2026-12-07T09:00:00Z',
  until: '1m',
};

function useJson<T>(url: string | undefined): { data?: T; error?: string } {
  const [state, setState] = useState<{ data?: T; error?: string }>({});
  useEffect(() => {
    if (url === undefined) return;
    let live = true;
    setState({});
    fetch(url)
      .then(async (r) => {
        const body = await r.json();
        if (!live) return;
        setState(r.ok ? { data: body as T } : { error: (body as { error: string }).error });
      })
      .catch((e: Error) => live && setState({ error: e.message }));
    return () => {
      live = false;
    };
  }, [url]);
  return state;
}

function FlowDetailsPanel(p: { seq: number }) {
  const { data, error } = useJson<FlowDetails>(`/api/flow?seq=${p.seq}`);
  if (error) return <p class="error">{error}</p>;
  if (!data) return <p>Loading…</p>;
  const r = data.row;
  return (
    <div class="flow-details">
      <h2>
        Flow <span class={`verdict ${r.verdict}`}>{r.verdict}</span>
      </h2>
      <dl>
        <dt>Time</dt>
        <dd>{new Date(r.timeMs).toISOString()}</dd>
        <dt>Node</dt>
        <dd>{r.node}</dd>
        <dt>Source</dt>
        <dd>{`${r.source.namespace ?? ''}/${r.source.pod ?? r.source.ip ?? ''} (${r.source.identityName ?? r.source.identity})`}</dd>
        <dt>Destination</dt>
        <dd>{`${r.destination.namespace ?? ''}/${r.destination.pod ?? r.destination.names?.[0] ?? r.destination.ip ?? ''} (${r.destination.identityName ?? r.destination.identity})`}</dd>
        <dt>Port</dt>
        <dd>{`${r.dport}/${r.protocol}`}</dd>
        <dt>Type</dt>
        <dd>{r.type}</dd>
        {r.dropReason && (
          <>
            <dt>Drop reason</dt>
            <dd>{r.dropReason}</dd>
          </>
        )}
        <dt>Policy</dt>
        <dd data-testid="flow-policy">{r.policy || '—'}</dd>
        {r.l7 && (
          <>
            <dt>L7</dt>
            <dd>{r.l7}</dd>
          </>
        )}
      </dl>
      {data.allowRule && (
        <section>
          <h3>Smallest rule that would allow it ({data.allowRule.direction})</h3>
          <CopyBlock text={data.allowRule.yaml} testid="allow-rule" />
        </section>
      )}
      {data.trace !== undefined && (
        <section>
          <h3>Policy trace</h3>
          <CopyBlock text={JSON.stringify(data.trace, null, 2)} testid="trace" />
        </section>
      )}
      <section>
        <h3>Flow (jsonpb)</h3>
        <CopyBlock text={JSON.stringify(data.jsonpb, null, 2)} testid="jsonpb" />
      </section>
    </div>
  );
}

function CardPanel(p: { id: string; policyView: boolean }) {
  const { data, error } = useJson<CardPolicies>(`/api/policies?card=${encodeURIComponent(p.id)}`);
  return (
    <div class="card-details">
      <h2>{p.id}</h2>
      {error && <p class="error">{error}</p>}
      {data && (
        <>
          <p class="labels">{data.card.labels.join(' ')}</p>
          <h3>Policies selecting it ({data.policies.length})</h3>
          {data.policies.length === 0 && <p>None: all traffic is allowed (no policy selects this card).</p>}
          {data.policies.map((pol) => (
            <section key={`${pol.kind}/${pol.namespace}/${pol.name}`}>
              <h4>
                {pol.kind} {pol.namespace ? `${pol.namespace}/` : ''}
                {pol.name} <small>({pol.directions.join(', ')})</small>
              </h4>
              <CopyBlock text={pol.yaml} testid="policy-yaml" />
            </section>
          ))}
        </>
      )}
      {!p.policyView && !error && <p>No agent connected: policies are not available.</p>}
    </div>
  );
}

function EdgePanel(p: { edge: MapEdge | undefined }) {
  const e = p.edge;
  if (e === undefined) return <p>This edge has no flows in the window any more.</p>;
  const v = e.verdicts;
  return (
    <div class="edge-details">
      <h2>
        {e.source} → {e.target}
      </h2>
      <dl>
        <dt>Port</dt>
        <dd>{`${e.port}/${e.protocol}`}</dd>
        <dt>Flows</dt>
        <dd>{e.flows}</dd>
        <dt>Verdicts</dt>
        <dd>
          {`forwarded ${v.forwarded}, dropped ${v.dropped}`}
          {v.audit ? `, audit ${v.audit}` : ''}
          {v.redirected ? `, redirected ${v.redirected}` : ''}
          {v.error ? `, error ${v.error}` : ''}
        </dd>
        {e.http && (
          <>
            <dt>HTTP</dt>
            <dd>{`${e.http.requestsPerSecond.toFixed(1)} req/s, ${(e.http.errorRate * 100).toFixed(1)}% errors`}</dd>
            <dt>Latency</dt>
            <dd>
              {e.http.p50Ms !== undefined
                ? `p50 ${e.http.p50Ms.toFixed(1)} ms, p95 ${e.http.p95Ms!.toFixed(1)} ms`
                : '—'}
            </dd>
          </>
        )}
      </dl>
      <p>The table below shows this edge's flows.</p>
    </div>
  );
}

function CopyBlock(p: { text: string; testid: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div class="copy">
      <button
        type="button"
        onClick={() => {
          void navigator.clipboard?.writeText(p.text).then(() => setCopied(true));
        }}
      >
        {copied ? 'Copied' : 'Copy'}
      </button>
      <pre data-testid={p.testid}>{p.text}</pre>
    </div>
  );
}
