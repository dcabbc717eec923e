// HTTP/2 (h2c with prior knowledge) behind the HTTP handler.
import type { Socket } from 'node:net';
import type { L7ConnectionContext } from '../l7-handler.js';
import type { Config } from './http-handler.js';

/** The client connection preface (RFC 9113 3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const H2_PREFACE_LENGTH = H2_PREFACE.length;

export function isHttp2Preface(b: Buffer): boolean {
  return b.length >= H2_PREFACE_LENGTH && b.subarray(0, H2_PREFACE_LENGTH).equals(H2_PREFACE);
}

export function handleHttp2(client: Socket, _ctx: L7ConnectionContext, _cfg: Config, _first: Buffer): void {
  client.destroy();
}
