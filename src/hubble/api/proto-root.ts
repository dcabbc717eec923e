// The protobuf schema of the flow API, loaded once from proto/ (the .proto files are the source of
// truth; nothing is generated). Objects use the proto field names (keepCase), like the flow model.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

export const PROTO_FILES = ['flow/flow.proto', 'relay/relay.proto', 'observer/observer.proto', 'peer/peer.proto'];

/** proto/ of this checkout, found from this module's place in src/ or dist/src/. */
export function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'proto', 'flow', 'flow.proto'))) return join(dir, 'proto');
    dir = dirname(dir);
  }
  throw new Error(`proto-root: no proto/flow/flow.proto above ${fileURLToPath(import.meta.url)}`);
}

let root: protobuf.Root | undefined;

export function protoRoot(): protobuf.Root {
  if (root !== undefined) return root;
  const dir = protoDir();
  const r = new protobuf.Root();
  // google/protobuf/* come with protobufjs; everything else lives in proto/.
  r.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : join(dir, target));
  r.loadSync(PROTO_FILES, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

export function protoType(name: string): protobuf.Type {
  return protoRoot().lookupType(name);
}
