// `membrane monitor`: live datapath events from every node of the lab (or one agent).
import type { Command } from 'commander';
import type { DatapathEvent } from '../../monitor/event-types.js';
import { addTargetOptions, resolveTargets } from '../agent-target.js';
import { CliError } from '../errors.js';
import {
  eventType,
  formatL7Line,
  formatMonitorLine,
  type L7MonitorEvent,
  type MonitorType,
} from '../monitor-format.js';

const TYPES: readonly MonitorType[] = ['drop', 'trace', 'policy-verdict', 'l7'];

export function registerMonitor(program: Command): void {
  addTargetOptions(
    program
      .command('monitor')
      .description("Show live datapath events (drop, trace, policy-verdict) and the L7 proxy's access records (l7)")
      .option('-t, --type <type...>', 'event types: drop, trace, policy-verdict, l7')
      .option('--related-to <id>', 'only events of this endpoint ID')
      .option('-o, --output <format>', 'output format: text or json', 'text')
      .option('--max-events <n>', 'stop after this many events'),
  ).action(async (o) => {
    const types = (o.type ?? []) as string[];
    for (const t of types)
      if (!TYPES.includes(t as MonitorType))
        throw new CliError('MBR_USAGE', `--type: expected one of ${TYPES.join(', ')}, got "${t}"`, 2);
    if (o.output !== 'text' && o.output !== 'json')
      throw new CliError('MBR_USAGE', `-o/--output: expected text or json, got "${o.output}"`, 2);
    const targets = resolveTargets(o);
    const max = o.maxEvents ? Number(o.maxEvents) : Number.POSITIVE_INFINITY;
    const related = o.relatedTo ? Number(o.relatedTo) : undefined;
    const abort = new AbortController();
    process.once('SIGINT', () => abort.abort());
    let seen = 0;
    if (o.output === 'text')
      process.stderr.write(`Listening for events on ${targets.map((t) => t.node).join(', ')}. Press Ctrl-C to quit\n`);
    await Promise.all(
      targets.map((t) =>
        t.client.stream(
          '/v1/monitor',
          (item) => {
            const e = item as DatapathEvent & { type?: string };
            if (e.type === 'start' || seen >= max) return;
            const l7 = e.type === 'l7' ? (item as L7MonitorEvent) : undefined;
            if (types.length > 0 && !types.includes(l7 ? 'l7' : eventType(e))) return;
            if (related !== undefined && (l7 ? l7.record.endpointId : e.endpointId) !== related) return;
            seen++;
            // Endpoint IDs are per node: with several nodes, say which one saw the event.
            const prefix = targets.length > 1 ? `[${t.node}] ` : '';
            process.stdout.write(
              o.output === 'json'
                ? `${JSON.stringify({ node: t.node, ...e })}\n`
                : `${prefix}${l7 ? formatL7Line(l7) : formatMonitorLine(e)}\n`,
            );
            if (seen >= max) abort.abort();
          },
          abort.signal,
        ),
      ),
    );
  });
}
