// Writes flows as jsonpb lines (one GetFlowsResponse each, as `membrane observe -o jsonpb`
// prints them) to a file, so flows outlive the ring. The file rotates when the next write would
// pass maxSizeBytes: it is renamed to <name>-<UTC time>.<ext> and the oldest such backups beyond
// maxBackups are deleted. Lines are buffered and written in chunks; a line never straddles files.
import { closeSync, existsSync, openSync, readdirSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { toProtoJson } from '../api/proto-json.js';
import { protoType } from '../api/proto-root.js';
import { compileFlowFilters, type FlowFilter, type FlowPredicate } from '../filters/flow-filter.js';
import type { FlowsResponse } from '../flow/flow.js';
import { compileFieldMask } from '../observer/flow-reader.js';

export interface FlowExporterOptions {
  readonly filePath: string;
  /** Rotate before the file would grow past this (default 10 MiB). */
  readonly maxSizeBytes?: number;
  /** Rotated files to keep (default 5). */
  readonly maxBackups?: number;
  readonly allowlist?: FlowFilter[];
  readonly denylist?: FlowFilter[];
  readonly fieldMask?: readonly string[];
  /** Buffered bytes that trigger a write (default 64 KiB). */
  readonly chunkBytes?: number;
  readonly nowMs?: () => number;
}

export class FlowExporter {
  private fd: number;
  private size: number;
  private buffer: string[] = [];
  private buffered = 0;
  private readonly match: FlowPredicate;
  private readonly mask: ReturnType<typeof compileFieldMask> | undefined;
  private readonly maxSize: number;
  private readonly maxBackups: number;
  private readonly chunk: number;
  private readonly nowMs: () => number;
  private readonly type = protoType('observer.GetFlowsResponse');
  private exported = 0;

  constructor(private readonly opts: FlowExporterOptions) {
    this.match = compileFlowFilters(opts.allowlist, opts.denylist);
    this.mask =
      opts.fieldMask !== undefined && opts.fieldMask.length > 0 ? compileFieldMask(opts.fieldMask) : undefined;
    this.maxSize = opts.maxSizeBytes ?? 10 << 20;
    this.maxBackups = opts.maxBackups ?? 5;
    this.chunk = opts.chunkBytes ?? 64 << 10;
    this.nowMs = opts.nowMs ?? Date.now;
    this.fd = openSync(opts.filePath, 'a', 0o640);
    this.size = existsSync(opts.filePath) ? statSync(opts.filePath).size : 0;
  }

  /** Queues a response; flows are filtered, lost events and node status always pass. */
  export(r: FlowsResponse): void {
    let out = r;
    if (r.flow !== undefined) {
      if (!this.match(r.flow)) return;
      if (this.mask !== undefined) out = { ...r, flow: this.mask(r.flow) };
    }
    const line = `${JSON.stringify(toProtoJson(this.type, out))}\n`;
    this.buffer.push(line);
    this.buffered += Buffer.byteLength(line);
    this.exported++;
    if (this.buffered >= this.chunk) this.flush();
  }

  get exportedCount(): number {
    return this.exported;
  }

  flush(): void {
    if (this.buffer.length === 0) return;
    let chunk = '';
    let chunkBytes = 0;
    for (const line of this.buffer) {
      const n = Buffer.byteLength(line);
      if (this.size + chunkBytes + n > this.maxSize && this.size + chunkBytes > 0) {
        this.write(chunk);
        chunk = '';
        chunkBytes = 0;
        this.rotate();
      }
      chunk += line;
      chunkBytes += n;
    }
    this.write(chunk);
    this.buffer = [];
    this.buffered = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }

  private write(text: string): void {
    if (text === '') return;
    const b = Buffer.from(text);
    let off = 0;
    while (off < b.length) off += writeSync(this.fd, b, off);
    this.size += b.length;
  }

  private rotate(): void {
    closeSync(this.fd);
    const file = this.opts.filePath;
    const ext = extname(file);
    const stem = basename(file, ext);
    const stamp = new Date(this.nowMs()).toISOString().replace(/:/g, '-').replace('Z', '');
    let target = join(dirname(file), `${stem}-${stamp}${ext}`);
    for (let i = 1; existsSync(target); i++) target = join(dirname(file), `${stem}-${stamp}.${i}${ext}`);
    renameSync(file, target);
    this.fd = openSync(file, 'a', 0o640);
    this.size = 0;
    this.prune(stem, ext);
  }

  private prune(stem: string, ext: string): void {
    const dir = dirname(this.opts.filePath);
    const backups = readdirSync(dir)
      .filter((n) => n.startsWith(`${stem}-`) && n.endsWith(ext) && n !== basename(this.opts.filePath))
      .map((n) => ({ n, mtime: statSync(join(dir, n)).mtimeMs }))
      .sort((a, b) => (a.n < b.n ? -1 : a.n > b.n ? 1 : a.mtime - b.mtime));
    for (const b of backups.slice(0, Math.max(0, backups.length - this.maxBackups))) unlinkSync(join(dir, b.n));
  }
}
