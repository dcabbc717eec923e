import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePortProtocol, readPortProtocol } from '../../src/policy/port-protocol.js';

describe('parsePortProtocol', () => {
  const valid: Array<{ text: string; port: number | string; protocol: number }> = [
    { text: '8080', port: 8080, protocol: 6 },
    { text: '53/UDP', port: 53, protocol: 17 },
    { text: '53/udp', port: 53, protocol: 17 },
    { text: '9/SCTP', port: 9, protocol: 132 },
    { text: '65535/TCP', port: 65535, protocol: 6 },
    { text: 'http/TCP', port: 'http', protocol: 6 },
    { text: '8/ICMP', port: 8, protocol: 1 },
    { text: '0/ICMP', port: 0, protocol: 1 },
    { text: '128/ICMPv6', port: 128, protocol: 58 },
    { text: '80/6', port: 80, protocol: 6 },
  ];
  for (const c of valid)
    it(`accepts ${c.text}`, () => {
      assert.deepEqual(parsePortProtocol(c.text, '--dport'), { port: c.port, protocol: c.protocol });
    });

  const PORT = '--dport: expected a port 1-65535 or a container port name, got';
  const PROTO = '--dport: expected TCP, UDP, SCTP, ICMP or ICMPv6, got';
  const invalid: Array<{ text: string; code: string; message: string }> = [
    { text: '70000', code: 'MBR_TRACE_BAD_PORT', message: `${PORT} "70000"` },
    { text: '-1', code: 'MBR_TRACE_BAD_PORT', message: `${PORT} "-1"` },
    { text: '80.5', code: 'MBR_TRACE_BAD_PORT', message: `${PORT} "80.5"` },
    { text: '80-90', code: 'MBR_TRACE_BAD_PORT', message: `${PORT} "80-90"` },
    { text: '0', code: 'MBR_TRACE_BAD_PORT', message: `${PORT} "0"` },
    { text: 'HTTP', code: 'MBR_TRACE_BAD_PORT', message: `${PORT} "HTTP"` },
    { text: '300/ICMP', code: 'MBR_TRACE_BAD_PORT', message: '--dport: expected an ICMP type 0-255, got "300"' },
    { text: 'echo/ICMP', code: 'MBR_TRACE_BAD_PORT', message: '--dport: expected an ICMP type 0-255, got "echo"' },
    { text: '8080/999', code: 'MBR_TRACE_BAD_PROTOCOL', message: `${PROTO} "999"` },
    { text: '8080/ANY', code: 'MBR_TRACE_BAD_PROTOCOL', message: `${PROTO} "ANY"` },
    { text: '8080/', code: 'MBR_TRACE_BAD_PROTOCOL', message: `${PROTO} ""` },
    {
      text: '8080/TCP/UDP',
      code: 'MBR_TRACE_BAD_PORT',
      message: '--dport: expected PORT or PORT/PROTOCOL, got "8080/TCP/UDP"',
    },
    { text: '', code: 'MBR_TRACE_BAD_PORT', message: '--dport: expected PORT or PORT/PROTOCOL, got ""' },
  ];
  for (const c of invalid)
    it(`rejects ${JSON.stringify(c.text)}`, () => {
      assert.throws(() => parsePortProtocol(c.text, '--dport'), { code: c.code, message: c.message });
    });
});

describe('readPortProtocol', () => {
  const fields = { port: 'dport', protocol: 'protocol' };
  it('reads a JSON port and a missing protocol as TCP', () => {
    assert.deepEqual(readPortProtocol(8080, undefined, fields), { port: 8080, protocol: 6 });
  });

  const PORT = 'dport: expected a port 1-65535 or a container port name, got';
  const PROTO = 'protocol: expected TCP, UDP, SCTP, ICMP or ICMPv6, got';
  const invalid: Array<{ name: string; port: unknown; protocol: unknown; code: string; message: string }> = [
    { name: 'a fractional port', port: 8080.5, protocol: 'TCP', code: 'MBR_TRACE_BAD_PORT', message: `${PORT} 8080.5` },
    { name: 'a null port', port: null, protocol: 'TCP', code: 'MBR_TRACE_BAD_PORT', message: `${PORT} null` },
    {
      name: 'a missing port',
      port: undefined,
      protocol: 'TCP',
      code: 'MBR_TRACE_BAD_PORT',
      message: `${PORT} nothing`,
    },
    { name: 'a port of NaN', port: Number.NaN, protocol: 'TCP', code: 'MBR_TRACE_BAD_PORT', message: `${PORT} null` },
    { name: 'a port list', port: [80], protocol: 'TCP', code: 'MBR_TRACE_BAD_PORT', message: `${PORT} [80]` },
    { name: 'a protocol object', port: 80, protocol: {}, code: 'MBR_TRACE_BAD_PROTOCOL', message: `${PROTO} {}` },
    { name: 'a protocol true', port: 80, protocol: true, code: 'MBR_TRACE_BAD_PROTOCOL', message: `${PROTO} true` },
    { name: 'a null protocol', port: 80, protocol: null, code: 'MBR_TRACE_BAD_PROTOCOL', message: `${PROTO} null` },
    { name: 'protocol number 999', port: 80, protocol: 999, code: 'MBR_TRACE_BAD_PROTOCOL', message: `${PROTO} 999` },
  ];
  for (const c of invalid)
    it(`rejects ${c.name}`, () => {
      assert.throws(() => readPortProtocol(c.port, c.protocol, fields), { code: c.code, message: c.message });
    });
});
