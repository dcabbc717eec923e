// The gRPC client side of bench/hubble.bench.ts, in a worker thread so that client decoding does
// not share the server's core. It must not load src/hubble/filters: the re2 addon cannot be loaded
// in more than one thread of a process.
import http2 from 'node:http2';
import { parentPort } from 'node:worker_threads';
import type * as grpc from '@grpc/grpc-js';
import { observerClient } from '../src/hubble/api/grpc-clients.js';
import { protoType } from '../src/hubble/api/proto-root.js';
import type { FlowsResponse } from '../src/hubble/flow/flow.js';

clientWorker();

/** The gRPC client side of benches 2 and 3, driven by messages from the main thread. */
function clientWorker(): void {
  let follow: { flows: number; lost: number; expect: number; done: () => void } | undefined;
  parentPort!.on('message', (m: { cmd: string; addr?: string; n?: number }) => {
    if (m.cmd === 'pull') {
      const client = observerClient(m.addr!);
      const t = process.hrtime.bigint();
      let count = 0;
      let last: string | undefined;
      const call = client.GetFlows({ number: m.n }) as grpc.ClientReadableStream<FlowsResponse>;
      call.on('data', (r: FlowsResponse) => {
        count++;
        last = r.flow?.uuid;
      });
      call.on('end', () => {
        client.close();
        parentPort!.postMessage({ count, seconds: Number(process.hrtime.bigint() - t) / 1e9, last });
      });
      call.on('error', (e) => parentPort!.postMessage({ count: -1, seconds: 1, last: String(e) }));
    } else if (m.cmd === 'pull-raw') {
      // The same request read by a client that only splits gRPC frames: the server's own rate.
      const session = connect(m.addr!);
      const t = process.hrtime.bigint();
      const req = session.request({
        ':method': 'POST',
        ':path': '/observer.Observer/GetFlows',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      req.end(grpcFrame(protoType('observer.GetFlowsRequest').encode({ number: m.n }).finish()));
      let count = 0;
      let pending: Buffer = Buffer.alloc(0);
      req.on('data', (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        let off = 0;
        while (pending.length - off >= 5) {
          const len = pending.readUInt32BE(off + 1);
          if (pending.length - off - 5 < len) break;
          count++;
          off += 5 + len;
        }
        pending = pending.subarray(off);
      });
      req.on('end', () => {
        session.close();
        parentPort!.postMessage({ count, seconds: Number(process.hrtime.bigint() - t) / 1e9 });
      });
    } else if (m.cmd === 'follow') {
      const client = observerClient(m.addr!);
      const call = client.GetFlows({ follow: true }) as grpc.ClientReadableStream<FlowsResponse>;
      const state = {
        flows: 0,
        lost: 0,
        expect: Number.POSITIVE_INFINITY,
        done: () => {
          call.cancel();
          client.close();
          parentPort!.postMessage({ flows: state.flows, lost: state.lost });
          state.done = () => {};
        },
      };
      follow = state;
      call.on('metadata', () => parentPort!.postMessage('ready'));
      call.on('data', (r: FlowsResponse) => {
        if (r.flow) state.flows++;
        else if (r.lost_events) state.lost += Number(r.lost_events.num_events_lost ?? 0);
        if (state.flows + state.lost >= state.expect) state.done();
      });
      call.on('error', () => {});
    } else if (m.cmd === 'follow-raw') {
      // Reads the gRPC frames and only looks at each message's first tag (1 flow, 3 lost
      // events): what the server sustains, without a JavaScript protobuf decoder as the limit.
      const session = connect(m.addr!);
      const req = session.request({
        ':method': 'POST',
        ':path': '/observer.Observer/GetFlows',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      const body = protoType('observer.GetFlowsRequest').encode({ follow: true }).finish();
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      frame.set(body, 5);
      req.end(frame);
      const lostType = protoType('observer.GetFlowsResponse');
      const state = {
        flows: 0,
        lost: 0,
        expect: Number.POSITIVE_INFINITY,
        done: () => {
          req.close();
          session.close();
          parentPort!.postMessage({ flows: state.flows, lost: state.lost });
          state.done = () => {};
        },
      };
      follow = state;
      req.on('response', () => parentPort!.postMessage('ready'));
      let pending: Buffer = Buffer.alloc(0);
      req.on('data', (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        let off = 0;
        while (pending.length - off >= 5) {
          const len = pending.readUInt32BE(off + 1);
          if (pending.length - off - 5 < len) break;
          const msg = pending.subarray(off + 5, off + 5 + len);
          if (msg[0] === 0x0a) state.flows++;
          else if (msg[0] === 0x1a)
            state.lost += Number(
              (lostType.toObject(lostType.decode(msg), { longs: Number }) as FlowsResponse).lost_events
                ?.num_events_lost ?? 0,
            );
          off += 5 + len;
        }
        pending = pending.subarray(off);
        if (state.flows + state.lost >= state.expect) state.done();
      });
      req.on('error', () => {});
    } else if (m.cmd === 'expect' && follow !== undefined) {
      const state = follow;
      state.expect = m.n!;
      if (state.flows + state.lost >= state.expect) state.done();
      // Whatever has not arrived 3 s after the producer stopped is reported as missing.
      else setTimeout(() => state.done(), 3000);
    }
  });
}

function grpcFrame(body: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  return frame;
}

/** An HTTP/2 session with a 4 MiB receive window, as grpc-go sizes its windows for streams. */
function connect(addr: string): http2.ClientHttp2Session {
  const session = http2.connect(`http://${addr}`, { settings: { initialWindowSize: 4 << 20 } });
  session.on('connect', () => session.setLocalWindowSize(4 << 20));
  return session;
}
