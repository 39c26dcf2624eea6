// Queue splitting on each broker (RabbitMQ, NATS JetStream), against a consumer that reads the original queue
// directly, in one run, each broker a throwaway one on loopback (test/helpers/split-brokers.ts):
//
//   throughput  N messages waiting in the queue; the time until the app's consumers have acked them all.
//               direct: one consumer on the queue. split: the splitter with two sessions (filters on x-dest) and
//               the deployed app's queue, one consumer on each temporary queue.
//   latency     a steady stream; each message carries its send time (x-sent-ms), the consumer takes its receipt
//               time: the added latency is split minus direct, at p50 and p99.
//
// The apps (producer, consumers) use each broker's own client, as in the tests (test/helpers/*-traffic.ts); only
// the splitter goes through its driver. Each kind runs twice, alternating, and keeps its better round, so that a
// hiccup of this shared machine does not decide the ratio. Targets (issue 14): throughput ≥ 50% of direct, added
// p50 ≤ 2 ms.
//
// Usage: node --import tsx bench/queues.ts [--messages 20000] [--rate 1000] [--seconds 4] [--prefetch 200 (the splitter's)]
//        [--broker RMQ|NATS (default: both)]

import { parseArgs } from 'node:util';
import { QueueSplitter, tempQueueName } from '../src/operator/queues/splitter.js';
import type { AppConsumer } from '../test/helpers/queue-traffic.js';
import { brokerKinds, startSplitBroker, type BrokerKind, type SplitBroker } from '../test/helpers/split-brokers.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '4' },
    prefetch: { type: 'string', default: '200' },
    broker: { type: 'string' },
  },
});
const PREFETCH = Number(values.prefetch);
const MESSAGES = Number(values.messages);
const RATE = Number(values.rate);
const STREAM = RATE * Number(values.seconds);
if (values.broker !== undefined && !brokerKinds.includes(values.broker as BrokerKind)) throw new Error(`--broker is one of ${brokerKinds.join(', ')}`);
const kinds: readonly BrokerKind[] = values.broker === undefined ? brokerKinds : [values.broker as BrokerKind];

const now = (): number => performance.timeOrigin + performance.now();

/** Consumers on `queues` until `expected` messages were acked; resolves with each one's latency in ms. */
async function consumeAll(broker: SplitBroker, queues: string[], expected: number): Promise<{ latencies: number[]; done: Promise<number> }> {
  const latencies: number[] = [];
  let finish!: (at: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  const consumers: AppConsumer[] = [];
  for (const queue of queues) {
    consumers.push(
      await broker.traffic.consume(queue, ({ headers }) => {
        latencies.push(now() - Number(headers['x-sent-ms']));
        if (latencies.length === expected) finish(now());
      }),
    );
  }
  // The finish time is taken before the consumers stop; stopping them is not part of the measure.
  const stopped = done.then(async (at) => {
    for (const consumer of consumers) await consumer.stop();
    return at;
  });
  return { latencies, done: stopped };
}

interface Split {
  queues: string[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

async function split(broker: SplitBroker, queue: string): Promise<Split> {
  const driver = await broker.connect();
  const splitter = new QueueSplitter({ driver, queue, prefetch: PREFETCH });
  const a = await splitter.addSession('a', { 'x-dest': '^a$' });
  const b = await splitter.addSession('b', { 'x-dest': '^b$' });
  return {
    queues: [a, b, tempQueueName(queue, 'deployed')],
    start: async () => void (await splitter.start()),
    stop: async () => {
      await splitter.stop();
      await driver.close();
    },
  };
}

/** The original queue as the driver's convention makes one (RabbitMQ: durable, the broker's defaults). */
async function declare(broker: SplitBroker, queue: string): Promise<void> {
  const driver = await broker.connect();
  await driver.ensureQueue(queue);
  await driver.close();
}

async function throughput(broker: SplitBroker, kind: 'direct' | 'split', round: number): Promise<number> {
  const queue = `tp-${kind}-${round}`;
  await declare(broker, queue);
  const splitting = kind === 'split' ? await split(broker, queue) : undefined;
  await broker.traffic.produce({ queue, total: MESSAGES, perSecond: 1e9 });
  const started = now();
  // The deployed app's queue exists once the splitter started; its consumer comes after.
  await splitting?.start();
  const { done } = await consumeAll(broker, splitting?.queues ?? [queue], MESSAGES);
  const ended = await done;
  await splitting?.stop();
  return MESSAGES / ((ended - started) / 1000);
}

async function latency(broker: SplitBroker, kind: 'direct' | 'split', round: number): Promise<{ p50: number; p99: number }> {
  const queue = `lat-${kind}-${round}`;
  await declare(broker, queue);
  const splitting = kind === 'split' ? await split(broker, queue) : undefined;
  await splitting?.start();
  const { latencies, done } = await consumeAll(broker, splitting?.queues ?? [queue], STREAM);
  await broker.traffic.produce({ queue, total: STREAM, perSecond: RATE });
  await done;
  await splitting?.stop();
  const sorted = [...latencies].sort((x, y) => x - y);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p99: at(0.99) };
}

async function measure(broker: SplitBroker): Promise<string[]> {
  const tp = { direct: 0, split: 0 };
  const lat = { direct: { p50: Infinity, p99: Infinity }, split: { p50: Infinity, p99: Infinity } };
  for (let round = 0; round < 2; round += 1) {
    for (const kind of ['direct', 'split'] as const) {
      tp[kind] = Math.max(tp[kind], await throughput(broker, kind, round));
      const measured = await latency(broker, kind, round);
      if (measured.p50 < lat[kind].p50) lat[kind] = measured;
    }
  }
  const ratio = tp.split / tp.direct;
  const added = { p50: lat.split.p50 - lat.direct.p50, p99: lat.split.p99 - lat.direct.p99 };
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  return [
    `${broker.name}, ${MESSAGES} messages waiting; a stream of ${STREAM} at ${RATE}/s`,
    `  throughput  direct ${tp.direct.toFixed(0)} msg/s   split ${tp.split.toFixed(0)} msg/s   ratio ${(ratio * 100).toFixed(0)}% (target ≥ 50%: ${verdict(ratio >= 0.5)})`,
    `  latency     direct p50 ${lat.direct.p50.toFixed(2)} ms  p99 ${lat.direct.p99.toFixed(2)} ms   split p50 ${lat.split.p50.toFixed(2)} ms  p99 ${lat.split.p99.toFixed(2)} ms`,
    `  added       p50 ${added.p50.toFixed(2)} ms (target ≤ 2 ms: ${verdict(added.p50 <= 2)})  p99 ${added.p99.toFixed(2)} ms   (split/direct p50 ×${(lat.split.p50 / lat.direct.p50).toFixed(1)}, p99 ×${(lat.split.p99 / lat.direct.p99).toFixed(1)})`,
  ];
}

// One broker at a time: two at once would share the two cores and measure each other.
for (const kind of kinds) {
  const broker = await startSplitBroker(kind);
  try {
    console.log((await measure(broker)).join('\n'));
  } finally {
    await broker.stop();
  }
}
