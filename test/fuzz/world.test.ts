// Fuzzes the lab's world parser: any manifest text, and the demo world with values, keys and
// types changed, gives a World or a WorldError / ManifestError (an MBR_ code), never a TypeError.
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { parseWorld } from '../../src/lab/world.js';
import { fuzzProperty, hasMembraneCode, hostileJson, mutatedJson, returnsOrThrowsTyped } from '../support/fuzz.js';

const DEMO = new URL('../../../lab/worlds/demo.yaml', import.meta.url).pathname;
const demoDocs: unknown[] = parseAllDocuments(readFileSync(DEMO, 'utf8'))
  .map((d) => d.toJS())
  .filter((d) => d !== null);

const typed = (parse: () => unknown) => returnsOrThrowsTyped(parse, hasMembraneCode);
const world = (text: string) => typed(() => parseWorld([{ file: 'world.yaml', text }]));

describe('fuzzing the world parser', () => {
  it('parses any text to a world or a typed error', () => {
    fuzzProperty(fc.string({ unit: 'binary', maxLength: 300 }), world);
  });

  it('parses a mutated demo world document (values, keys and types changed) or throws a typed error', () => {
    fuzzProperty(fc.constantFrom(...demoDocs).chain(mutatedJson), (doc) => world(JSON.stringify(doc)));
  });

  it('parses a mutated demo world written back as YAML or throws a typed error', () => {
    fuzzProperty(fc.constantFrom(...demoDocs).chain(mutatedJson), (doc) =>
      world(stringifyYaml(doc, { aliasDuplicateObjects: false })),
    );
  });

  it('parses any mapping as a world document or throws a typed error', () => {
    const doc = fc.tuple(fc.constantFrom('Namespace', 'Pod', 'ConfigMap'), hostileJson(), hostileJson());
    fuzzProperty(doc, ([kind, metadata, spec]) =>
      world(JSON.stringify({ apiVersion: 'v1', kind, metadata, spec, data: spec })),
    );
  });
});
