// bench/cni: time of one pod's CNI ADD + DEL, membrane-cni against the reference ptp + host-local
// plugins (Debian's containernetworking-plugins), run the same way (libcni-style executor, in a
// node netns), in alternating rounds. Both are checked first to give the pod what its result says
// (address on eth0, default route). Needs root; namespaces mbr-bcni-*, removed at the end.
//   npx tsc -p . && node dist/bench/cni.bench.js [--rounds N]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniExecutor, type ConfList, type RuntimeConf } from '../src/cni/cni-executor.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const roundsArg = process.argv.indexOf('--rounds');
const ROUNDS = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 15;
const NODE = 'mbr-bcni-node';
const POD = 'mbr-bcni-pod';

const dir = mkdtempSync(join(tmpdir(), 'mbr-bcni-'));
const lists: Record<'baseline' | 'membrane', ConfList> = {
  baseline: {
    cniVersion: '1.0.0',
    name: 'ref',
    plugins: [
      {
        type: 'ptp',
        ipam: {
          type: 'host-local',
          subnet: '10.203.0.0/24',
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: join(dir, 'hl'),
        },
      },
    ],
  },
  membrane: {
    cniVersion: '1.0.0',
    name: 'membrane',
    plugins: [{ type: 'membrane-cni', ipam: { podCIDR: '10.201.1.0/24', dataDir: join(dir, 'ipam') } }],
  },
};

function ns(args: string[]): string {
  return execFileSync('ip', ['netns', ...args], { encoding: 'utf8' });
}

async function addDel(which: 'baseline' | 'membrane', ex: CniExecutor, i: number, check: boolean): Promise<number> {
  const rt: RuntimeConf = { containerId: `bench-${which}-${i}`, netns: `/run/netns/${POD}`, ifname: 'eth0' };
  const t0 = process.hrtime.bigint();
  const r = await ex.add(lists[which], rt);
  const addedAt = process.hrtime.bigint();
  if (check) {
    const ip = r.ips?.[0]?.address.split('/')[0] ?? '';
    const addrs = execFileSync('nsenter', [`--net=/run/netns/${POD}`, 'ip', '-4', '-o', 'addr', 'show', 'eth0'], {
      encoding: 'utf8',
    });
    const routes = execFileSync('nsenter', [`--net=/run/netns/${POD}`, 'ip', '-4', 'route', 'show', 'default'], {
      encoding: 'utf8',
    });
    if (!addrs.includes(` ${ip}/`) || !routes.includes('default via'))
      throw new Error(`${which}: the pod does not have what ADD returned (${ip}): ${addrs} ${routes}`);
  }
  const t1 = process.hrtime.bigint();
  await ex.del(lists[which], rt);
  const t2 = process.hrtime.bigint();
  return Number(addedAt - t0 + (t2 - t1)) / 1e6;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main(): Promise<void> {
  ns(['add', NODE]);
  ns(['add', POD]);
  try {
    const ex = new CniExecutor({
      cniPath: [join(ROOT, 'bin'), '/usr/lib/cni'],
      cacheDir: join(dir, 'cache'),
      wrap: ['nsenter', `--net=/run/netns/${NODE}`, '--'],
    });
    await addDel('baseline', ex, 0, true);
    await addDel('membrane', ex, 0, true);
    const base: number[] = [];
    const cand: number[] = [];
    for (let i = 1; i <= ROUNDS; i++) {
      base.push(await addDel('baseline', ex, i, false));
      cand.push(await addDel('membrane', ex, i, false));
    }
    const ratios = cand.map((c, i) => c / base[i]).sort((a, b) => a - b);
    const q1 = ratios[Math.floor(ratios.length / 4)];
    const q3 = ratios[Math.floor((ratios.length * 3) / 4)];
    const line = `cni-add-del  membrane ${median(cand).toFixed(1)} ms/pod  baseline(ptp+host-local) ${median(base).toFixed(1)} ms/pod  ratio ${median(ratios).toFixed(2)} (IQR ${q1.toFixed(2)}-${q3.toFixed(2)})  n=${ROUNDS}`;
    console.log(line);
    const md = [
      '# bench/cni: one pod ADD + DEL through the CNI executor',
      '',
      '```',
      `$ node dist/bench/cni.bench.js --rounds ${ROUNDS}`,
      line,
      '```',
      '',
      `- date: ${new Date().toISOString()}`,
      `- node: ${process.version}`,
      `- cpu: ${cpus()[0]?.model ?? 'unknown'} x${cpus().length}`,
      '- baseline: Debian containernetworking-plugins ptp + host-local (Go binaries); candidate: bin/membrane-cni',
      '  without an agent (no endpoint registration). Both run one plugin process per command in a node netns.',
      '- Nearly all of the candidate time is starting Node.js for each plugin call (about 120 ms for',
      '  `CNI_COMMAND=VERSION bin/membrane-cni` on this machine, twice per pod); each `ip` call is about 3 ms.',
      '',
    ].join('\n');
    writeFileSync(join(ROOT, 'bench/results/cni.md'), md);
  } finally {
    ns(['del', POD]);
    ns(['del', NODE]);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
