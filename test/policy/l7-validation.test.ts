// L7 rule validation as Cilium's sanitizer does it (pkg/policy/api/rule_validation.go, http.go,
// and their tests), plus the Secret manifests headerMatches read.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { parsePolicyFile } from '../../src/policy/policy-parser.js';
import { secretMatchValue } from '../../src/policy/world.js';

const sel = { matchLabels: { app: 'web' } };
function cnp(spec: unknown, kind = 'CiliumNetworkPolicy'): string {
  return stringify({ apiVersion: 'cilium.io/v2', kind, metadata: { name: 'p', namespace: 'shop' }, spec });
}
const http = [{ method: 'GET', path: '/' }];
const portRule = (extra: Record<string, unknown>, protocol?: string) => ({
  ports: [{ port: '80', ...(protocol !== undefined ? { protocol } : {}) }],
  ...extra,
});

function refused(yaml: string): string {
  try {
    parsePolicyFile(yaml, 'case.yaml');
  } catch (e) {
    assert.equal((e as { code?: string }).code, 'MBR_POLICY_INVALID');
    return (e as Error).message;
  }
  assert.fail('accepted');
}

describe('L7 rule validation (Cilium sanitizer)', () => {
  const CASES: Array<[string, string, string]> = [
    [
      'http rules on ANY',
      cnp({ endpointSelector: sel, ingress: [{ toPorts: [portRule({ rules: { http } }, 'ANY')] }] }),
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules: expected TCP for http rules (L7 rules other than DNS need TCP), got "ANY"',
    ],
    [
      'http rules on a port without a protocol (ANY)',
      cnp({ endpointSelector: sel, ingress: [{ toPorts: [portRule({ rules: { http } })] }] }),
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules: expected TCP for http rules (L7 rules other than DNS need TCP), got "ANY"',
    ],
    [
      'kafka rules on UDP',
      cnp({ endpointSelector: sel, egress: [{ toPorts: [portRule({ rules: { kafka: [{ topic: 't' }] } }, 'UDP')] }] }),
      'case.yaml: document 1: spec.egress[0].toPorts[0].rules: expected TCP for kafka rules (L7 rules other than DNS need TCP), got "UDP"',
    ],
    [
      'serverNames next to L7 rules without terminatingTLS',
      cnp({
        endpointSelector: sel,
        egress: [{ toPorts: [portRule({ serverNames: ['a.b'], rules: { http } }, 'TCP')] }],
      }),
      'case.yaml: document 1: spec.egress[0].toPorts[0].serverNames: expected no serverNames next to L7 rules unless terminatingTLS is set (the proxy cannot see the SNI otherwise), got serverNames without terminatingTLS',
    ],
    [
      'an empty server name',
      cnp({ endpointSelector: sel, egress: [{ toPorts: [portRule({ serverNames: [''] }, 'TCP')] }] }),
      'case.yaml: document 1: spec.egress[0].toPorts[0].serverNames[0]: expected a non-empty server name, got ""',
    ],
    [
      'a listener next to L7 rules',
      cnp({
        endpointSelector: sel,
        egress: [
          {
            toPorts: [
              portRule(
                { listener: { envoyConfig: { kind: 'CiliumEnvoyConfig', name: 'x' }, name: 'l' }, rules: { http } },
                'TCP',
              ),
            ],
          },
        ],
      }),
      'case.yaml: document 1: spec.egress[0].toPorts[0].listener: expected no listener next to L7 rules, got listener and rules',
    ],
    [
      'L7 rules in a host policy',
      cnp(
        { nodeSelector: sel, ingress: [{ toPorts: [portRule({ rules: { http } }, 'TCP')] }] },
        'CiliumClusterwideNetworkPolicy',
      ),
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules: expected no L7 rules in a host policy (nodeSelector), got L7 rules',
    ],
    [
      'a terminatingTLS without a secret',
      cnp({
        endpointSelector: sel,
        egress: [{ toPorts: [portRule({ terminatingTLS: { certificate: 'c' } }, 'TCP')] }],
      }),
      'case.yaml: document 1: spec.egress[0].toPorts[0].terminatingTLS.secret: expected a secret (name, and namespace) holding the TLS certificate and key, got none',
    ],
    [
      'an originatingTLS secret without a name',
      cnp({
        endpointSelector: sel,
        egress: [{ toPorts: [portRule({ originatingTLS: { secret: { namespace: 'x' } } }, 'TCP')] }],
      }),
      'case.yaml: document 1: spec.egress[0].toPorts[0].originatingTLS.secret.name: expected the name of a Secret, got nothing',
    ],
    [
      'a headerMatches secret without a name',
      cnp({
        endpointSelector: sel,
        ingress: [
          {
            toPorts: [
              portRule({ rules: { http: [{ headerMatches: [{ name: 'X', secret: { namespace: 'shop' } }] }] } }, 'TCP'),
            ],
          },
        ],
      }),
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].secret.name: expected the name of a Secret, got nothing',
    ],
    [
      'a headerMatches without a name',
      cnp({
        endpointSelector: sel,
        ingress: [{ toPorts: [portRule({ rules: { http: [{ headerMatches: [{ value: 'v' }] }] } }, 'TCP')] }],
      }),
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].name: expected a header name, got nothing',
    ],
    [
      'an unknown mismatch action',
      cnp({
        endpointSelector: sel,
        ingress: [
          { toPorts: [portRule({ rules: { http: [{ headerMatches: [{ name: 'X', mismatch: 'DROP' }] }] } }, 'TCP')] },
        ],
      }),
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].mismatch: expected "LOG", "ADD", "DELETE" or "REPLACE", got "DROP"',
    ],
    [
      'a header value that would split the head',
      cnp({
        endpointSelector: sel,
        ingress: [
          {
            toPorts: [
              portRule(
                { rules: { http: [{ headerMatches: [{ name: 'X', value: 'a\r\nY: b', mismatch: 'ADD' }] }] } },
                'TCP',
              ),
            ],
          },
        ],
      }),
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].value: expected a header value without NUL, CR or LF, got "a\\r\\nY: b"',
    ],
    [
      'a path that is not an RE2 regex',
      cnp({ endpointSelector: sel, ingress: [{ toPorts: [portRule({ rules: { http: [{ path: '/a(' }] } }, 'TCP')] }] }),
      'case.yaml: document 1: spec.ingress[0].toPorts[0].rules.http[0].path: expected a valid regular expression (RE2 syntax: missing )), got "/a("',
    ],
    [
      'a backreference (not RE2)',
      cnp({
        endpointSelector: sel,
        ingress: [{ toPorts: [portRule({ rules: { http: [{ method: '(GET)\\1' }] } }, 'TCP')] }],
      }),
      'RE2',
    ],
    [
      'DNS rules on ingress',
      cnp({
        endpointSelector: sel,
        ingress: [{ toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [{ matchName: 'a.b' }] } }] }],
      }),
      'dns rules on egress only',
    ],
    [
      'toPorts next to toServices',
      cnp({
        endpointSelector: sel,
        egress: [
          {
            toServices: [{ k8sService: { serviceName: 's', namespace: 'shop' } }],
            toPorts: [portRule({ rules: { http } }, 'TCP')],
          },
        ],
      }),
      'no toPorts next to toServices',
    ],
    [
      'http rules on port 0',
      cnp({
        endpointSelector: sel,
        ingress: [{ toPorts: [{ ports: [{ port: '0', protocol: 'TCP' }], rules: { http } }] }],
      }),
      'a non-zero port for http rules',
    ],
  ];
  for (const [name, yaml, want] of CASES)
    it(`refuses ${name}`, () => {
      const msg = refused(yaml);
      if (want.startsWith('case.yaml')) assert.equal(msg, want);
      else assert.ok(msg.includes(want), msg);
    });

  it('accepts http and DNS rules where Cilium does', () => {
    const ok = cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [portRule({ rules: { http } }, 'TCP')] }],
      egress: [
        { toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }], rules: { dns: [{ matchPattern: '*' }] } }] },
        {
          toPorts: [
            portRule({ serverNames: ['a.b'], terminatingTLS: { secret: { name: 't' } }, rules: { http } }, 'TCP'),
          ],
        },
      ],
    });
    assert.equal(parsePolicyFile(ok, 'ok.yaml').policies.length, 1);
  });
});

describe('Secret manifests', () => {
  const secret = (data: Record<string, unknown>, field = 'data') =>
    stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'token', namespace: 'shop' }, [field]: data });
  const policyWith = (hm: Record<string, unknown>) =>
    cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [portRule({ rules: { http: [{ headerMatches: [hm] }] } }, 'TCP')] }],
    });

  it('reads data (base64) and stringData, and defaults a headerMatches secret to the policy namespace', () => {
    const f = parsePolicyFile(
      `${secret({ value: Buffer.from('s3cr3t').toString('base64') })}---\n${policyWith({ name: 'Authorization', secret: { name: 'token' } })}`,
      'f.yaml',
    );
    assert.deepEqual(f.secrets, [{ namespace: 'shop', name: 'token', data: { value: 's3cr3t' } }]);
    assert.equal(secretMatchValue(f.secrets![0]), 's3cr3t');
    const rule = f.policies[0].rules[0].ingress!.entries[0].l7!.http![0];
    assert.deepEqual(rule.headerMatches?.[0].secret, { name: 'token', namespace: 'shop' });
    const s2 = parsePolicyFile(secret({ v: 'plain' }, 'stringData'), 'g.yaml');
    assert.deepEqual(s2.secrets?.[0].data, { v: 'plain' });
  });

  it('refuses data that is not base64, without printing it', () => {
    const msg = refused(secret({ value: 'not*base64!' }));
    assert.equal(msg, 'case.yaml: document 1: data.value: expected base64 data, got a value that is not base64');
    assert.ok(!msg.includes('not*base64'));
  });

  it('refuses a headerMatches Secret of the same file with more than one entry', () => {
    const msg = refused(
      `${secret({ a: 'YQ==', b: 'Yg==' })}---\n${policyWith({ name: 'X', secret: { name: 'token' } })}`,
    );
    assert.equal(
      msg,
      'case.yaml: document 2: spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].secret: expected Secret shop/token to hold exactly one entry (the header value), got 2 entries',
    );
  });
});
