// The frames kcat (librdkafka 2.0.2) and kafkajs 2.2.4 sent to the lab's broker, captured by
// test/fixtures/kafka/capture.mjs, and request frames of every version kafkajs can encode, made
// with kafkajs's own protocol encoders.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

export interface CapturedExchange {
  readonly client: 'kcat' | 'kafkajs';
  readonly apiKey: number;
  readonly apiVersion: number;
  readonly request: Buffer;
  readonly response?: Buffer;
}

export function capturedExchanges(): CapturedExchange[] {
  const path = new URL('../../../../test/fixtures/kafka/captured.json', import.meta.url);
  const raw = JSON.parse(readFileSync(path, 'utf8')) as {
    client: 'kcat' | 'kafkajs';
    apiKey: number;
    apiVersion: number;
    request: string;
    response?: string;
  }[];
  return raw.map((e) => ({
    client: e.client,
    apiKey: e.apiKey,
    apiVersion: e.apiVersion,
    request: Buffer.from(e.request, 'hex'),
    ...(e.response ? { response: Buffer.from(e.response, 'hex') } : {}),
  }));
}

/** A kafkajs protocol response module: decode the body after the correlation id, then parse. */
export interface KafkajsResponse {
  decode(body: Buffer): Promise<unknown>;
  parse(data: unknown): Promise<unknown>;
}

interface KafkajsRequest {
  readonly apiKey: number;
  readonly apiVersion: number;
  encode(): Promise<unknown>;
}

const require = createRequire(import.meta.url);
const PROTOCOL = `${dirname(require.resolve('kafkajs'))}/src/protocol`;

/** kafkajs's request and response of one API at one version, for the given arguments. */
export async function kafkajsExchange(
  api: string,
  version: number,
  args: Record<string, unknown>,
  correlationId: number,
): Promise<{ frame: Buffer; response: KafkajsResponse }> {
  const mod = require(`${PROTOCOL}/requests/${api}/index.js`) as {
    protocol(o: { version: number }): (a: Record<string, unknown>) => {
      request: KafkajsRequest;
      response: KafkajsResponse;
    };
  };
  const { request, response } = mod.protocol({ version })(args);
  const encode = require(`${PROTOCOL}/request.js`) as (o: {
    correlationId: number;
    clientId: string;
    request: KafkajsRequest;
  }) => Promise<{ buffer: Buffer }>;
  const enc = await encode({ correlationId, clientId: 'unit-test', request });
  return { frame: Buffer.from(enc.buffer), response };
}

/** The API versions kafkajs 2.2.4 encodes, with arguments naming two topics. */
export const KAFKAJS_TOPIC_APIS: readonly {
  readonly api: string;
  readonly apiKey: number;
  readonly versions: readonly number[];
  readonly args: Record<string, unknown>;
}[] = [
  {
    api: 'produce',
    apiKey: 0,
    versions: [0, 1, 2, 3, 4, 5, 6, 7],
    args: {
      acks: -1,
      timeout: 1000,
      topicData: [
        { topic: 'orders.processed', partitions: [{ partition: 0, messages: [{ value: 'a' }] }] },
        { topic: 'payment-events', partitions: [{ partition: 2, messages: [{ value: 'b' }] }] },
      ],
    },
  },
  {
    api: 'fetch',
    apiKey: 1,
    versions: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    args: {
      replicaId: -1,
      maxWaitTime: 100,
      minBytes: 1,
      maxBytes: 1000,
      topics: [
        { topic: 'orders.created', partitions: [{ partition: 0, fetchOffset: '0', maxBytes: 1000 }] },
        { topic: 'payment-events', partitions: [{ partition: 1, fetchOffset: '0', maxBytes: 1000 }] },
      ],
    },
  },
  {
    api: 'listOffsets',
    apiKey: 2,
    versions: [0, 1, 2, 3],
    args: {
      topics: [
        { topic: 'orders.created', partitions: [{ partition: 0, timestamp: -1 }] },
        { topic: 'payment-events', partitions: [{ partition: 1, timestamp: -1 }] },
      ],
    },
  },
  {
    api: 'metadata',
    apiKey: 3,
    versions: [0, 1, 2, 3, 4, 5, 6],
    args: { topics: ['orders.created', 'payment-events'], allowAutoTopicCreation: false },
  },
  {
    api: 'offsetCommit',
    apiKey: 8,
    versions: [0, 1, 2, 3, 4, 5],
    args: {
      groupId: 'g',
      groupGenerationId: 1,
      memberId: 'm',
      topics: [
        { topic: 'orders.created', partitions: [{ partition: 0, offset: '1' }] },
        { topic: 'payment-events', partitions: [{ partition: 1, offset: '1' }] },
      ],
    },
  },
  {
    api: 'offsetFetch',
    apiKey: 9,
    versions: [1, 2, 3, 4],
    args: {
      groupId: 'g',
      topics: [
        { topic: 'orders.created', partitions: [{ partition: 0 }] },
        { topic: 'payment-events', partitions: [{ partition: 1 }] },
      ],
    },
  },
];
