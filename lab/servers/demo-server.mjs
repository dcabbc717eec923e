#!/usr/bin/env node
// The lab's demo workload: HTTP servers and plain TCP listeners on the given ports.
//   demo-server.mjs [--http PORT[,PORT...]] [--tcp PORT[,PORT...]]
// HTTP answers every method and path with 200 and a JSON body naming the pod, so a client sees
// which pod served it; TCP listeners greet and echo (a stand-in for Kafka-protocol services until
// a broker is added). With no ports it idles: a client pod.
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';

const who = { pod: process.env.POD_NAME ?? '', namespace: process.env.POD_NAMESPACE ?? '' };

function ports(flag) {
  const i = process.argv.indexOf(flag);
  return i < 0 ? [] : process.argv[i + 1].split(',').map(Number);
}

for (const port of ports('--http')) {
  createHttpServer((req, res) => {
    let size = 0;
    req.on('data', (d) => {
      size += d.length;
    });
    req.on('end', () => {
      const body = JSON.stringify({ ...who, port, method: req.method, path: req.url, received: size });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(`${body}`);
    });
  }).listen(port, '0.0.0.0');
}

for (const port of ports('--tcp')) {
  createTcpServer((sock) => {
    sock.write(`${who.namespace}/${who.pod}:${port}\n`);
    sock.on('error', () => undefined);
    sock.pipe(sock);
  }).listen(port, '0.0.0.0');
}

setInterval(() => undefined, 1 << 30);
process.on('SIGTERM', () => process.exit(0));
