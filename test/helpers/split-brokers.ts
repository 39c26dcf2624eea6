// The brokers queue splitting is proved on, behind one shape, so that the split scenarios (split-scenario.ts) and
// bench/queues.ts run the same steps on each: a throwaway broker on loopback, a factory for the splitter's driver,
// the apps' traffic, and what queues the broker holds in the end.

import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import type { QueueDriver } from '../../src/operator/queues/driver.js';
import { connectNats } from '../../src/operator/queues/nats.js';
import { connectRabbitMq } from '../../src/operator/queues/rabbitmq.js';
import { startNatsServer } from './nats.js';
import { natsTraffic } from './nats-traffic.js';
import type { BrokerTraffic } from './queue-traffic.js';
import { startRabbitMq } from './rabbitmq.js';
import { rabbitMqTraffic } from './rabbitmq-traffic.js';

export const brokerKinds = ['RMQ', 'NATS'] as const;
export type BrokerKind = (typeof brokerKinds)[number];

export interface SplitBroker {
  kind: BrokerKind;
  /** For diagnostics and the bench's lines. */
  name: string;
  url: string;
  traffic: BrokerTraffic;
  /** A new driver, as the operator connects one. */
  connect(): Promise<QueueDriver>;
  /** `queue` and every queue named `queue.…` (the splitter's temporary ones), with the messages each holds. */
  queuesOf(queue: string): Promise<Array<{ name: string; messages: number }>>;
  stop(): Promise<void>;
}

// A delivery whose consumer died (a splitter killed with -9, an app gone with messages it pulled) is delivered
// again after the consumer's ack_wait. The driver's default, 30 s, is for production; a test waits this long.
const NATS_ACK_WAIT_MS = 2_000;

/** The splitter's driver for `kind`: the one factory the tests, the bench and the splitter child process share. */
export function connectDriver(kind: BrokerKind, url: string): Promise<QueueDriver> {
  return kind === 'RMQ' ? connectRabbitMq({ url }) : connectNats({ url, ackWaitMs: NATS_ACK_WAIT_MS });
}

export async function startSplitBroker(kind: BrokerKind): Promise<SplitBroker> {
  if (kind === 'RMQ') {
    const node = await startRabbitMq();
    return {
      kind,
      name: 'RabbitMQ',
      url: node.url,
      traffic: rabbitMqTraffic(node.url),
      connect: () => connectDriver(kind, node.url),
      queuesOf: async (queue) => (await node.listQueues()).filter((entry) => entry.name === queue || entry.name.startsWith(`${queue}.`)),
      stop: () => node.stop(),
    };
  }
  const server = await startNatsServer();
  return {
    kind,
    name: 'NATS JetStream',
    url: server.url,
    traffic: natsTraffic(server.url),
    connect: () => connectDriver(kind, server.url),
    queuesOf: async (queue) => {
      const nc = await connect({ servers: server.url, reconnect: false });
      try {
        const found: Array<{ name: string; messages: number }> = [];
        // A queue is a stream taking its name as subject; the stream's own name has `_` for `.`.
        for await (const stream of (await jetstreamManager(nc)).streams.list()) {
          const subject = stream.config.subjects?.[0] ?? stream.config.name;
          if (subject === queue || subject.startsWith(`${queue}.`)) found.push({ name: subject, messages: stream.state.messages });
        }
        return found;
      } finally {
        await nc.close();
      }
    },
    stop: () => server.stop(),
  };
}
