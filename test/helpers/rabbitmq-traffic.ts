// The apps of a split-queue test on RabbitMQ (queue-traffic.ts), with amqplib as an app would use it: persistent
// messages on a confirm channel, consumers with a prefetch that ack each message after handling it.

import amqp from 'amqplib';
import { pace, trafficHeaders, type AppMessage, type BrokerTraffic } from './queue-traffic.js';

export function rabbitMqTraffic(url: string): BrokerTraffic {
  return {
    produce: async (options) => {
      const connection = await amqp.connect(url);
      try {
        const channel = await connection.createConfirmChannel();
        await pace(options, (seq) => {
          channel.sendToQueue(options.queue, Buffer.from(`message ${seq}`), { persistent: true, messageId: String(seq), headers: trafficHeaders(seq) });
        });
        await channel.waitForConfirms();
      } finally {
        await connection.close();
      }
    },
    consume: async (queue, onMessage: (message: AppMessage) => void) => {
      const connection = await amqp.connect(url);
      const channel = await connection.createChannel();
      await channel.prefetch(50);
      await channel.consume(queue, (message) => {
        if (message === null) return;
        const headers: Record<string, string> = {};
        for (const [key, value] of Object.entries(message.properties.headers ?? {})) headers[key] = String(value);
        onMessage({ headers, redelivered: message.fields.redelivered });
        channel.ack(message);
      });
      return {
        // Closing the channel gives its unacked messages back to the queue, as an app's crash would.
        stop: () => connection.close(),
      };
    },
  };
}
