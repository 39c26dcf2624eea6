// Traffic for split-queue tests and benches, whatever the broker: a producer at a steady rate whose messages name
// their destination in a header, and consumers that stand for the apps (a session's local app, the deployed app)
// and record what each consumed. Each broker speaks it through its own client (rabbitmq-traffic.ts,
// nats-traffic.ts), as an app would, not through the splitter's driver.

export const destinations = ['a', 'b', 'deployed'] as const;

export interface ProduceOptions {
  queue: string;
  total: number;
  perSecond: number;
  /** Called after each batch with how many were sent so far: the test's clock. */
  onSent?: (sent: number) => void;
}

/** One consumed message as an app sees it: its headers as strings. */
export interface AppMessage {
  headers: Record<string, string>;
  redelivered: boolean;
}

export interface AppConsumer {
  /** Stops like an app that goes away: what it did not ack goes back to the queue. */
  stop(): Promise<void>;
}

/** A broker's client, as the apps of a test use it. */
export interface BrokerTraffic {
  /**
   * Sends `total` messages, `seq` 0…total-1 in header `seq`, `x-dest` cycling through a, b, deployed, `x-sent-ms`
   * the send time, at `perSecond` (see pace); resolves once the broker confirmed them all.
   */
  produce(options: ProduceOptions): Promise<void>;
  /** An app consuming `queue`: `onMessage` for each message, acked after it returns. */
  consume(queue: string, onMessage: (message: AppMessage) => void): Promise<AppConsumer>;
}

/** The headers of message `seq`, sent now. */
export function trafficHeaders(seq: number): { seq: number; 'x-dest': string; 'x-sent-ms': number } {
  return { seq, 'x-dest': destinations[seq % destinations.length]!, 'x-sent-ms': performance.timeOrigin + performance.now() };
}

/**
 * Calls `send` for seq 0…total-1 at `perSecond`: batches every 10 ms keep the rate steady, and a late tick catches
 * up instead of slowing the whole run. `afterBatch` may wait for the broker (it then sets the pace).
 */
export async function pace(options: ProduceOptions, send: (seq: number) => void, afterBatch?: () => Promise<void>): Promise<void> {
  const { total, perSecond, onSent } = options;
  const started = Date.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((Date.now() - started) * perSecond) / 1000) + 1);
    for (; sent < due; sent += 1) send(sent);
    await afterBatch?.();
    onSent?.(sent);
    await new Promise((resolve) => setTimeout(resolve, 10));
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

/** An app on `queue` that records each message as consumed by `by`. */
export function consumeAs(traffic: BrokerTraffic, queue: string, by: string, record: Recorder): Promise<AppConsumer> {
  return traffic.consume(queue, ({ headers, redelivered }) => {
    const seq = Number(headers.seq);
    record.consumed.push({ seq, dest: String(headers['x-dest']), by, redelivered });
    record.seen.set(seq, (record.seen.get(seq) ?? 0) + 1);
  });
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
