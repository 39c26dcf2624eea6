// The NATS JetStream driver of queue splitting (driver.ts says what every driver guarantees).
//
// JetStream has streams and consumers, not queues, so a queue named N is, by this driver's convention:
//   - the stream S, with work-queue retention (a message is gone once acked) on file storage, taking the subject N;
//   - the durable pull consumer S on it, with explicit acks and unlimited redeliveries;
// where S is N with each `.` made `_`: stream and consumer names cannot hold a `.`, and the splitter's temporary
// queues are `<queue>.remocal.<id>`. So N is 1 to 128 characters, dot-separated tokens of [A-Za-z0-9_-] (no
// wildcards, no `$` of the system's own subjects). A stream S that exists already is taken as it is, and must take
// the subject N: one that does not (a queue `a_b` where `a.b` was meant) is refused, not shared. A stream with a
// wildcard subject over N's (`orders.>` over `orders.remocal.alice`) keeps the temporary queue from being made.
//
// Duplicates: a forward crashed between its PubAck and the source's ack is delivered again, and forwarded again.
// Every publish carries a message id (Nats-Msg-Id) made of where the message was taken from: the source stream,
// when that stream was created (a deleted and recreated stream restarts its sequence) and the sequence. The
// destination stream drops a message whose id it saw within its duplicate window (2 minutes by default), so such a
// second forward to the same destination is dropped by the broker; only one to another destination (the sessions
// changed in between) or after the window is a duplicate the consumer sees. The producer's own Nats-Msg-Id is
// therefore not forwarded: reused on the way back to the original stream it would make that stream drop the
// message as a duplicate of its first publish, a loss.

import { connect, headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { QueueBrokerError, TimeoutError } from '../../core/errors.js';
import type { Delivery, QueueDriver, QueueMessage, Subscription } from './driver.js';

export interface NatsDriverOptions {
  /** `nats://[user:password@]host:port`, or a token as `nats://token@host:port`. */
  url: string;
  /** How long to wait for the server to accept the connection. */
  connectTimeoutMs?: number;
  /** How long to wait for any answer of the server: a JetStream API call, a PubAck, an ack's confirmation. */
  requestTimeoutMs?: number;
  /** The consumers' ack_wait: how long a delivery neither acked nor requeued (its consumer died) waits before redelivery. */
  ackWaitMs?: number;
}

const NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const MAX_NAME = 128;
const MAX_PREFETCH = 10_000;
// Publish-time directives to JetStream, not part of the message: re-sent on a forward, Nats-Expected-* would be
// checked against the destination stream and refuse the forward forever, Nats-Rollup would purge it.
const DIRECTIVE_HEADER = /^nats-(msg-id|expected-|rollup$|ttl$)/i;

/** The property carrying where a delivery was taken from, the message id of its forward. */
const ORIGIN = 'origin';

export async function connectNats(options: NatsDriverOptions): Promise<QueueDriver> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 5_000;
  const url = new URL(options.url);
  const where = `the NATS server at ${url.host}`;
  const credentials =
    url.username === '' ? {} : url.password === '' ? { token: decodeURIComponent(url.username) } : { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) };
  let nc: NatsConnection;
  try {
    // No reconnection of its own: a dropped link resolves `lost`, and the splitter makes a new driver, so that
    // what was in flight on the old link is known to be unconfirmed rather than silently retried.
    nc = await connect({ servers: url.host, ...credentials, timeout: connectTimeoutMs, reconnect: false, name: 'remocal-operator' });
  } catch (error) {
    throw brokerError(`Cannot connect to ${where}`, error, 'connectTimeoutMs', connectTimeoutMs);
  }
  let jsm: JetStreamManager;
  try {
    // Asks the server for the account's JetStream, so a server without it fails here and says so.
    jsm = await jetstreamManager(nc, { timeout: requestTimeoutMs });
  } catch (error) {
    await nc.close();
    throw brokerError(`Cannot use JetStream on ${where}`, error, 'requestTimeoutMs', requestTimeoutMs);
  }
  return new NatsDriver(nc, jsm, jetstream(nc, { timeout: requestTimeoutMs }), where, requestTimeoutMs, options.ackWaitMs ?? 30_000);
}

class NatsDriver implements QueueDriver {
  readonly kind = 'NATS';
  readonly lost: Promise<Error>;
  #closing = false;
  /** The calls waiting for the server: a closed link fails them at once (an ack's confirmation would wait out its timeout). */
  readonly #waiting = new Set<(error: Error) => void>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly where: string,
    private readonly requestTimeoutMs: number,
    private readonly ackWaitMs: number,
  ) {
    // Never settles after close(): only a link that dropped by itself is a loss to recover from.
    this.lost = nc.closed().then(
      (why) =>
        new Promise<Error>((resolve) => {
          for (const fail of this.#waiting) fail(new Error('closed connection'));
          if (!this.#closing) resolve(new QueueBrokerError(`Lost the link to ${where}${why instanceof Error ? `: ${why.message}` : ''}`, { cause: why }));
        }),
    );
  }

  async ensureQueue(name: string): Promise<void> {
    const stream = streamName(name);
    const subjects = await this.#call(`create the stream ${stream}`, async () => {
      try {
        return (await this.jsm.streams.info(stream)).config.subjects;
      } catch (error) {
        if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
        return (await this.jsm.streams.add({ name: stream, subjects: [name], retention: RetentionPolicy.Workqueue, storage: StorageType.File })).config.subjects;
      }
    });
    if (!subjects.includes(name)) {
      throw new QueueBrokerError(`The stream ${stream} on ${this.where} takes the subjects ${subjects.join(', ')}, not the queue's ${name}`, {
        hint: 'Two queue names that differ only by `.` and `_` are one stream: rename one of them.',
      });
    }
    await this.#call(`create the consumer ${stream} of the stream ${stream}`, async () => {
      try {
        await this.jsm.consumers.info(stream, stream);
      } catch (error) {
        if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
        await this.jsm.consumers.add(stream, {
          durable_name: stream,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: this.ackWaitMs * 1_000_000,
          max_deliver: -1,
        });
      }
    });
  }

  async deleteQueue(name: string): Promise<void> {
    const stream = streamName(name);
    await this.#call(`delete the stream ${stream}`, async () => {
      try {
        await this.jsm.streams.delete(stream);
      } catch (error) {
        if (!isApiError(error, JetStreamApiCodes.StreamNotFound)) throw error;
      }
    });
  }

  /**
   * The durable consumer is deleted and made again: a work-queue stream keeps what was not acked, and the new
   * consumer (deliver all) hands it out at once, where the old one would wait out each delivery's ack_wait
   * because JetStream cannot tell that the consumer that pulled it is gone.
   */
  async release(name: string): Promise<void> {
    const stream = streamName(name);
    const deleted = await this.#call(`delete the consumer ${stream} of the stream ${stream}`, async () => {
      try {
        return await this.jsm.consumers.delete(stream, stream);
      } catch (error) {
        if (isApiError(error, JetStreamApiCodes.StreamNotFound)) return false;
        if (isApiError(error, JetStreamApiCodes.ConsumerNotFound)) return true;
        throw error;
      }
    });
    // A queue already deleted stays deleted.
    if (deleted) await this.ensureQueue(name);
  }

  /** Every message the stream still holds: waiting, and delivered but not acked (work-queue retention drops acked ones). */
  async depth(name: string): Promise<number> {
    const stream = streamName(name);
    const info = await this.#call(`read the stream ${stream}`, () => this.jsm.streams.info(stream));
    return info.state.messages;
  }

  async consume(queue: string, prefetch: number, handle: (delivery: Delivery) => Promise<void>): Promise<Subscription> {
    const stream = streamName(queue);
    if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > MAX_PREFETCH) {
      throw new QueueBrokerError(`A prefetch of ${prefetch} for the queue ${queue} is not a whole number from 1 to ${MAX_PREFETCH}`);
    }
    // The server's max_ack_pending is the bound that holds: a pull batch only limits one request, and the client
    // pulls again as messages arrive, acked or not.
    await this.#call(`set the prefetch of the consumer ${stream}`, () => this.jsm.consumers.update(stream, stream, { max_ack_pending: prefetch }));
    const created = (await this.#call(`read the stream ${stream}`, () => this.jsm.streams.info(stream))).created;
    const consumer = await this.#call(`get the consumer ${stream}`, () => this.js.consumers.get(stream, stream));
    const messages = await this.#call(`consume the queue ${queue}`, () => consumer.consume({ max_messages: prefetch }));
    let cancelled = false;
    const loop = (async () => {
      for await (const message of messages) {
        // Pulled after cancel(): back to the stream at once instead of waiting out the ack_wait.
        if (cancelled) {
          message.nak();
          continue;
        }
        const delivery = this.#delivery(message, `${stream}@${created}#${message.info.streamSequence}`);
        void handle(delivery).catch(() => delivery.requeue().catch(() => undefined));
      }
      // A dropped link ends the iteration with an error; `lost` is where that is reported.
    })().catch(() => undefined);
    return {
      cancel: async () => {
        cancelled = true;
        await messages.close();
        await loop;
      },
    };
  }

  async publish(queue: string, message: QueueMessage): Promise<void> {
    const stream = streamName(queue);
    const wireHeaders = natsHeaders();
    for (const [key, value] of Object.entries(message.headers)) {
      if (!DIRECTIVE_HEADER.test(key)) wireHeaders.set(key, value);
    }
    const msgID = message.properties[ORIGIN];
    // expect.streamName: a subject some other stream takes too would otherwise land in that one, confirmed.
    await this.#call(`publish to the queue ${queue}`, () =>
      this.js.publish(queue, message.body, { headers: wireHeaders, expect: { streamName: stream }, timeout: this.requestTimeoutMs, ...(msgID === undefined ? {} : { msgID }) }),
    );
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    // Not drain(): what is unacked goes back to the streams after the ack_wait anyway, and close must not hang.
    await this.nc.close();
  }

  #delivery(message: JsMsg, origin: string): Delivery {
    let settled = false;
    const settle = (what: string): void => {
      if (settled) throw new QueueBrokerError(`The message ${origin} was already acked or requeued; cannot ${what} it`);
      settled = true;
    };
    return {
      body: Buffer.from(message.data),
      headers: readHeaders(message.headers),
      properties: { subject: message.subject, [ORIGIN]: origin },
      deliveryTag: `${origin}/${message.info.deliveryCount}`,
      redelivered: message.info.redelivered,
      ack: async () => {
        settle('ack');
        // ackAck: the ack is confirmed by the server, so the caller knows the source no longer holds the message.
        await this.#call(`ack ${origin}`, () => message.ackAck({ timeout: this.requestTimeoutMs }));
      },
      requeue: async () => {
        settle('requeue');
        message.nak();
        // A nak has no answer of its own; a flush returns once the server has read everything sent before it.
        await this.#call(`requeue ${origin}`, () => this.nc.flush());
      },
    };
  }

  /** Runs one call to the server, turning its failure into the catalog's words. */
  async #call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      if (this.nc.isClosed()) throw new Error('closed connection');
      return await new Promise<T>((resolve, reject) => {
        this.#waiting.add(reject);
        void run()
          .then(resolve, reject)
          .finally(() => this.#waiting.delete(reject));
      });
    } catch (error) {
      throw brokerError(`Cannot ${what} on ${this.where}`, error, 'requestTimeoutMs', this.requestTimeoutMs);
    }
  }
}

/** The stream (and consumer) name of a queue, after checking that the queue's name can be a subject. */
function streamName(queue: string): string {
  if (queue.length > MAX_NAME || !NAME.test(queue)) {
    throw new QueueBrokerError(`The queue name ${JSON.stringify(queue)} cannot name a NATS JetStream subject and stream`, {
      hint: `Name NATS split queues with up to ${MAX_NAME} letters, digits, \`_\` or \`-\`, in tokens separated by \`.\`.`,
    });
  }
  return queue.replaceAll('.', '_');
}

function readHeaders(from: MsgHdrs | undefined): Record<string, string> {
  const result: Record<string, string> = {};
  if (from === undefined) return result;
  for (const key of from.keys()) {
    if (DIRECTIVE_HEADER.test(key)) continue;
    // NATS headers may repeat; the driver interface has one value per header, so repeats are joined as HTTP does.
    result[key] = from.values(key).join(', ');
  }
  return result;
}

function isApiError(error: unknown, code: number): boolean {
  return error instanceof JetStreamApiError && error.code === code;
}

function brokerError(message: string, error: unknown, timeoutOption: string, timeoutMs: number): Error {
  if (error instanceof QueueBrokerError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  if (/timeout/i.test(error instanceof Error ? `${error.name} ${reason}` : reason)) {
    return new TimeoutError(`${message}: no answer in ${timeoutMs} ms`, { cause: error, hint: `Raise the NATS driver's ${timeoutOption}, or check the server's load.` });
  }
  return new QueueBrokerError(`${message}: ${reason}`, { cause: error });
}
