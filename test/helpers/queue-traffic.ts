// Traffic for split-queue tests and benches: a producer at a steady rate whose messages name their destination
// in a header, and consumers that stand for the apps (a session's local app, the deployed app) and record what
// each consumed.

import amqp, { type ChannelModel } from 'amqplib';

export const destinations = ['a', 'b', 'deployed'] as const;

export interface ProduceOptions {
  url: string;
  queue: string;
  total: number;
  perSecond: number;
  /** Called after each batch with how many were sent so far: the test's clock. */
  onSent?: (sent: number) => void;
}

/**
 * Sends `total` messages, `seq` 0…total-1 in header `seq` and message_id, `x-dest` cycling through a, b,
 * deployed, `x-sent-ms` the send time. Batches every 10 ms keep the rate steady; resolves once all are confirmed.
 */
export async function produce(options: ProduceOptions): Promise<void> {
  const { url, queue, total, perSecond, onSent } = options;
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createConfirmChannel();
    const started = Date.now();
    let sent = 0;
    while (sent < total) {
      // As many as the rate allows by now: a late tick catches up instead of slowing the whole run.
      const due = Math.min(total, Math.floor(((Date.now() - started) * perSecond) / 1000) + 1);
      for (; sent < due; sent += 1) {
        channel.sendToQueue(queue, Buffer.from(`message ${sent}`), {
          persistent: true,
          messageId: String(sent),
          headers: { seq: sent, 'x-dest': destinations[sent % destinations.length], 'x-sent-ms': performance.timeOrigin + performance.now() },
        });
      }
      onSent?.(sent);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await channel.waitForConfirms();
  } finally {
    await connection.close();
  }
}

export interface Consumed {
  seq: number;
  dest: string;
  by: string;
  redelivered: boolean;
}

export interface Recorder {
  consumed: Consumed[];
  /** seq → how many times it was consumed, by anyone. */
  seen: Map<number, number>;
}

export function recorder(): Recorder {
  return { consumed: [], seen: new Map() };
}

export interface AppConsumer {
  /** Stops like an app that goes away: its unacked messages go back to the queue. */
  stop(): Promise<void>;
}

/** A consumer that records each message as consumed by `by`, acking it after. */
export async function consumeAs(url: string, queue: string, by: string, record: Recorder, connection?: ChannelModel): Promise<AppConsumer> {
  const own = connection === undefined;
  const link = connection ?? (await amqp.connect(url));
  const channel = await link.createChannel();
  await channel.prefetch(50);
  await channel.consume(queue, (message) => {
    if (message === null) return;
    const headers = message.properties.headers ?? {};
    const seq = Number(headers.seq);
    record.consumed.push({ seq, dest: String(headers['x-dest']), by, redelivered: message.fields.redelivered });
    record.seen.set(seq, (record.seen.get(seq) ?? 0) + 1);
    channel.ack(message);
  });
  return {
    stop: async () => {
      await channel.close();
      if (own) await link.close();
    },
  };
}

/** Resolves once every seq below `total` was consumed at least once. */
export async function allConsumed(record: Recorder, total: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (record.seen.size < total) {
    if (Date.now() > deadline) throw new Error(`only ${record.seen.size} of ${total} messages were consumed within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Counts for the test's diagnostics: duplicates, and what each consumer took. */
export function summary(record: Recorder, total: number): { lost: number; duplicates: number; byConsumer: Record<string, number> } {
  let lost = 0;
  for (let seq = 0; seq < total; seq += 1) if (!record.seen.has(seq)) lost += 1;
  const byConsumer: Record<string, number> = {};
  for (const entry of record.consumed) byConsumer[entry.by] = (byConsumer[entry.by] ?? 0) + 1;
  return { lost, duplicates: record.consumed.length - record.seen.size, byConsumer };
}
