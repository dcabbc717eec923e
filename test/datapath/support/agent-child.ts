// A stand-in agent for the restart test: opens the datapath at argv[2], attaches the endpoints
// given as JSON in argv[3], applies the diffs in argv[4], prints "ready" and waits to be killed.

import { Datapath } from '../../../src/datapath/datapath.js';
import type { EndpointAttachment } from '../../../src/datapath/endpoint-attach.js';
import type { MapStateDiff } from '../../../src/policy/map-state-types.js';

const dp = Datapath.open({ pinDir: process.argv[2] });
for (const ep of JSON.parse(process.argv[3] ?? '[]') as EndpointAttachment[]) dp.attachEndpoint(ep);
for (const d of JSON.parse(process.argv[4] ?? '[]') as MapStateDiff[]) dp.applyPolicy(d);
process.stdout.write('ready\n');
setInterval(() => {}, 60_000);
