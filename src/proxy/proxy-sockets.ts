// The proxy's sockets as Node objects, over the addon's thin socket calls
// (native/src/proxy_sockets.c): a transparent listener for net.Server, a marked (and optionally
// transparently bound) upstream connect that yields a net.Socket, and a transparent UDP socket.
// `netns` ('' = the process's own) names the network namespace a socket is created in: the proxy
// process runs in the node's, tests create sockets there from outside.
import { createServer, type Server, Socket } from 'node:net';
import { DatapathError } from '../datapath/datapath-error.js';
import { nativeBpf } from '../datapath/native.js';
import type { MarkedUdp, TransparentUdp, UdpAddress } from './l7-handler.js';

/**
 * Ends a socket whose last bytes are written, with its FIN sent now rather than when libuv next
 * polls the socket: a client that parses a `Connection: close` response and closes before the FIN
 * arrives keeps the TIME_WAIT itself, and enough of those exhaust its connect() ports
 * (bench/results/l7-redirect.md). While bytes are still queued in user space, end() alone.
 */
export function endNow(s: Socket): void {
  const h = (s as unknown as { _handle?: { fd?: number; writeQueueSize?: number } })._handle;
  if (!s.destroyed && s.writableLength === 0 && h && typeof h.fd === 'number' && h.fd >= 0 && h.writeQueueSize === 0)
    try {
      nativeBpf().shutdownWrite(h.fd);
    } catch {
      // end() below still closes it.
    }
  s.end();
}

export interface ListenOptions {
  readonly netns?: string;
  /** Default 0.0.0.0. */
  readonly ip?: string;
  readonly port: number;
  readonly backlog?: number;
}

/**
 * A listening IP_TRANSPARENT socket (SO_REUSEADDR/SO_REUSEPORT: every worker of the node's proxy
 * binds its own) taken by a net.Server. Its accepted sockets own the original destination:
 * `socket.localAddress`/`localPort` are the address the client connected to.
 */
export async function listenTransparent(
  o: ListenOptions,
  onConnection: (socket: Socket) => void,
): Promise<{ server: Server; fd: number }> {
  const fd = nativeCall(`listen on ${o.ip ?? '0.0.0.0'}:${o.port}`, () =>
    nativeBpf().tcpListen(o.netns ?? '', o.ip ?? '', o.port, o.backlog ?? 1024, true),
  );
  // Half-open kept: a client that shuts down its sending side still gets the answer.
  const server = createServer({ noDelay: true, allowHalfOpen: true }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, fd };
}

export interface ConnectOptions {
  readonly netns?: string;
  readonly dstIp: string;
  readonly dstPort: number;
  /** Bind transparently to this address first (the original client's): '' or absent = the node's. */
  readonly srcIp?: string;
  /** SO_MARK (proxy-marks.ts fromProxyMark). */
  readonly mark: number;
  readonly timeoutMs?: number;
}

/** Connects a marked socket; resolves with the connected net.Socket. */
export function connectMarked(o: ConnectOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const n = nativeBpf();
    let timer: NodeJS.Timeout | undefined;
    const what = `connect to ${o.dstIp}:${o.dstPort}${o.srcIp ? ` from ${o.srcIp}` : ''}`;
    let handle: object;
    try {
      handle = n.tcpConnect(o.netns ?? '', o.dstIp, o.dstPort, o.srcIp ?? '', o.mark, (errno, fd) => {
        if (timer) clearTimeout(timer);
        if (errno !== 0) {
          reject(socketError(what, errno));
          return;
        }
        const s = new Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
        s.setNoDelay(true);
        resolve(s);
      });
    } catch (err) {
      reject(DatapathError.fromNative(what, err));
      return;
    }
    timer = setTimeout(() => {
      n.tcpConnectCancel(handle);
      reject(Object.assign(new Error(`${what}: timed out after ${o.timeoutMs ?? 10_000} ms`), { code: 'ETIMEDOUT' }));
    }, o.timeoutMs ?? 10_000);
  });
}

/** Two connected stream sockets in this process (AF_UNIX), for chaining handlers. */
export function socketPair(): [Socket, Socket] {
  const [a, b] = nativeCall('socketpair', () => nativeBpf().socketPair());
  const wrap = (fd: number) => new Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
  return [wrap(a), wrap(b)];
}

export interface UdpOptions {
  readonly netns?: string;
  readonly ip?: string;
  readonly port: number;
  /** SO_MARK of the datagrams it sends (0: none). */
  readonly mark?: number;
}

/** A transparent UDP socket: every datagram with its original destination; replies from any source. */
export function openTransparentUdp(o: UdpOptions): TransparentUdp {
  const n = nativeBpf();
  const listeners: Array<(data: Buffer, src: UdpAddress, originalDst: UdpAddress) => void> = [];
  const handle = nativeCall(`open UDP ${o.ip ?? '0.0.0.0'}:${o.port}`, () =>
    n.udpOpen(o.netns ?? '', o.ip ?? '', o.port, true, 0, (data, srcIp, srcPort, dstIp, dstPort) => {
      for (const cb of listeners) cb(data, { ip: srcIp, port: srcPort }, { ip: dstIp, port: dstPort });
    }),
  );
  let closed = false;
  return {
    onMessage(cb) {
      listeners.push(cb);
    },
    async send(data, from, to) {
      if (closed) throw new Error('transparent UDP socket is closed');
      nativeCall(`send UDP ${from.ip}:${from.port} -> ${to.ip}:${to.port}`, () =>
        n.udpSend(handle, data, from.ip, from.port, to.ip, to.port, o.mark ?? 0),
      );
    },
    close() {
      if (closed) return;
      closed = true;
      n.udpClose(handle);
    },
  };
}

export interface MarkedUdpOptions {
  readonly netns?: string;
  /** SO_MARK (proxy-marks.ts fromProxyMark). */
  readonly mark: number;
}

/** An upstream UDP socket of the proxy: the node's address, an ephemeral port, the from-proxy mark. */
export function openMarkedUdp(o: MarkedUdpOptions): MarkedUdp {
  const n = nativeBpf();
  const listeners: Array<(data: Buffer, src: UdpAddress) => void> = [];
  const handle = nativeCall('open upstream UDP socket', () =>
    n.udpOpen(o.netns ?? '', '', 0, false, o.mark, (data, srcIp, srcPort) => {
      for (const cb of listeners) cb(data, { ip: srcIp, port: srcPort });
    }),
  );
  let closed = false;
  return {
    onMessage(cb) {
      listeners.push(cb);
    },
    async send(data, to) {
      if (closed) throw new Error('upstream UDP socket is closed');
      nativeCall(`send UDP to ${to.ip}:${to.port}`, () => n.udpSendTo(handle, data, to.ip, to.port));
    },
    close() {
      if (closed) return;
      closed = true;
      n.udpClose(handle);
    },
  };
}

function nativeCall<T>(doing: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw DatapathError.fromNative(doing, err);
  }
}

const ERRNO_NAMES: Record<number, string> = {
  104: 'ECONNRESET',
  110: 'ETIMEDOUT',
  111: 'ECONNREFUSED',
  113: 'EHOSTUNREACH',
  101: 'ENETUNREACH',
};

function socketError(what: string, errno: number): Error {
  const code = ERRNO_NAMES[errno] ?? `E${errno}`;
  return Object.assign(new Error(`${what}: ${code} (errno ${errno})`), { code, errno });
}
