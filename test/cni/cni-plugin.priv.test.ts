// The membrane CNI plugin driven through a libcni-style executor, as a runtime would call it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { type CniExecError, CniExecutor, type ConfList, type RuntimeConf } from '../../src/cni/cni-executor.js';
import { hostIfnameFor } from '../../src/cni/pod-link.js';
import { requireRoot } from '../support/privileged.js';
import { inNetns, type Scratch, scratch } from './netns-fixture.js';

const BIN = new URL('../../../bin', import.meta.url).pathname;
const CNI_PATH = [BIN, '/usr/lib/cni'];
const TOOLS = ['ip', 'nsenter', 'curl'];

function setup(t: TestContext, plugins: 'alone' | 'chained' = 'alone') {
  const s = scratch(t);
  const node = s.netns('node');
  const list: ConfList = {
    cniVersion: '1.0.0',
    name: 'membrane',
    plugins: [
      { type: 'membrane-cni', ipam: { podCIDR: '10.201.1.0/24', dataDir: join(s.dir, 'ipam') } },
      ...(plugins === 'chained'
        ? [
            { type: 'portmap', capabilities: { portMappings: true }, snat: false },
            { type: 'bandwidth', capabilities: { bandwidth: true } },
          ]
        : []),
    ],
  };
  const ex = new CniExecutor({
    cniPath: CNI_PATH,
    cacheDir: join(s.dir, 'cache'),
    wrap: ['nsenter', `--net=${node}`, '--'],
  });
  const rt = (n: number): RuntimeConf => ({
    containerId: `${s.tag}-c${n}`,
    netns: s.netns(`p${n}`),
    ifname: 'eth0',
    args: { K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: `pod${n}` },
    capabilityArgs: {
      portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp' }],
      bandwidth: {
        ingressRate: 1_000_000_000,
        ingressBurst: 100_000_000,
        egressRate: 1_000_000_000,
        egressBurst: 100_000_000,
      },
    },
  });
  return { s, node, list, ex, rt };
}

function podIp(r: { ips?: ReadonlyArray<{ address: string }> }): string {
  return r.ips![0].address.split('/')[0];
}

/** An HTTP server inside a pod: a one-line Node server, killed in t.after. */
function serve(t: TestContext, netns: string, ip: string, port: number): void {
  const code = `require('http').createServer((q,s)=>s.end('hello')).listen(${port},'${ip}')`;
  const child = spawn('nsenter', [`--net=${netns}`, '--', process.execPath, '-e', code], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
}

function curl(netns: string, url: string): string {
  return inNetns(netns, ['curl', '-s', '--retry', '20', '--retry-connrefused', '--retry-delay', '0', '-m', '5', url]);
}

describe('membrane-cni', () => {
  it('answers VERSION with the versions it supports', async (t) => {
    if (!requireRoot(t, 'runs the CNI plugin', TOOLS)) return;
    const { ex } = setup(t);
    assert.deepEqual(await ex.version('membrane-cni'), {
      cniVersion: '1.0.0',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });
  });

  it('ADD wires a pod that another pod reaches over HTTP, CHECK passes, DEL removes everything', async (t) => {
    if (!requireRoot(t, 'creates netns and veth pairs', TOOLS)) return;
    const { s, node, list, ex, rt } = setup(t);
    const a = rt(1);
    const b = rt(2);
    const ra = await ex.add(list, a);
    const rb = await ex.add(list, b);
    assert.equal(ra.cniVersion, '1.0.0');
    assert.deepEqual(ra.ips, [{ interface: 1, address: '10.201.1.2/32', gateway: '10.201.1.1' }]);
    assert.deepEqual(ra.routes, [{ dst: '0.0.0.0/0', gw: '10.201.1.1' }]);
    assert.equal(ra.interfaces?.[0].name, hostIfnameFor(a.containerId, 'eth0'));
    assert.equal(ra.interfaces?.[1].sandbox, a.netns);
    await ex.check(list, a);
    // The datapath is IPv4-only: both ends of the pair have IPv6 off, so no address and no RS.
    assert.equal(inNetns(a.netns, ['cat', '/proc/sys/net/ipv6/conf/eth0/disable_ipv6']).trim(), '1');
    const host = hostIfnameFor(a.containerId, 'eth0');
    assert.equal(inNetns(node, ['cat', `/proc/sys/net/ipv6/conf/${host}/disable_ipv6`]).trim(), '1');
    assert.doesNotMatch(inNetns(a.netns, ['ip', '-6', 'addr', 'show', 'dev', 'eth0']), /inet6/);
    serve(t, b.netns, podIp(rb), 8080);
    assert.equal(curl(a.netns, `http://${podIp(rb)}:8080/`), 'hello');

    await ex.del(list, a);
    await ex.del(list, b);
    assert.doesNotMatch(inNetns(node, ['ip', '-br', 'link']), /mbr-/);
    assert.doesNotMatch(inNetns(a.netns, ['ip', '-br', 'link']), /eth0/);
    assert.deepEqual(readdirSync(join(s.dir, 'ipam')), []);
  });

  it('gives every one of 12 concurrent ADDs its own address', async (t) => {
    if (!requireRoot(t, 'creates netns and veth pairs', TOOLS)) return;
    const { list, ex, rt } = setup(t);
    const rts = Array.from({ length: 12 }, (_, i) => rt(i));
    const results = await Promise.all(rts.map((r) => ex.add(list, r)));
    const ips = results.map(podIp);
    assert.equal(new Set(ips).size, 12, `duplicate addresses: ${ips.join(' ')}`);
    await Promise.all(rts.map((r) => ex.del(list, r)));
  });

  it('succeeds on repeated DEL, on DEL without a netns and on DEL of a container it never saw', async (t) => {
    if (!requireRoot(t, 'creates netns and veth pairs', TOOLS)) return;
    const { list, ex, rt } = setup(t);
    const a = rt(1);
    await ex.add(list, a);
    await ex.del(list, a);
    await ex.del(list, a);
    await ex.del(list, { ...a, netns: '' });
    await ex.del(list, { ...rt(9), containerId: 'never-added' });
  });

  it('CHECK reports a pod whose host interface was removed', async (t) => {
    if (!requireRoot(t, 'creates netns and veth pairs', TOOLS)) return;
    const { node, list, ex, rt } = setup(t);
    const a = rt(1);
    await ex.add(list, a);
    inNetns(node, ['ip', 'link', 'del', hostIfnameFor(a.containerId, 'eth0')]);
    await assert.rejects(ex.check(list, a), (err: CniExecError) => {
      assert.equal(err.code, 101);
      assert.equal(
        err.message,
        `membrane-cni CHECK: host interface ${hostIfnameFor(a.containerId, 'eth0')} is missing`,
      );
      return true;
    });
    await ex.del(list, a);
  });

  it('works chained with the reference portmap and bandwidth plugins in one conflist', async (t) => {
    if (!requireRoot(t, 'creates netns, veth pairs, iptables rules and qdiscs', [...TOOLS, 'iptables'])) return;
    const { node, list, ex, rt } = setup(t, 'chained');
    const a = rt(1);
    const r = await ex.add(list, a);
    assert.equal(podIp(r), '10.201.1.2');
    const host = hostIfnameFor(a.containerId, 'eth0');
    // bandwidth put its qdisc on our host interface, portmap its DNAT chain in the node.
    assert.match(inNetns(node, ['tc', 'qdisc', 'show', 'dev', host]), /tbf/);
    assert.match(inNetns(node, ['iptables-save', '-t', 'nat']), /CNI-DN-/);
    // No CHECK here: Debian's portmap 1.1.1 fails CHECK on an IPv4-only pod ("could not check
    // ipv6 dnat") and bandwidth 1.1.1 crashes on it; CHECK of our plugin is covered above.
    serve(t, a.netns, '10.201.1.2', 8080);
    assert.equal(curl(node, 'http://10.201.1.2:8080/'), 'hello');
    await ex.del(list, a);
    await ex.del(list, a);
    assert.doesNotMatch(inNetns(node, ['iptables-save', '-t', 'nat']), /CNI-DN-/);
  });

  it('runs after a reference plugin (ptp + host-local) and passes its result through', async (t) => {
    if (!requireRoot(t, 'creates netns and veth pairs', TOOLS)) return;
    const { s, list, rt } = setupChainedAfter(t);
    const a = rt(1);
    const r = await s.ex.add(list, a);
    assert.equal(r.ips?.[0].address, '10.202.0.2/24');
    assert.equal(r.interfaces?.find((i) => i.sandbox)?.name, 'eth0');
    await s.ex.del(list, a);
  });

  it('fails ADD into a missing netns with code 3 before it changes the node', async (t) => {
    if (!requireRoot(t, 'runs the CNI plugin in a netns', TOOLS)) return;
    const { s, node, list, ex, rt } = setup(t);
    const before = nodeState(node);
    await assert.rejects(ex.add(list, { ...rt(1), netns: '/run/netns/mbr-missing-netns' }), {
      code: 3,
      message: 'membrane-cni ADD: CNI_NETNS: /run/netns/mbr-missing-netns does not exist',
    });
    assert.deepEqual(nodeState(node), before);
    assert.doesNotMatch(before.lo, /10\.201\.1\.1/);
    assert.equal(existsSync(join(s.dir, 'ipam')), false);
  });

  it('fails ADD into a file that is not a netns with code 4 before it changes the node', async (t) => {
    if (!requireRoot(t, 'runs the CNI plugin in a netns', TOOLS)) return;
    const { s, node, list, ex, rt } = setup(t);
    const file = join(s.dir, 'not-a-netns');
    writeFileSync(file, '');
    const before = nodeState(node);
    await assert.rejects(ex.add(list, { ...rt(1), netns: file }), (err: CniExecError) => {
      assert.equal(err.code, 4);
      assert.match(err.message, /^membrane-cni ADD: CNI_NETNS: expected a network namespace \(nsfs\), got a file /);
      return true;
    });
    assert.deepEqual(nodeState(node), before);
  });

  it('undoes the gateway address and forwarding of a failed first ADD, and keeps them for other pods', async (t) => {
    if (!requireRoot(t, 'creates netns and veth pairs', TOOLS)) return;
    const { s, node, list, ex, rt } = setup(t);
    const a = rt(1);
    inNetns(node, ['ip', 'link', 'set', 'lo', 'up']); // as on any node
    const before = nodeState(node);
    // The host side's name is taken, so `ip link add` fails after the gateway went on lo.
    inNetns(node, ['ip', 'link', 'add', hostIfnameFor(a.containerId, 'eth0'), 'type', 'veth', 'peer', 'name', 'mbr-x']);
    const taken = nodeState(node);
    await assert.rejects(ex.add(list, a), { code: 5 });
    assert.deepEqual(nodeState(node), taken);
    assert.equal(taken.lo, before.lo);
    assert.equal(taken.forwarding, before.forwarding);
    assert.deepEqual(readdirSync(join(s.dir, 'ipam')), []);

    // With another pod on the node, a failed ADD leaves the shared state alone.
    const b = rt(2);
    await ex.add(list, b);
    const withPod = nodeState(node);
    await assert.rejects(ex.add(list, a), { code: 5 });
    assert.deepEqual(nodeState(node), withPod);
    assert.equal(withPod.forwarding, '1');
    assert.match(withPod.lo, /10\.201\.1\.1\/32/);
    await ex.del(list, b);
  });

  it('GC of a 1.0.0 conflist DELs the cached attachments not listed, through portmap and bandwidth too', async (t) => {
    if (!requireRoot(t, 'creates netns, veth pairs, iptables rules and qdiscs', [...TOOLS, 'iptables'])) return;
    const { s, node, list, ex, rt } = setup(t, 'chained');
    const a = rt(1);
    const b = {
      ...rt(2),
      capabilityArgs: { portMappings: [{ hostPort: 18081, containerPort: 8080, protocol: 'tcp' }] },
    };
    await ex.add(list, a);
    await ex.add(list, b);
    const dnatChains = () => inNetns(node, ['iptables-save', '-t', 'nat']).match(/^:CNI-DN-\S+/gm)?.length ?? 0;
    assert.equal(dnatChains(), 2);
    await ex.gc(list, [{ containerID: a.containerId, ifname: 'eth0' }]);
    const links = inNetns(node, ['ip', '-br', 'link']);
    assert.match(links, new RegExp(hostIfnameFor(a.containerId, 'eth0')));
    assert.doesNotMatch(links, new RegExp(hostIfnameFor(b.containerId, 'eth0')));
    assert.equal(dnatChains(), 1);
    assert.deepEqual(readdirSync(join(s.dir, 'ipam')), ['10.201.1.2']);
    assert.equal(ex.cachedResult(list, b), undefined);
    await ex.del(list, a);
  });

  it('GC of a 1.1.0 conflist releases a leaked attachment the runtime has no cache for; STATUS passes', async (t) => {
    if (!requireRoot(t, 'creates netns and veth pairs', TOOLS)) return;
    const { s, node, list: l10, ex, rt } = setup(t);
    const list: ConfList = { ...l10, cniVersion: '1.1.0' };
    const a = rt(1);
    const b = rt(2);
    const ra = await ex.add(list, a);
    assert.equal(ra.cniVersion, '1.1.0');
    assert.equal(ra.ips?.[0].address, '10.201.1.2/32');
    await ex.add(list, b);
    rmSync(join(s.dir, 'cache', `${list.name}-${b.containerId}-eth0`)); // the runtime lost track of b
    await ex.status(list);
    await ex.gc(list, [{ containerID: a.containerId, ifname: 'eth0' }]);
    assert.deepEqual(readdirSync(join(s.dir, 'ipam')), ['10.201.1.2']);
    assert.doesNotMatch(inNetns(node, ['ip', '-br', 'link']), new RegExp(hostIfnameFor(b.containerId, 'eth0')));
    assert.doesNotMatch(inNetns(b.netns, ['ip', '-br', 'link']), /eth0/);
    // The shared gateway address stays for a.
    assert.match(inNetns(node, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'lo']), /10\.201\.1\.1\/32/);
    await ex.check(list, a);
    await ex.del(list, a);
  });

  it('STATUS of a 1.1.0 conflist fails with code 50 while the agent is down', async (t) => {
    if (!requireRoot(t, 'runs the CNI plugin in a netns', TOOLS)) return;
    const { s, list: l10, ex } = setup(t);
    const list: ConfList = {
      ...l10,
      cniVersion: '1.1.0',
      plugins: [{ ...l10.plugins[0], agentSocket: join(s.dir, 'agent.sock') }],
    };
    await assert.rejects(ex.status(list), (err: CniExecError) => {
      assert.equal(err.code, 50);
      assert.match(err.message, /^membrane-cni STATUS: agent is not ready: /);
      return true;
    });
    await ex.status(l10); // before 1.1.0 libcni asks nothing
  });

  it('returns a CNI error naming the field for a bad config, and leaves nothing behind', async (t) => {
    if (!requireRoot(t, 'runs the CNI plugin in a netns', TOOLS)) return;
    const { node, list, ex, rt } = setup(t);
    const bad: ConfList = { ...list, plugins: [{ type: 'membrane-cni', ipam: { podCIDR: '10.201.1.0/33' } }] };
    await assert.rejects(ex.add(bad, rt(1)), {
      code: 7,
      message:
        'membrane-cni ADD: ipam.podCIDR: expected an IPv4 CIDR with a prefix length of 8 to 29, got "10.201.1.0/33"',
    });
    assert.doesNotMatch(inNetns(node, ['ip', '-br', 'link']), /mbr-/);
  });
});

/** What ADD may touch on the node: loopback addresses, forwarding, links. */
function nodeState(node: string): { lo: string; forwarding: string; links: string } {
  return {
    lo: inNetns(node, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'lo']),
    forwarding: inNetns(node, ['cat', '/proc/sys/net/ipv4/ip_forward']).trim(),
    links: inNetns(node, ['ip', '-br', 'link']),
  };
}

function setupChainedAfter(t: TestContext) {
  const s: Scratch = scratch(t);
  const node = s.netns('node');
  const list: ConfList = {
    cniVersion: '1.0.0',
    name: 'ptpnet',
    plugins: [
      {
        type: 'ptp',
        ipam: { type: 'host-local', subnet: '10.202.0.0/24', dataDir: join(s.dir, 'host-local') },
      },
      { type: 'membrane-cni', ipam: { podCIDR: '10.201.1.0/24', dataDir: join(s.dir, 'ipam') } },
    ],
  };
  const ex = new CniExecutor({
    cniPath: CNI_PATH,
    cacheDir: join(s.dir, 'cache'),
    wrap: ['nsenter', `--net=${node}`, '--'],
  });
  const rt = (n: number): RuntimeConf => ({ containerId: `${s.tag}-c${n}`, netns: s.netns(`p${n}`), ifname: 'eth0' });
  return { s: { ...s, ex }, list, rt };
}
