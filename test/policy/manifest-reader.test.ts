import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MANIFEST_MAX_BYTES, readManifest } from '../../src/policy/manifest-reader.js';

const CNP_HEAD = 'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: shop}\n';

/** Nine levels of nine aliases each: 9^9 strings if expanded. */
const BILLION_LAUGHS = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  ...'bcdefghi'.split('').map((n, i) => `${n}: &${n} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`),
].join('\n');

const nested = (levels: number) => `a: ${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}\n`;

const INVALID: ReadonlyArray<{ name: string; text: string; message: string }> = [
  {
    name: 'a key twice in one mapping, naming both lines',
    text: `${CNP_HEAD}spec:\n  endpointSelector: {}\n  ingress:\n  - fromEntities: [world]\n  ingress:\n  - {}\n`,
    message:
      'm.yaml: document 1 (line 8): spec.ingress: expected each key at most once in a mapping, got it again (first on line 6)',
  },
  {
    name: 'keys that differ in YAML but not once read ("1" and 1)',
    text: 'data:\n  1: a\n  "1": b\n',
    message:
      'm.yaml: document 1 (line 3): data.1: expected each key at most once in a mapping, got it again (first on line 2)',
  },
  {
    name: 'a duplicate key in a later document, numbered as in the file (empty documents count)',
    text: '---\n---\na: 1\n---\nb: 1\nb: 2\n',
    message:
      'm.yaml: document 3 (line 6): b: expected each key at most once in a mapping, got it again (first on line 5)',
  },
  {
    name: 'a billion laughs (alias expansions beyond the budget)',
    text: BILLION_LAUGHS,
    message: 'm.yaml: document 1 (line 3): d[0][0]: expected at most 100 alias expansions per document, got more',
  },
  {
    name: 'an alias of no anchor',
    text: 'a: *nowhere\n',
    message: 'm.yaml: document 1 (line 1): a: expected an alias of an anchor above it, got *nowhere',
  },
  {
    name: 'a document that is a list',
    text: 'a: 1\n---\n- a\n- b\n',
    message: 'm.yaml: document 2 (line 3): expected a mapping (apiVersion, kind, metadata, ...), got a list',
  },
  {
    name: 'a document that is a string',
    text: 'just some text\n',
    message: 'm.yaml: document 1 (line 1): expected a mapping (apiVersion, kind, metadata, ...), got "just some text"',
  },
  {
    name: 'nesting one level beyond 64',
    text: nested(65),
    message: 'm.yaml: document 1 (line 1): expected at most 64 levels of nesting, got more',
  },
  {
    name: 'nesting of 1,000 levels',
    text: `a: 1\n---\n${'['.repeat(1000)}${']'.repeat(1000)}\n`,
    message: 'm.yaml: document 2 (line 3): expected at most 64 levels of nesting, got more',
  },
  {
    name: 'nesting of 100,000 levels (refused while parsing, before the parser recurses)',
    text: '- '.repeat(100_000),
    message: 'm.yaml: document 1 (line 1): expected at most 64 levels of nesting, got more',
  },
  {
    name: 'block nesting beyond 64 levels',
    text: Array.from({ length: 70 }, (_, i) => `${' '.repeat(i)}a:`).join('\n'),
    // The parser's guard notices on the line after the 65th level opens.
    message: 'm.yaml: document 1 (line 66): expected at most 64 levels of nesting, got more',
  },
  {
    name: 'a syntax error',
    text: 'kind: [\n',
    message:
      'm.yaml: document 1 (line 2): expected YAML or JSON, got "Flow sequence in block collection must be sufficiently indented and end with a ]"',
  },
  {
    name: 'an unknown tag',
    text: 'a: 1\nb: !secret x\n',
    message: 'm.yaml: document 1 (line 2): expected YAML or JSON, got "Unresolved tag: !secret"',
  },
  {
    name: 'a duplicate key of 1 MB, shown cut to 80 characters',
    text: `metadata:\n  labels:\n    ? ${'k'.repeat(1 << 20)}\n    : a\n    ? ${'k'.repeat(1 << 20)}\n    : b\n`,
    message: `m.yaml: document 1 (line 5): metadata.labels.${'k'.repeat(77)}...: expected each key at most once in a mapping, got it again (first on line 3)`,
  },
  {
    name: 'text over 16 MiB',
    text: `a: "${'x'.repeat(MANIFEST_MAX_BYTES)}"\n`,
    message: 'm.yaml: expected at most 16777216 bytes (16 MiB), got more',
  },
];

describe('readManifest', () => {
  for (const c of INVALID)
    it(`rejects ${c.name}`, () => {
      assert.throws(() => readManifest(c.text, 'm.yaml'), { code: 'MBR_MANIFEST_INVALID', message: c.message });
    });

  it('numbers documents from 1 as in the file, skipping empty ones but counting them', () => {
    const docs = readManifest('---\na: 1\n---\n---\n# only a comment\n---\nb: 2\n---\n', 'm.yaml');
    assert.deepEqual(docs, [
      { document: 1, line: 2, value: { a: 1 } },
      { document: 4, line: 7, value: { b: 2 } },
    ]);
  });

  it('accepts 64 levels of nesting, a few aliases, JSON, and reads __proto__ as a plain key', () => {
    assert.equal(readManifest(nested(64), 'm.yaml').length, 1);
    assert.deepEqual(readManifest('a: &x {k: v}\nb: *x\n', 'm.yaml')[0].value, { a: { k: 'v' }, b: { k: 'v' } });
    assert.deepEqual(readManifest('{"kind": "Pod", "n": [1, 2]}', 'm.json')[0].value, { kind: 'Pod', n: [1, 2] });
    const v = readManifest('__proto__: {polluted: true}\n', 'm.yaml')[0].value;
    assert.deepEqual(Object.keys(v), ['__proto__']);
    assert.equal(({} as { polluted?: boolean }).polluted, undefined);
  });

  it('reads nothing from an empty file', () => {
    assert.deepEqual(readManifest('', 'm.yaml'), []);
  });
});
