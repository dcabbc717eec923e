// The UI in a real browser (Debian's chromium, headless, through playwright-core) on a real lab
// started by labUp with its UI, as `membrane lab up` does: client -> web is denied by a policy,
// other -> web allowed. The map shows the cards and edges (the denied one red), the table a
// DROPPED row naming the policy, filters narrow it, clicking an edge filters by it, export gives
// hubble jsonpb lines, and the page says when the relay is gone and recovers once it is back.
// Screenshots go to test-artifacts/ui (not committed).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { AgentClient } from '../../src/agent/api-client.js';
import type { AgentStatus } from '../../src/agent/api-types.js';
import { fromProtoJson } from '../../src/hubble/api/proto-json.js';
import { protoType } from '../../src/hubble/api/proto-root.js';
import { agentSocket, labDir } from '../../src/lab/lab-paths.js';
import type { LabState } from '../../src/lab/lab-state.js';
import { labDown } from '../../src/lab/teardown.js';
import { labUp } from '../../src/lab/topology.js';
import type { MapEdge } from '../../src/ui/ui-api-types.js';
import { LAB_TOOLS, MEMBRANE, MINI_WORLD, REPO } from '../lab/lab-fixture.js';
import { privilegeGap, requireRoot } from '../support/privileged.js';
import { until } from '../support/until.js';
import { artifactsDir, CHROMIUM, chromiumMissing, type HeadlessBrowser, launchChromium } from './browser.js';

const WEB_ONLY_FROM_OTHER = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'web-only-from-other', namespace: 'alpha' },
  spec: {
    podSelector: { matchLabels: { app: 'web' } },
    policyTypes: ['Ingress'],
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'other' } } }] }],
  },
};

const DENIED_EDGE = 'alpha/client|alpha/web|TCP|8080';
const ALLOWED_EDGE = 'alpha/other|alpha/web|TCP|8080';
const WHY = 'runs a lab with the eBPF datapath and a headless chromium';

describe('the UI in a browser on the lab', () => {
  const lab = `t${randomBytes(3).toString('hex')}`;
  const env = { ...process.env, MEMBRANE_LAB: lab };
  const shots = artifactsDir();
  let state: LabState | undefined;
  let browser: HeadlessBrowser | undefined;
  let page: Page;
  let url = '';
  const gap = () => privilegeGap(LAB_TOOLS) ?? chromiumMissing();
  const membrane = (...args: string[]) =>
    spawnSync(process.execPath, [MEMBRANE, ...args], { encoding: 'utf8', env, timeout: 30_000 });
  const curl = (from: string, ip: string) =>
    membrane('lab', 'exec', `alpha/${from}`, '--', 'curl', '-s', '-m', '1', `http://${ip}:8080/`).status === 0;
  const mapEdges = () =>
    page.evaluate(() =>
      (
        globalThis as unknown as { __membraneMap: { edges(): (MapEdge & { classes: string[] })[] } }
      ).__membraneMap.edges(),
    );
  const rows = () => page.locator('.tbody .tr').allInnerTexts();

  before(async () => {
    if (gap() !== undefined) return;
    mkdirSync(shots, { recursive: true });
    const port = await freePort();
    state = await labUp({ lab, worldFiles: [MINI_WORLD], repoRoot: REPO, ui: { port } });
    url = `http://127.0.0.1:${port}`;
    const agents = state.nodes.map((n) => new AgentClient(agentSocket(lab, n.name)));
    await agents[0]!.put('/v1/policy', { docs: [WEB_ONLY_FROM_OTHER], source: 'web-only-from-other.yaml' });
    await until(
      async () =>
        (await Promise.all(agents.map((c) => c.get<AgentStatus>('/v1/status')))).every(
          (s) => s.realizedPolicyRevision === s.policyRevision,
        ),
      { timeoutMs: 10_000, what: 'the policy realized on every node' },
    );
    const web = state.pods.find((p) => p.name === 'web')!.ip;
    for (let i = 0; i < 3; i++) assert.equal(curl('other', web), true, 'other reaches web');
    for (let i = 0; i < 2; i++) assert.equal(curl('client', web), false, 'the policy denies the client');
    browser = await launchChromium();
    page = await browser.context.newPage();
    await page.goto(url);
  });
  after(async () => {
    await browser?.close();
    await labDown(lab);
  });

  it('shows the cards and edges, the denied connection as a red edge and a DROPPED row naming its policy', async (t) => {
    if (!requireRoot(t, WHY, [...LAB_TOOLS, CHROMIUM])) return;
    await until(
      async () => {
        const ids = (await mapEdges()).map((e) => e.id);
        return ids.includes(DENIED_EDGE) && ids.includes(ALLOWED_EDGE);
      },
      { timeoutMs: 15_000, intervalMs: 250, what: `edges ${DENIED_EDGE} and ${ALLOWED_EDGE} on the map` },
    );
    const cards = await page.evaluate(() =>
      (globalThis as unknown as { __membraneMap: { cards(): string[] } }).__membraneMap.cards(),
    );
    for (const c of ['alpha/client', 'alpha/other', 'alpha/web']) assert.ok(cards.includes(c), `card ${c} in ${cards}`);
    const edges = await mapEdges();
    const denied = edges.find((e) => e.id === DENIED_EDGE)!;
    assert.equal(denied.state, 'dropped');
    assert.ok(denied.verdicts.dropped >= 2, `${denied.verdicts.dropped} drops counted`);
    assert.ok(denied.classes.includes('dropped'), `drawn red: ${denied.classes}`);
    const allowed = edges.find((e) => e.id === ALLOWED_EDGE)!;
    assert.equal(allowed.state, 'forwarded');
    assert.ok(allowed.verdicts.forwarded >= 3);

    await page.fill('#filter-input', '--verdict DROPPED');
    await page.press('#filter-input', 'Enter');
    await until(async () => (await rows()).length > 0 && (await rows()).every((r) => /DROPPED|DENIED/.test(r)), {
      timeoutMs: 10_000,
      what: 'only DROPPED rows',
    });
    // A policy-verdict event says DENIED, the drop DROPPED: both name the policy.
    const row = (await rows()).find((r) => r.includes('alpha/client') && r.includes('DROPPED'));
    assert.ok(row, 'a DROPPED row from the client');
    assert.match(row, /alpha\/web-only-from-other \(NetworkPolicy\)/);
    assert.match(row, /POLICY_DENIED/);
    await page.locator('.tbody .tr', { hasText: 'DROPPED' }).first().click();
    await page.locator('[data-testid="allow-rule"]').waitFor();
    const rule = (await await page.locator('[data-testid="allow-rule"]').textContent()) ?? '';
    assert.match(rule, /kind: CiliumNetworkPolicy/);
    assert.match(rule, /app: client/);
    await page.screenshot({ path: join(shots, 'ui-drop-details.png') });
    await page.keyboard.press('Escape');
  });

  it('narrows the table with filters', async (t) => {
    if (!requireRoot(t, WHY, [...LAB_TOOLS, CHROMIUM])) return;
    await page.goto(`${url}/#from-pod=alpha/other&to-port=8080`);
    const all = await until(
      async () => {
        const r = await rows();
        return r.length > 0 && r.every((x) => x.includes('alpha/other') && x.includes('8080')) ? r : undefined;
      },
      { timeoutMs: 10_000, what: 'only rows from other to port 8080' },
    );
    assert.ok(!all.some((r) => r.includes('alpha/client')));
    await page.goto(`${url}/#verdikt=DROPPED`);
    await page.locator('.filters .error').waitFor();
    assert.match((await page.locator('.filters .error').textContent()) ?? '', /verdikt/);
  });

  it('filters by an edge when it is clicked', async (t) => {
    if (!requireRoot(t, WHY, [...LAB_TOOLS, CHROMIUM])) return;
    await page.goto(`${url}/#`);
    await until(async () => (await mapEdges()).some((e) => e.id === DENIED_EDGE), { timeoutMs: 10_000, what: 'map' });
    await page.screenshot({ path: join(shots, 'ui-map.png') });
    const at = await page.evaluate(
      (id) =>
        (
          globalThis as unknown as { __membraneMap: { point(id: string): { x: number; y: number } } }
        ).__membraneMap.point(id),
      DENIED_EDGE,
    );
    await page.mouse.click(at.x, at.y);
    await until(async () => (await page.locator('.chip').allInnerTexts()).some((c) => c.includes('--to-port 8080')), {
      timeoutMs: 5000,
      what: 'edge filters',
    });
    const chips = (await page.locator('.chip').allInnerTexts()).map((c) => c.replace(/\s*×$/, ''));
    assert.deepEqual(chips, [
      '--from-label k8s:app=client,k8s:io.kubernetes.pod.namespace=alpha',
      '--to-label k8s:app=web,k8s:io.kubernetes.pod.namespace=alpha',
      '--to-port 8080',
      '--protocol tcp',
    ]);
    // Rows of the view before the click may still be on screen for a moment.
    await until(
      async () => {
        const r = await rows();
        return r.length > 0 && r.every((x) => x.includes('alpha/client') && x.includes('alpha/web'));
      },
      { timeoutMs: 10_000, what: 'only rows of the edge' },
    );
    await page.screenshot({ path: join(shots, 'ui-edge-filter.png') });
  });

  it('shows the policies that select a card when it is clicked, and filters by it', async (t) => {
    if (!requireRoot(t, WHY, [...LAB_TOOLS, CHROMIUM])) return;
    await page.goto(`${url}/#`);
    // Escape closes the edge's panel left from the test before (it lies over the web card).
    await page.keyboard.press('Escape');
    await page.locator('.details').waitFor({ state: 'detached' });
    // Fresh flows: the card must be in the map's window when it is clicked.
    assert.equal(curl('other', state!.pods.find((p) => p.name === 'web')!.ip), true);
    await until(async () => (await mapEdges()).some((e) => e.id === DENIED_EDGE), { timeoutMs: 10_000, what: 'map' });
    const at = await page.evaluate(
      (id) =>
        (
          globalThis as unknown as { __membraneMap: { point(id: string): { x: number; y: number } } }
        ).__membraneMap.point(id),
      'alpha/web',
    );
    await page.mouse.click(at.x, at.y);
    await page.screenshot({ path: join(shots, 'ui-card-click.png') });
    await page.locator('[data-testid="policy-yaml"], .card-details .error').first().waitFor({ timeout: 10_000 });
    assert.equal(
      await page.locator('.card-details .error').count(),
      0,
      (await page.locator('.details').textContent()) ?? '',
    );
    const yaml = (await page.locator('[data-testid="policy-yaml"]').first().textContent()) ?? '';
    assert.match(yaml, /name: web-only-from-other/);
    assert.match(
      (await page.locator('.details h4').first().textContent()) ?? '',
      /NetworkPolicy alpha\/web-only-from-other \(ingress\)/,
    );
    const chips = (await page.locator('.chip').allInnerTexts()).map((c) => c.replace(/\s*×$/, ''));
    assert.deepEqual(chips, ['--label k8s:app=web,k8s:io.kubernetes.pod.namespace=alpha']);
    await page.screenshot({ path: join(shots, 'ui-card-policies.png') });
    await page.keyboard.press('Escape');
  });

  it('exports the current selection as hubble jsonpb flow lines', async (t) => {
    if (!requireRoot(t, WHY, [...LAB_TOOLS, CHROMIUM])) return;
    await page.goto(`${url}/#verdict=DROPPED`);
    await until(
      async () => {
        const r = await rows();
        return r.length > 0 && r.every((x) => /DROPPED|DENIED/.test(x));
      },
      { timeoutMs: 10_000, what: 'only dropped rows' },
    );
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="export-json"]')]);
    const text = readFileSync((await download.path())!, 'utf8');
    const lines = text.trim().split('\n');
    assert.ok(lines.length >= 2, `${lines.length} lines`);
    for (const [i, l] of lines.entries()) {
      const r = fromProtoJson(protoType('observer.GetFlowsResponse'), JSON.parse(l), `line ${i + 1}`);
      assert.equal((r.flow as { verdict: number }).verdict, 2);
    }
  });

  it('says when the relay is gone and recovers once it is back', async (t) => {
    if (!requireRoot(t, WHY, [...LAB_TOOLS, CHROMIUM])) return;
    await page.goto(`${url}/#`);
    await page.locator('.conn.connected', { hasText: 'Live' }).waitFor({ timeout: 10_000 });
    const relayPid = Number(readFileSync(join(labDir(lab), 'relay.pid'), 'utf8'));
    process.kill(relayPid, 'SIGTERM');
    await page.locator('.conn', { hasText: 'Relay disconnected' }).waitFor({ timeout: 15_000 });
    await page.screenshot({ path: join(shots, 'ui-relay-down.png') });
    // `lab up` again restarts what is missing: the relay.
    await labUp({ lab, worldFiles: [MINI_WORLD], repoRoot: REPO, ui: { port: Number(new URL(url).port) } });
    await page.locator('.conn.connected', { hasText: 'Live' }).waitFor({ timeout: 20_000 });
    // Flows after the restart reach the map again.
    const web = state!.pods.find((p) => p.name === 'web')!.ip;
    const before = (await mapEdges()).find((e) => e.id === ALLOWED_EDGE)?.verdicts.forwarded ?? 0;
    assert.equal(curl('other', web), true);
    await until(async () => ((await mapEdges()).find((e) => e.id === ALLOWED_EDGE)?.verdicts.forwarded ?? 0) > before, {
      timeoutMs: 15_000,
      intervalMs: 250,
      what: 'a new allowed flow counted after the relay restarted',
    });
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
