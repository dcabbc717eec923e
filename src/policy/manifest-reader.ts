// The one reader of manifest text (YAML or JSON, one or many documents) for every command that
// reads manifests: policy validate and trace, apply and delete, and the lab's world. Text in,
// documents out; the caller reads the file (src/cli/manifest-files.ts, with the byte limit).
//
// Limits, each an error naming the file, the document (1-based, counting empty documents so the
// number matches the file) and the line:
// - a key twice in one mapping (a second `ingress:` must not silently replace the first);
// - more than MANIFEST_MAX_ALIASES alias expansions in a document ("billion laughs");
// - more than MANIFEST_MAX_DEPTH levels of nesting, checked while parsing, before the parser's
//   own recursion can run out of stack;
// - a document that is not a mapping (a list, a bare string);
// - text longer than MANIFEST_MAX_BYTES.
import { Composer, type CST, type Document, isAlias, isMap, isScalar, isSeq, Lexer, LineCounter, Parser } from 'yaml';
import { showKey, showValue } from './policy-error.js';

export const MANIFEST_MAX_BYTES = 16 * 1024 * 1024;
export const MANIFEST_MAX_ALIASES = 100;
export const MANIFEST_MAX_DEPTH = 64;

export interface ManifestDocument {
  /** 1-based position of the document in its file; empty documents count but are not returned. */
  readonly document: number;
  /** 1-based line where the document's content starts. */
  readonly line: number;
  readonly value: Record<string, unknown>;
}

export interface ManifestProblem {
  readonly file: string;
  /** Absent when the problem is the file as a whole (its size). */
  readonly document?: number;
  readonly line?: number;
  /** Field path inside the document, e.g. `spec.ingress`; '' for the document itself. */
  readonly path: string;
  readonly expected: string;
  readonly got: string;
}

export class ManifestError extends Error {
  readonly code = 'MBR_MANIFEST_INVALID';
  readonly problem: ManifestProblem;
  constructor(problem: ManifestProblem) {
    super(formatManifestProblem(problem));
    this.name = 'ManifestError';
    this.problem = problem;
  }
}

export function formatManifestProblem(p: ManifestProblem): string {
  const doc =
    p.document === undefined ? '' : ` document ${p.document}${p.line === undefined ? '' : ` (line ${p.line})`}:`;
  const where = p.path === '' ? '' : ` ${p.path}:`;
  return `${p.file}:${doc}${where} expected ${p.expected}, got ${p.got}`;
}

/** The error for text (or a file) over MANIFEST_MAX_BYTES; the file reader throws the same one. */
export function manifestTooLarge(file: string): ManifestError {
  return new ManifestError({
    file,
    path: '',
    expected: `at most ${MANIFEST_MAX_BYTES} bytes (${MANIFEST_MAX_BYTES / 1024 / 1024} MiB)`,
    got: 'more',
  });
}

/** Parses every document of one file's text. Throws ManifestError on the first problem. */
export function readManifest(text: string, file: string): ManifestDocument[] {
  if (text.length > MANIFEST_MAX_BYTES || Buffer.byteLength(text, 'utf8') > MANIFEST_MAX_BYTES)
    throw manifestTooLarge(file);
  const lines = new LineCounter();
  const lineOf = (offset: number) => lines.linePos(offset).line;
  const docs = Array.from(new Composer({ uniqueKeys: false }).compose(parseShallow(text, file, lines)));
  const out: ManifestDocument[] = [];
  docs.forEach((doc, i) => {
    const document = i + 1;
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem)
      throw new ManifestError({
        file,
        document,
        line: lineOf(problem.pos[0]),
        path: '',
        expected: 'YAML or JSON',
        got: showMessage(problem.message.split('\n')[0]),
      });
    const root = doc.contents;
    if (root === null || (isScalar(root) && root.value === null)) return;
    const line = lineOf(root.range[0]);
    if (!isMap(root))
      throw new ManifestError({
        file,
        document,
        line,
        path: '',
        expected: 'a mapping (apiVersion, kind, metadata, ...)',
        got: isSeq(root) ? 'a list' : isScalar(root) ? showValue(root.value) : 'an alias',
      });
    const value = new Converter(doc, file, document, lineOf).convert(root, '', 1) as Record<string, unknown>;
    out.push({ document, line, value });
  });
  return out;
}

// Private helpers.

/**
 * Lexes and parses to CST tokens, refusing nesting deeper than the limit as soon as the parser's
 * stack shows it: the parser and composer take time and stack in proportion to the depth, and
 * 100,000 `[` would exhaust either. The converter below checks the exact depth; this guard keeps
 * two levels of slack (the document token and a pending scalar) so that check is the one that fires
 * for anything near the limit.
 */
function parseShallow(text: string, file: string, lines: LineCounter): CST.Token[] {
  const parser = new Parser(lines.addNewLine);
  lines.addNewLine(0); // as Parser.parse does before the first lexeme
  const tokens: CST.Token[] = [];
  const push = (t: CST.Token) => tokens.push(t);
  for (const lexeme of new Lexer().lex(text)) {
    for (const t of parser.next(lexeme)) push(t);
    if (parser.stack.length > MANIFEST_MAX_DEPTH + 2)
      throw new ManifestError({
        file,
        document: tokens.filter((t) => t.type === 'document').length + 1,
        line: lines.linePos(parser.offset).line,
        path: '',
        expected: `at most ${MANIFEST_MAX_DEPTH} levels of nesting`,
        got: 'more',
      });
  }
  for (const t of parser.end()) push(t);
  return tokens;
}

/** Node → plain JS value, checking duplicate keys, the alias budget and the depth on the way. */
class Converter {
  #aliases = 0;
  constructor(
    readonly doc: Document.Parsed,
    readonly file: string,
    readonly document: number,
    readonly lineOf: (offset: number) => number,
  ) {}

  convert(node: unknown, path: string, depth: number): unknown {
    if (isAlias(node)) {
      this.#aliases++;
      if (this.#aliases > MANIFEST_MAX_ALIASES)
        throw this.fail(node, path, `at most ${MANIFEST_MAX_ALIASES} alias expansions per document`, 'more');
      const target = node.resolve(this.doc);
      if (target === undefined) throw this.fail(node, path, 'an alias of an anchor above it', `*${node.source}`);
      return this.convert(target, path, depth);
    }
    if (isMap(node) || isSeq(node)) {
      if (depth > MANIFEST_MAX_DEPTH)
        // No path: at this depth it would be 64 segments long; the line says where.
        throw this.fail(node, '', `at most ${MANIFEST_MAX_DEPTH} levels of nesting`, 'more');
    }
    if (isSeq(node)) return node.items.map((x, i) => this.convert(x, `${path}[${i}]`, depth + 1));
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      const firstLine = new Map<string, number>();
      for (const pair of node.items) {
        const key = this.key(pair.key, path, depth);
        const at = path === '' ? showKey(key) : `${path}.${showKey(key)}`;
        const first = firstLine.get(key);
        if (first !== undefined)
          throw this.fail(pair.key, at, 'each key at most once in a mapping', `it again (first on line ${first})`);
        firstLine.set(key, this.lineAt(pair.key));
        // defineProperty: a `__proto__` key is data, not the object's prototype.
        Object.defineProperty(out, key, {
          value: this.convert(pair.value, at, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    if (isScalar(node)) return node.value;
    return null; // `key:` with nothing after it
  }

  key(node: unknown, path: string, depth: number): string {
    const k = this.convert(node, path, depth);
    if (k === null || k === undefined) return '';
    if (typeof k === 'object') throw this.fail(node, path, 'a plain key (a string or number)', showValue(k));
    return String(k);
  }

  fail(node: unknown, path: string, expected: string, got: string): ManifestError {
    return new ManifestError({
      file: this.file,
      document: this.document,
      line: this.lineAt(node),
      path,
      expected,
      got,
    });
  }

  lineAt(node: unknown): number {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range ? this.lineOf(range[0]) : 0;
  }
}

/** yaml's own message, quoted; longer than showValue's cap, as it is text to read, not an echo. */
function showMessage(m: string): string {
  return JSON.stringify(m.length > 160 ? `${m.slice(0, 157)}...` : m);
}
