// The node's policy routing for to-proxy packets (bpf/lib/proxy.h sets the mark, the socket is
// already assigned): `ip rule add fwmark 0x200/0xf00 lookup 2004 pref 9` and
// `ip route replace local 0.0.0.0/0 dev lo table 2004`. Idempotent; it lives in the node's
// network namespace and goes with it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { MARK_MAGIC_MASK, MARK_TO_PROXY, PROXY_ROUTE_TABLE, PROXY_RULE_PREF } from './proxy-marks.js';

const run = promisify(execFile);

function ipArgv(netns: string | undefined, args: readonly string[]): string[] {
  return netns ? ['nsenter', `--net=${netns}`, 'ip', ...args] : ['ip', ...args];
}

async function ip(netns: string | undefined, args: readonly string[]): Promise<string> {
  const [cmd, ...rest] = ipArgv(netns, args);
  const r = await run(cmd, rest, { timeout: 10_000 });
  return r.stdout;
}

const FWMARK = `0x${MARK_TO_PROXY.toString(16)}/0x${MARK_MAGIC_MASK.toString(16)}`;

/** Installs the rule and the route unless they are there. `netns`: a path, or the process's own. */
export async function ensureProxyRouting(netns?: string): Promise<void> {
  const rules = await ip(netns, ['-4', 'rule', 'show', 'pref', String(PROXY_RULE_PREF)]);
  if (!rules.includes(`lookup ${PROXY_ROUTE_TABLE}`))
    await ip(netns, [
      '-4',
      'rule',
      'add',
      'fwmark',
      FWMARK,
      'lookup',
      String(PROXY_ROUTE_TABLE),
      'pref',
      String(PROXY_RULE_PREF),
    ]);
  await ip(netns, ['-4', 'route', 'replace', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', String(PROXY_ROUTE_TABLE)]);
}

/** Removes them (a node that stops redirecting). */
export async function removeProxyRouting(netns?: string): Promise<void> {
  await ip(netns, ['-4', 'rule', 'del', 'pref', String(PROXY_RULE_PREF)]).catch(() => undefined);
  await ip(netns, ['-4', 'route', 'flush', 'table', String(PROXY_ROUTE_TABLE)]).catch(() => undefined);
}
