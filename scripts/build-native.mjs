#!/usr/bin/env node
// Builds the parts that are not TypeScript: the BPF objects (bpf/Makefile, clang), the lab's Kafka
// broker (lab/kafka/Makefile, librdkafka) and the N-API addon (native/binding.gyp, node-gyp
// against the machine's Node headers in /usr).
// Each step runs only when its directory exists, and is incremental.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

function step(what, cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    console.error(`build: ${what} failed (${cmd} ${args.join(' ')} exited ${r.status ?? r.signal})`);
    process.exit(1);
  }
}

if (existsSync(join(root, 'bpf/Makefile'))) step('BPF objects', 'make', ['-s', '-C', 'bpf'], root);
if (existsSync(join(root, 'lab/kafka/Makefile')))
  step('lab Kafka broker (librdkafka mock cluster)', 'make', ['-s', '-C', 'lab/kafka'], root);
if (existsSync(join(root, 'native/binding.gyp'))) {
  const gyp = join(root, 'node_modules/node-gyp/bin/node-gyp.js');
  const configured = existsSync(join(root, 'native/build/Makefile'));
  const nodedir = existsSync('/usr/include/node/node_api.h') ? ['--nodedir=/usr'] : [];
  if (!configured)
    step('native addon (configure)', process.execPath, [gyp, 'configure', ...nodedir], join(root, 'native'));
  step('native addon', process.execPath, [gyp, 'build', '--silent', ...nodedir], join(root, 'native'));
}
