// Client for the agent's local API: HTTP/1.1 with JSON bodies over the agent's unix socket.
import { request } from 'node:http';
import type { ApiErrorBody } from './api-types.js';

export class AgentApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, message: string, status: number) {
    super(message);
    this.name = 'AgentApiError';
    this.code = code;
    this.status = status;
  }
}

export class AgentClient {
  readonly socketPath: string;
  readonly timeoutMs: number;

  constructor(socketPath: string, timeoutMs = 10_000) {
    this.socketPath = socketPath;
    this.timeoutMs = timeoutMs;
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('PUT', path, body);
  }

  delete<T>(path: string, body?: unknown): Promise<T> {
    return this.call<T>('DELETE', path, body);
  }

  call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          path,
          method,
          headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
          timeout: this.timeoutMs,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d) => {
            text += d;
          });
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = text === '' ? undefined : JSON.parse(text);
            } catch {
              reject(
                new AgentApiError('MBR_AGENT_BAD_RESPONSE', `${method} ${path}: not JSON: ${text.slice(0, 200)}`, 0),
              );
              return;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const e = (parsed ?? {}) as Partial<ApiErrorBody>;
              reject(
                new AgentApiError(
                  e.code ?? 'MBR_AGENT_ERROR',
                  e.message ?? `HTTP ${res.statusCode}`,
                  res.statusCode ?? 500,
                ),
              );
              return;
            }
            resolve(parsed as T);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (err) =>
        reject(
          new AgentApiError(
            'MBR_AGENT_UNREACHABLE',
            `agent at ${this.socketPath}: ${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`.replace(
              '  ',
              ' ',
            ),
            0,
          ),
        ),
      );
      req.end(payload);
    });
  }

  /** Streams newline-delimited JSON objects until the caller aborts. */
  async stream(path: string, onItem: (item: unknown) => void, signal?: AbortSignal): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, path, method: 'GET', signal }, (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          buf += d;
          let nl = buf.indexOf('\n');
          while (nl >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim() !== '') onItem(JSON.parse(line));
            nl = buf.indexOf('\n');
          }
        });
        res.on('end', () => resolve());
        res.on('error', reject);
      });
      req.on('error', (err) => ((err as Error).name === 'AbortError' ? resolve() : reject(err)));
      req.end();
    });
  }
}
