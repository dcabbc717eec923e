// Fuzzes the one manifest reader and the policy parser: whatever the text, they return or throw
// ManifestError / PolicyError (an MBR_ code), never a TypeError, a RangeError or a stack overflow.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { readManifest } from '../../src/policy/manifest-reader.js';
import { parsePolicyFile, parsePolicyObject } from '../../src/policy/policy-parser.js';
import { fuzzProperty, hasMembraneCode, hostileJson, mutatedJson, returnsOrThrowsTyped } from '../support/fuzz.js';

const SEEDS = new URL('../../../test/fixtures/seed-policies/', import.meta.url).pathname;
const seedTexts = readdirSync(SEEDS)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => readFileSync(`${SEEDS}${f}`, 'utf8'));
const seedDocs: unknown[] = seedTexts.flatMap((t) => t.split(/^---$/m).map((d) => parseYaml(d)));

/** Pieces of YAML syntax, so random text reaches the parser's corners (anchors, tags, flow style). */
const YAML_TOKENS = [
  '[',
  ']',
  '{',
  '}',
  ': ',
  ':',
  '- ',
  '-',
  ',',
  '\n',
  '  ',
  '---\n',
  '...\n',
  '&a ',
  '*a',
  '&b ',
  '*b',
  '!!str ',
  '!!binary ',
  '!!map ',
  '!!set ',
  '!custom ',
  '<<: ',
  '? ',
  '|',
  '>',
  '"',
  "'",
  '#',
  '%YAML 1.2\n',
  '%TAG ! x\n',
  'apiVersion: cilium.io/v2\n',
  'kind: CiliumNetworkPolicy\n',
  'metadata:',
  'spec:',
  'ingress:',
  'egress:',
  'endpointSelector:',
  'matchLabels:',
  'toPorts:',
  'ports:',
  'port: ',
  'rules:',
  'http:',
  '__proto__',
  'constructor',
  '1e999',
  '0x',
  '.inf',
  '~',
  'null',
  'true',
  '\t',
  '\r',
  '\u0000',
  '\ufeff',
];
const yamlish = fc.array(fc.oneof(fc.constantFrom(...YAML_TOKENS), fc.string({ maxLength: 8 })), { maxLength: 60 });

const typed = (parse: () => unknown) => returnsOrThrowsTyped(parse, hasMembraneCode);

describe('fuzzing the manifest reader and the policy parser', () => {
  it('reads any string to documents or a typed error', () => {
    fuzzProperty(fc.string({ unit: 'binary', maxLength: 400 }), (text) => typed(() => readManifest(text, 'f.yaml')));
  });

  it('reads any sequence of YAML syntax to documents or a typed error', () => {
    fuzzProperty(yamlish, (parts) => typed(() => parsePolicyFile(parts.join(''), 'f.yaml')));
  });

  it('refuses nesting of any depth with a typed error, without running out of stack', () => {
    const open = fc.constantFrom('[', '{', '- ', '{a: ', '[{a: ', 'a:\n  ');
    fuzzProperty(fc.tuple(open, fc.integer({ min: 1, max: 4_000 })), ([o, n]) =>
      typed(() => parsePolicyFile(`spec: ${o.repeat(n)}`, 'deep.yaml')),
    );
  });

  it('parses a mutated seed policy (keys, values and types changed) or throws a typed error', () => {
    fuzzProperty(fc.constantFrom(...seedDocs).chain(mutatedJson), (doc) => {
      typed(() => parsePolicyObject(doc, 'mutated.yaml'));
      typed(() => parsePolicyFile(JSON.stringify(doc), 'mutated.json'));
    });
  });

  it('parses a mutated seed policy written back as YAML or throws a typed error', () => {
    fuzzProperty(fc.constantFrom(...seedDocs).chain(mutatedJson), (doc) =>
      typed(() => parsePolicyFile(stringifyYaml(doc, { aliasDuplicateObjects: false }), 'mutated.yaml')),
    );
  });

  it('parses a seed policy with one random span of its text replaced or throws a typed error', () => {
    const arb = fc.tuple(
      fc.constantFrom(...seedTexts),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      fc.integer({ min: 0, max: 40 }),
      fc.oneof(fc.constantFrom(...YAML_TOKENS), fc.string({ maxLength: 20 })),
    );
    fuzzProperty(arb, ([text, at, cut, insert]) => {
      const i = Math.floor(at * text.length);
      typed(() => parsePolicyFile(text.slice(0, i) + insert + text.slice(i + cut), 'spliced.yaml'));
    });
  });

  it('validates any decoded object (as the agent receives them) or throws a typed error', () => {
    fuzzProperty(hostileJson(), (v) => typed(() => parsePolicyObject(v, 'object.json')));
  });
});
