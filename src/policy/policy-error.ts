// Errors from reading and validating policy files. Every issue names the file, the document, the
// field path, what was expected and what was found; a file with any issue is rejected whole.

export interface PolicyIssue {
  readonly file: string;
  /** 1-based index of the YAML document in the file. */
  readonly document: number;
  /** e.g. `spec.ingress[0].toPorts[0].ports[0].port` */
  readonly path: string;
  readonly expected: string;
  /** The bad value as shown to the user (JSON text). */
  readonly got: string;
}

// YAML problems (syntax, duplicate keys, limits) are ManifestError (manifest-reader.ts).
export type PolicyErrorCode = 'MBR_POLICY_INVALID';

export class PolicyError extends Error {
  readonly code: PolicyErrorCode;
  readonly issues: readonly PolicyIssue[];
  constructor(code: PolicyErrorCode, issues: readonly PolicyIssue[]) {
    super(issues.map(formatPolicyIssue).join('\n'));
    this.name = 'PolicyError';
    this.code = code;
    this.issues = issues;
  }
}

export function formatPolicyIssue(i: PolicyIssue): string {
  const where = i.path === '' ? '' : `${i.path}: `;
  return `${i.file}: document ${i.document}: ${where}expected ${i.expected}, got ${i.got}`;
}

/** How a bad value is quoted in a message: strings in double quotes, the rest as compact JSON. */
export function showValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** How a key is shown in a field path: as written, cut to 80 characters (a 1 MB key stays short). */
export function showKey(key: string): string {
  return key.length > 80 ? `${key.slice(0, 77)}...` : key;
}
