// The apps of a split-queue test on NATS JetStream (queue-traffic.ts), with the official client as an app would
// use it: publishes that wait for their PubAck, and a consumer on the queue's durable pull consumer that acks each
// message after handling it. A queue N is the stream and durable consumer named N with `.` made `_`, the NATS
// driver's convention (src/operator/queues/nats.ts), which an app of a split workload follows too.

import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import { jetstream, type PubAck } from '@nats-io/jetstream';
import { pace, trafficHeaders, type AppMessage, type BrokerTraffic } from './queue-traffic.js';

export function natsTraffic(url: string): BrokerTraffic {
  return {
    produce: async (options) => {
      const nc = await connect({ servers: url, reconnect: false });
      try {
        const js = jetstream(nc);
        let waiting: Array<Promise<PubAck>> = [];
        await pace(
          options,
          (seq) => {
            const headers = natsHeaders();
            for (const [key, value] of Object.entries(trafficHeaders(seq))) headers.set(key, String(value));
            // Not awaited one by one: the client sends them in call order, and the PubAcks come back in a batch.
            waiting.push(js.publish(options.queue, Buffer.from(`message ${seq}`), { headers }));
          },
          // Each batch confirmed before the next, so a stalled server slows the producer instead of piling up.
          async () => {
            const batch = waiting;
            waiting = [];
            await Promise.all(batch);
          },
        );
      } finally {
        await nc.close();
      }
    },
    consume: async (queue, onMessage: (message: AppMessage) => void) => {
      const nc = await connect({ servers: url, reconnect: false });
      const stream = queue.replaceAll('.', '_');
      const messages = await (await jetstream(nc).consumers.get(stream, stream)).consume({ max_messages: 50 });
      const loop = (async () => {
        // After close(), the iterator still yields what was pulled before it, and the app handles those too.
        for await (const message of messages) {
          const headers: Record<string, string> = {};
          for (const key of message.headers?.keys() ?? []) headers[key] = message.headers!.get(key);
          onMessage({ headers, redelivered: message.info.redelivered });
          message.ack();
        }
      })();
      return {
        stop: async () => {
          await messages.close();
          await loop;
          // Acks are fire-and-forget: a flush returns once the server read them, before the link goes. A message
          // pulled but never yielded stays the consumer's until its ack_wait, then is delivered again.
          await nc.flush();
          await nc.close();
        },
      };
    },
  };
}
