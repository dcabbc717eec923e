// Every lint finding with a fixture that triggers it and one that does not
// (test/fixtures/lint/<finding>.{triggers,clean}.yaml, judged against world.yaml).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readManifestFile } from '../../src/cli/manifest-files.js';
import { formatLintFinding, type LintWorld, lintPolicies } from '../../src/policy/policy-lint.js';
import { parsePolicyObject } from '../../src/policy/policy-parser.js';
import { runMembrane } from '../support/membrane-cli.js';

const DIR = new URL('../../../test/fixtures/lint/', import.meta.url).pathname;

function docs(name: string) {
  const f = readManifestFile(join(DIR, name));
  return f.documents.map((d) => ({ file: name, document: d.document, value: d.value }));
}

function world(): LintWorld {
  const namespaces = [];
  const pods = [];
  for (const d of docs('world.yaml')) {
    const p = parsePolicyObject(d.value, d.file, d.document);
    namespaces.push(...p.namespaces);
    pods.push(...p.pods);
  }
  return { namespaces, pods };
}

const CASES: Array<{ finding: string; expect: Array<[code: string, document: number, path: string]> }> = [
  {
    finding: 'fqdn-without-dns-rule',
    expect: [['MBR_LINT_FQDN_WITHOUT_DNS_RULE', 1, 'spec.egress[0].toFQDNs']],
  },
  {
    finding: 'fqdn-not-in-dns-rules',
    expect: [['MBR_LINT_FQDN_NOT_IN_DNS_RULES', 1, 'spec.egress[0].toFQDNs[0]']],
  },
  {
    finding: 'default-deny-without-dns',
    expect: [['MBR_LINT_DEFAULT_DENY_WITHOUT_DNS', 1, 'spec.policyTypes']],
  },
  {
    finding: 'l7-port-not-served',
    expect: [
      ['MBR_LINT_L7_PORT_NOT_SERVED', 1, 'spec.ingress[0].toPorts[0].ports[0].port'],
      ['MBR_LINT_L7_PORT_NOT_SERVED', 2, 'spec.egress[0].toPorts[0].ports[0].port'],
    ],
  },
  {
    finding: 'selector-matches-nothing',
    expect: [
      ['MBR_LINT_SELECTOR_MATCHES_NOTHING', 1, 'spec.endpointSelector'],
      ['MBR_LINT_SELECTOR_MATCHES_NOTHING', 2, 'spec.ingress[0].fromEndpoints[0]'],
    ],
  },
  {
    finding: 'empty-rule-list',
    expect: [['MBR_LINT_EMPTY_RULE_LIST', 1, 'spec.ingress']],
  },
];

describe('policy lint', () => {
  const w = world();
  for (const c of CASES) {
    it(`reports ${c.finding} where it is`, () => {
      const got = lintPolicies(docs(`${c.finding}.triggers.yaml`), w);
      assert.deepEqual(
        got.map((f) => [f.code, f.document, f.path]),
        c.expect,
        got.map(formatLintFinding).join('\n'),
      );
      for (const f of got) {
        assert.equal(f.file, `${c.finding}.triggers.yaml`);
        assert.ok(f.why.length > 20 && f.fix.length > 10);
      }
    });
    it(`finds nothing in the ${c.finding} fixture that avoids it`, () => {
      const got = lintPolicies(docs(`${c.finding}.clean.yaml`), w);
      assert.deepEqual(got.map(formatLintFinding), []);
    });
  }

  it('judges toFQDNs by subject selector when there is no world', () => {
    assert.deepEqual(
      lintPolicies(docs('fqdn-without-dns-rule.triggers.yaml')).map((f) => f.code),
      ['MBR_LINT_FQDN_WITHOUT_DNS_RULE'],
    );
    assert.deepEqual(lintPolicies(docs('fqdn-without-dns-rule.clean.yaml')), []);
  });

  it('reports an invalid document as an error with its field path', () => {
    const bad = [
      {
        file: 'bad.yaml',
        document: 1,
        value: {
          apiVersion: 'cilium.io/v2',
          kind: 'CiliumNetworkPolicy',
          metadata: { name: 'x', namespace: 'shop' },
          spec: { endpointSelector: {}, egress: [{ toFQDNs: [{ matchName: 'a..b' }] }] },
        },
      },
    ];
    const got = lintPolicies(bad);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.code, 'MBR_LINT_INVALID');
    assert.equal(got[0]!.path, 'spec.egress[0].toFQDNs[0].matchName');
  });

  it('exits 1 with the findings when one is an error, 0 when there are only warnings', async () => {
    const bad = await runMembrane(['policy', 'lint', '-f', join(DIR, 'fqdn-without-dns-rule.triggers.yaml')]);
    assert.equal(bad.code, 1, bad.err);
    assert.match(
      bad.out,
      /fqdn-without-dns-rule.triggers.yaml: document 1: spec.egress\[0\].toFQDNs: error MBR_LINT_FQDN_WITHOUT_DNS_RULE: /,
    );
    assert.match(bad.out, /1 documents: 1 errors, 0 warnings/);
    const warn = await runMembrane([
      'policy',
      'lint',
      '-f',
      join(DIR, 'l7-port-not-served.triggers.yaml'),
      '--world',
      join(DIR, 'world.yaml'),
      '-o',
      'json',
    ]);
    assert.equal(warn.code, 0, warn.err);
    assert.equal(JSON.parse(warn.out)[0].code, 'MBR_LINT_L7_PORT_NOT_SERVED');
    const clean = await runMembrane(['policy', 'lint', '-f', join(DIR, 'fqdn-without-dns-rule.clean.yaml')]);
    assert.equal(clean.code, 0, clean.err);
  });
});
