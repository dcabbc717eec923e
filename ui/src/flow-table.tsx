// The flow table, virtualised: only the rows in view (plus a few) are in the DOM, whatever the
// buffer holds. Columns follow Hubble UI's, plus the policy that allowed or denied the flow.
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { FlowRow, RowEndpoint } from '../../src/ui/ui-api-types.js';

interface Props {
  readonly rows: readonly FlowRow[];
  readonly selectedSeq: number | undefined;
  readonly onSelect: (seq: number) => void;
}

export const ROW_HEIGHT = 26;
const OVERSCAN = 8;

const COLUMNS: ReadonlyArray<{ key: string; title: string; width: string; cell: (r: FlowRow) => string }> = [
  { key: 'time', title: 'Time', width: '96px', cell: (r) => timeText(r.timeMs) },
  { key: 'src', title: 'Source', width: '1.4fr', cell: (r) => endpointText(r.source) },
  { key: 'sid', title: 'Src identity', width: '84px', cell: (r) => identityText(r.source) },
  { key: 'dst', title: 'Destination', width: '1.4fr', cell: (r) => endpointText(r.destination) },
  { key: 'did', title: 'Dst identity', width: '84px', cell: (r) => identityText(r.destination) },
  { key: 'port', title: 'Port', width: '78px', cell: (r) => (r.dport ? `${r.dport}/${r.protocol}` : r.protocol) },
  { key: 'l7', title: 'L7 info', width: '1fr', cell: (r) => r.l7 },
  { key: 'dir', title: 'Direction', width: '66px', cell: (r) => r.direction },
  { key: 'verdict', title: 'Verdict', width: '92px', cell: (r) => r.verdict },
  { key: 'reason', title: 'Drop reason', width: '110px', cell: (r) => r.dropReason },
  { key: 'flags', title: 'TCP flags', width: '74px', cell: (r) => r.tcpFlags },
  { key: 'policy', title: 'Policy', width: '1.2fr', cell: (r) => r.policy },
];
const GRID = COLUMNS.map((c) => c.width).join(' ');

export function FlowTable(p: Props) {
  const box = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(300);
  const [cursor, setCursor] = useState(0);

  useLayoutEffect(() => {
    const el = box.current!;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    setHeight(el.clientHeight);
    return () => ro.disconnect();
  }, []);

  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(p.rows.length, Math.ceil((scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
  const visible = p.rows.slice(first, last);

  const onKey = (e: KeyboardEvent) => {
    let next = cursor;
    if (e.key === 'ArrowDown' || e.key === 'j') next = Math.min(p.rows.length - 1, cursor + 1);
    else if (e.key === 'ArrowUp' || e.key === 'k') next = Math.max(0, cursor - 1);
    else if (e.key === 'PageDown') next = Math.min(p.rows.length - 1, cursor + Math.floor(height / ROW_HEIGHT));
    else if (e.key === 'PageUp') next = Math.max(0, cursor - Math.floor(height / ROW_HEIGHT));
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = p.rows.length - 1;
    else if (e.key === 'Enter') {
      const r = p.rows[cursor];
      if (r !== undefined) p.onSelect(r.seq);
      e.preventDefault();
      return;
    } else return;
    e.preventDefault();
    setCursor(next);
    const el = box.current!;
    const top = next * ROW_HEIGHT;
    if (top < el.scrollTop) el.scrollTop = top;
    else if (top + ROW_HEIGHT > el.scrollTop + el.clientHeight) el.scrollTop = top + ROW_HEIGHT - el.clientHeight;
  };

  const onClick = (e: MouseEvent) => {
    const row = (e.target as HTMLElement).closest<HTMLElement>('[data-seq]');
    if (row === null) return;
    const index = Number(row.dataset.index);
    setCursor(index);
    p.onSelect(Number(row.dataset.seq));
  };

  return (
    <div class="table">
      <div class="thead" aria-hidden="true" style={{ gridTemplateColumns: GRID }}>
        {COLUMNS.map((c) => (
          <div key={c.key}>{c.title}</div>
        ))}
      </div>
      {/* biome-ignore lint/a11y/useSemanticElements: a virtualised grid positions its rows itself; a <table> would lay them out */}
      <div
        class="tbody"
        ref={box}
        role="grid"
        tabIndex={0}
        aria-rowcount={p.rows.length}
        aria-label="Flows: arrow keys move, Enter shows details"
        onScroll={(e) => setScrollTop((e.currentTarget as HTMLDivElement).scrollTop)}
        onKeyDown={onKey}
        onClick={onClick}
      >
        <div style={{ height: `${p.rows.length * ROW_HEIGHT}px`, position: 'relative' }}>
          {visible.map((r, i) => {
            const index = first + i;
            const cls = [
              'tr',
              verdictClass(r.verdict),
              r.seq === p.selectedSeq ? 'selected' : '',
              index === cursor ? 'cursor' : '',
            ].join(' ');
            return (
              // biome-ignore lint/a11y/useSemanticElements: see the grid above
              // biome-ignore lint/a11y/useFocusableInteractive: the grid holds the focus and moves a cursor over rows
              <div
                key={r.seq}
                class={cls}
                role="row"
                aria-rowindex={index + 1}
                aria-selected={r.seq === p.selectedSeq}
                data-seq={r.seq}
                data-index={index}
                style={{ top: `${index * ROW_HEIGHT}px`, gridTemplateColumns: GRID }}
              >
                {COLUMNS.map((c) => {
                  const text = c.cell(r);
                  return (
                    // biome-ignore lint/a11y/useSemanticElements: see the grid above
                    // biome-ignore lint/a11y/useFocusableInteractive: the grid holds the focus
                    <div role="gridcell" key={c.key} class={`td ${c.key}`} title={text}>
                      {text}
                    </div>
                  );
                })}
              </div>
            );
          })}
        </div>
        {p.rows.length === 0 && <div class="empty">No flows match (yet).</div>}
      </div>
    </div>
  );
}

export function endpointText(e: RowEndpoint): string {
  const host = e.pod ? `${e.namespace ?? ''}/${e.pod}` : e.names?.length ? e.names.join(',') : (e.ip ?? '');
  return e.port ? `${host}:${e.port}` : host;
}

function identityText(e: RowEndpoint): string {
  return e.identityName ?? String(e.identity);
}

function verdictClass(v: string): string {
  if (v === 'DROPPED' || v === 'DENIED' || v === 'ERROR') return 'v-dropped';
  if (v === 'AUDIT' || v === 'AUDITED') return 'v-audit';
  return 'v-ok';
}

function timeText(ms: number): string {
  const d = new Date(ms);
  return `${d.toTimeString().slice(0, 8)}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}
