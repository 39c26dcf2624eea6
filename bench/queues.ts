// Queue splitting on RabbitMQ, against a consumer that reads the original queue directly, in one run on one
// throwaway broker (test/helpers/rabbitmq.ts):
//
//   throughput  N messages waiting in the queue; the time until the app's consumers have acked them all.
//               direct: one consumer on the queue. split: the splitter with two sessions (filters on x-dest) and
//               the deployed app's queue, one consumer on each temporary queue.
//   latency     a steady stream; each message carries its send time (x-sent-ms), the consumer takes its receipt
//               time: the added latency is split minus direct, at p50 and p99.
//
// Each kind runs twice, alternating, and keeps its better round, so that a hiccup of this shared machine does not
// decide the ratio. Targets (issue 14): throughput ≥ 50% of direct, added p50 ≤ 2 ms.
//
// Usage: node --import tsx bench/queues.ts [--messages 20000] [--rate 1000] [--seconds 4] [--prefetch 200 (the splitter's)]

import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { connectRabbitMq } from '../src/operator/queues/rabbitmq.js';
import { QueueSplitter } from '../src/operator/queues/splitter.js';
import { produce } from '../test/helpers/queue-traffic.js';
import { startRabbitMq } from '../test/helpers/rabbitmq.js';

const { values } = parseArgs({ options: { messages: { type: 'string', default: '20000' }, rate: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '4' }, prefetch: { type: 'string', default: '200' } } });
const PREFETCH = Number(values.prefetch);
const MESSAGES = Number(values.messages);
const RATE = Number(values.rate);
const STREAM = RATE * Number(values.seconds);

const node = await startRabbitMq();
const now = (): number => performance.timeOrigin + performance.now();

/** Consumers on `queues` until `expected` messages were acked; resolves with each one's latency in ms. */
async function consumeAll(queues: string[], expected: number): Promise<{ latencies: number[]; done: Promise<number> }> {
  const connection = await amqp.connect(node.url);
  const latencies: number[] = [];
  let finish!: (at: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  for (const queue of queues) {
    const channel = await connection.createChannel();
    await channel.prefetch(200);
    await channel.consume(queue, (message) => {
      if (message === null) return;
      latencies.push(now() - Number(message.properties.headers?.['x-sent-ms']));
      channel.ack(message);
      if (latencies.length === expected) finish(now());
    });
  }
  void done.then(() => connection.close());
  return { latencies, done };
}

interface Split {
  queues: string[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

async function split(queue: string): Promise<Split> {
  const driver = await connectRabbitMq({ url: node.url });
  const splitter = new QueueSplitter({ driver, queue, prefetch: PREFETCH });
  const a = await splitter.addSession('a', { 'x-dest': '^a$' });
  const b = await splitter.addSession('b', { 'x-dest': '^b$' });
  return {
    queues: [a, b, `${queue}.remocal.deployed`],
    start: async () => void (await splitter.start()),
    stop: async () => {
      await splitter.stop();
      await driver.close();
    },
  };
}

/** The original queue, as an app would declare it: durable, with the broker's defaults. */
async function declare(queue: string): Promise<void> {
  const connection = await amqp.connect(node.url);
  const channel = await connection.createChannel();
  await channel.assertQueue(queue, { durable: true });
  await connection.close();
}

async function throughput(kind: 'direct' | 'split', round: number): Promise<number> {
  const queue = `tp-${kind}-${round}`;
  await declare(queue);
  const splitting = kind === 'split' ? await split(queue) : undefined;
  await produce({ url: node.url, queue, total: MESSAGES, perSecond: 1e9 });
  const started = now();
  // The deployed app's queue exists once the splitter started; its consumer comes after.
  await splitting?.start();
  const { done } = await consumeAll(splitting?.queues ?? [queue], MESSAGES);
  const ended = await done;
  await splitting?.stop();
  return MESSAGES / ((ended - started) / 1000);
}

async function latency(kind: 'direct' | 'split', round: number): Promise<{ p50: number; p99: number }> {
  const queue = `lat-${kind}-${round}`;
  await declare(queue);
  const splitting = kind === 'split' ? await split(queue) : undefined;
  await splitting?.start();
  const { latencies, done } = await consumeAll(splitting?.queues ?? [queue], STREAM);
  await produce({ url: node.url, queue, total: STREAM, perSecond: RATE });
  await done;
  await splitting?.stop();
  const sorted = [...latencies].sort((x, y) => x - y);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p99: at(0.99) };
}

try {
  const tp = { direct: 0, split: 0 };
  const lat = { direct: { p50: Infinity, p99: Infinity }, split: { p50: Infinity, p99: Infinity } };
  for (let round = 0; round < 2; round += 1) {
    for (const kind of ['direct', 'split'] as const) {
      tp[kind] = Math.max(tp[kind], await throughput(kind, round));
      const measured = await latency(kind, round);
      if (measured.p50 < lat[kind].p50) lat[kind] = measured;
    }
  }
  const ratio = tp.split / tp.direct;
  const added = { p50: lat.split.p50 - lat.direct.p50, p99: lat.split.p99 - lat.direct.p99 };
  console.log(`RabbitMQ, ${MESSAGES} messages waiting; a stream of ${STREAM} at ${RATE}/s`);
  console.log(`throughput  direct ${tp.direct.toFixed(0)} msg/s   split ${tp.split.toFixed(0)} msg/s   ratio ${(ratio * 100).toFixed(0)}% (target ≥ 50%)`);
  console.log(`latency     direct p50 ${lat.direct.p50.toFixed(2)} ms  p99 ${lat.direct.p99.toFixed(2)} ms   split p50 ${lat.split.p50.toFixed(2)} ms  p99 ${lat.split.p99.toFixed(2)} ms`);
  console.log(`added       p50 ${added.p50.toFixed(2)} ms (target ≤ 2 ms)  p99 ${added.p99.toFixed(2)} ms   (split/direct p50 ×${(lat.split.p50 / lat.direct.p50).toFixed(1)}, p99 ×${(lat.split.p99 / lat.direct.p99).toFixed(1)})`);
} finally {
  await node.stop();
}
