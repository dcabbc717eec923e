// Reading manifest files for the one manifest reader (src/policy/manifest-reader.ts): which files a
// path names, and their text, at most MANIFEST_MAX_BYTES of it. This is the I/O half; parsing is
// the pure half's.
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  MANIFEST_MAX_BYTES,
  type ManifestDocument,
  manifestTooLarge,
  readManifest,
} from '../policy/manifest-reader.js';

export interface ManifestFile {
  readonly file: string;
  readonly documents: readonly ManifestDocument[];
}

/**
 * The files a path names: a file itself, or a directory's *.yaml, *.yml and *.json files in name
 * order (and those of its subdirectories, in place, when recursive). Throws fs errors as they are.
 */
export function listManifestFiles(path: string, o: { recursive: boolean }): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap((e) => {
      const full = join(path, e.name);
      if (e.isDirectory()) return o.recursive ? listManifestFiles(full, o) : [];
      return /\.(ya?ml|json)$/.test(e.name) ? [full] : [];
    });
}

/**
 * A file's text, reading at most MANIFEST_MAX_BYTES + 1 bytes: more is a ManifestError naming the
 * file, so `-f /dev/zero` ends quickly instead of growing without bound. Throws fs errors as they are.
 */
export function readManifestText(file: string): string {
  const chunks: Buffer[] = [];
  let total = 0;
  const fd = openSync(file, 'r');
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
      const got = readSync(fd, chunk, 0, chunk.length, null);
      if (got === 0) break;
      total += got;
      if (total > MANIFEST_MAX_BYTES) throw manifestTooLarge(file);
      chunks.push(chunk.subarray(0, got));
    }
  } finally {
    closeSync(fd);
  }
  return Buffer.concat(chunks, total).toString('utf8');
}

/** A file's documents (readManifestText, then readManifest). */
export function readManifestFile(file: string): ManifestFile {
  return { file, documents: readManifest(readManifestText(file), file) };
}

// Private helpers.

const READ_CHUNK_BYTES = 64 * 1024;
