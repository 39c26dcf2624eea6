// The RabbitMQ driver (AMQP 0-9-1, amqplib). One connection; publishes go through a confirm channel per
// destination queue, and each consumer gets a channel of its own, so that its prefetch bounds it alone and its acks
// go where its deliveries came from. A channel per destination keeps each destination's publishes in call order
// (one channel is one ordered stream) while letting a broker with cores to spare, which runs each channel as a
// process of its own, route and persist the destinations' messages in parallel. Queue declarations and depth run on a short-lived channel each: a passive declare of a missing queue
// is answered by closing the channel (404), and that must not take the publishes or consumers with it.
//
// Any other close, of the connection or of a channel we did not close, is the link lost: `lost` resolves, the
// unacked deliveries go back to their queues on the broker's side, and the caller connects again.

import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Message, type Options } from 'amqplib';
import { QueueBrokerError, TimeoutError } from '../../core/errors.js';
import type { Delivery, QueueDriver, QueueMessage, Subscription } from './driver.js';

export interface RabbitMqOptions {
  /** amqp:// or amqps:// URL, credentials included. */
  url: string;
  /** How long to wait for the connection and its first channel. */
  connectTimeoutMs?: number;
  /** How long a publish waits for the broker's confirm before it counts as failed (and the message is retried). */
  confirmTimeoutMs?: number;
}

// The AMQP basic properties a filter can name and a forward keeps, under the spec's names (`message_id`, not
// amqplib's `messageId`): these are what users read in the RabbitMQ docs and management UI.
const propertyNames = {
  content_type: 'contentType',
  content_encoding: 'contentEncoding',
  delivery_mode: 'deliveryMode',
  priority: 'priority',
  correlation_id: 'correlationId',
  reply_to: 'replyTo',
  expiration: 'expiration',
  message_id: 'messageId',
  timestamp: 'timestamp',
  type: 'type',
  user_id: 'userId',
  app_id: 'appId',
  cluster_id: 'clusterId',
} as const;
type PropertyName = keyof typeof propertyNames;
const numericProperties = new Set<PropertyName>(['delivery_mode', 'priority', 'timestamp']);

interface Publisher {
  channel: ConfirmChannel;
  /** Returned (unroutable) publishes of this channel, oldest first. */
  returned: Message[];
}

/** What a forward needs to publish the message exactly as it came: amqplib's own, typed, properties. */
interface RawAmqp {
  kind: 'amqp';
  properties: Message['properties'];
}

/** A header value as filters see it: AMQP tables carry numbers, booleans, byte arrays and nested tables too. */
function headerText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return JSON.stringify(value) ?? '';
}

function toQueueMessage(message: ConsumeMessage): QueueMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries((message.properties.headers ?? {}) as Record<string, unknown>)) {
    if (value !== undefined && value !== null) headers[name] = headerText(value);
  }
  const properties: Record<string, string> = {};
  for (const [name, key] of Object.entries(propertyNames)) {
    const value = (message.properties as unknown as Record<string, unknown>)[key];
    if (value !== undefined && value !== null) properties[name] = String(value);
  }
  const raw: RawAmqp = { kind: 'amqp', properties: message.properties };
  return {
    body: message.content,
    headers,
    properties,
    deliveryTag: String(message.fields.deliveryTag),
    redelivered: message.fields.redelivered,
    raw,
  };
}

/**
 * The publish options for `message`. A message that came from this driver goes out with its properties and typed
 * headers as they were; one built elsewhere is rebuilt from its string views. Messages are persistent unless their
 * producer explicitly sent them transient (delivery_mode 1): the temporary queues are durable, so that a message
 * the producer wanted kept survives a broker restart while it waits there.
 */
function publishOptions(message: QueueMessage): Options.Publish {
  const raw = message.raw as RawAmqp | undefined;
  let options: Options.Publish;
  if (raw?.kind === 'amqp') {
    options = {};
    for (const [key, value] of Object.entries(raw.properties)) {
      if (value !== undefined && value !== null) (options as Record<string, unknown>)[key] = value;
    }
  } else {
    options = { headers: { ...message.headers } };
    for (const [name, key] of Object.entries(propertyNames) as Array<[PropertyName, string]>) {
      const value = message.properties[name];
      if (value !== undefined) (options as Record<string, unknown>)[key] = numericProperties.has(name) ? Number(value) : value;
    }
  }
  if (options.deliveryMode === undefined) options.persistent = true;
  return options;
}

function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The URL without its credentials, for messages and logs. */
function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

function amqpCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

export async function connectRabbitMq(options: RabbitMqOptions): Promise<QueueDriver> {
  const { url, connectTimeoutMs = 10_000, confirmTimeoutMs = 10_000 } = options;
  const where = safeUrl(url);
  const connecting = (async () => {
    const connection = await amqp.connect(url, { timeout: connectTimeoutMs });
    try {
      // A first channel proves the connection usable (a vhost without permissions refuses it), not just open.
      await (await connection.createChannel()).close();
      return { connection };
    } catch (error) {
      await connection.close().catch(() => undefined);
      throw error;
    }
  })();
  let opened: { connection: ChannelModel };
  try {
    opened = await withTimeout(
      connecting,
      connectTimeoutMs,
      () => new TimeoutError(`RabbitMQ at ${where} did not accept a connection within ${connectTimeoutMs} ms.`, { hint: 'Check that the broker runs and is reachable from the operator; a slow broker needs a larger connectTimeoutMs.' }),
    );
  } catch (error) {
    // A connection that opens after we gave up is closed, not leaked.
    connecting.then(({ connection }) => connection.close(), () => undefined).catch(() => undefined);
    if (error instanceof TimeoutError) throw error;
    throw new QueueBrokerError(`Cannot connect to RabbitMQ at ${where}: ${(error as Error).message}`, { cause: error });
  }
  return new RabbitMqDriver(opened.connection, where, confirmTimeoutMs);
}

class RabbitMqDriver implements QueueDriver {
  readonly kind = 'rabbitmq';
  readonly lost: Promise<Error>;
  private markLost!: (error: Error) => void;
  private closing = false;
  private readonly expectedCloses = new WeakSet<Channel>();
  private readonly publishers = new Map<string, Promise<Publisher>>();

  constructor(
    private readonly connection: ChannelModel,
    private readonly where: string,
    private readonly confirmTimeoutMs: number,
  ) {
    this.lost = new Promise((resolve) => (this.markLost = resolve));
    // 'error' comes before 'close' with the same reason; without a listener it would throw from the emitter.
    connection.on('error', () => undefined);
    connection.on('close', (error?: Error) => this.lose(error ?? new Error('the connection closed')));
  }

  /** The confirm channel for publishes to `queue`, opened on first use. */
  private publisherFor(queue: string): Promise<Publisher> {
    let publisher = this.publishers.get(queue);
    if (publisher === undefined) {
      publisher = this.connection.createConfirmChannel().then((channel) => {
        this.watch(channel, `the publish channel of ${queue}`);
        const returned: Message[] = [];
        channel.on('return', (message: Message) => returned.push(message));
        return { channel, returned };
      });
      publisher.catch(() => this.publishers.delete(queue));
      this.publishers.set(queue, publisher);
    }
    return publisher;
  }

  private async closePublisher(queue: string): Promise<void> {
    const publisher = this.publishers.get(queue);
    if (publisher === undefined) return;
    this.publishers.delete(queue);
    const { channel } = await publisher.catch(() => ({ channel: undefined }));
    if (channel === undefined) return;
    this.expectedCloses.add(channel);
    await channel.close().catch(() => undefined);
  }

  private lose(error: Error): void {
    if (this.closing) return;
    this.markLost(new QueueBrokerError(`Lost the link to RabbitMQ at ${this.where}: ${error.message}`, { cause: error }));
  }

  private watch(channel: Channel, what: string): void {
    let reason: Error | undefined;
    channel.on('error', (error: Error) => (reason = error));
    channel.on('close', () => {
      if (!this.expectedCloses.has(channel)) this.lose(reason ?? new Error(`${what} closed`));
    });
  }

  /** Runs `work` on a channel of its own, closed after; a broker refusal closes only that one. */
  private async oneShot<T>(work: (channel: Channel) => Promise<T>): Promise<T> {
    const channel = await this.connection.createChannel();
    channel.on('error', () => undefined);
    try {
      return await work(channel);
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  async ensureQueue(name: string): Promise<void> {
    try {
      // A queue that exists is left as its owner declared it: redeclaring it with other arguments (a quorum queue,
      // a TTL) would be refused. Only a missing one is created, durable.
      await this.oneShot((channel) => channel.checkQueue(name));
    } catch (error) {
      if (amqpCode(error) !== 404) throw this.refused(`check queue ${name}`, error);
      try {
        await this.oneShot((channel) => channel.assertQueue(name, { durable: true, autoDelete: false, exclusive: false }));
      } catch (declareError) {
        throw this.refused(`declare queue ${name}`, declareError);
      }
    }
  }

  async deleteQueue(name: string): Promise<void> {
    await this.closePublisher(name);
    try {
      // Deleting a missing queue is a no-op in RabbitMQ 3.x; kept idempotent if a broker answers 404 instead.
      await this.oneShot((channel) => channel.deleteQueue(name));
    } catch (error) {
      if (amqpCode(error) !== 404) throw this.refused(`delete queue ${name}`, error);
    }
  }

  /** Nothing to do: the broker requeues a channel's unacked messages as soon as the channel closes. */
  async release(): Promise<void> {}

  async depth(name: string): Promise<number> {
    try {
      return (await this.oneShot((channel) => channel.checkQueue(name))).messageCount;
    } catch (error) {
      throw this.refused(`count queue ${name}`, error);
    }
  }

  async consume(queue: string, prefetch: number, handle: (delivery: Delivery) => Promise<void>): Promise<Subscription> {
    const channel = await this.connection.createChannel();
    this.watch(channel, 'a consumer channel');
    let inFlight = 0;
    let idle: (() => void) | undefined;
    const settled = (): void => {
      inFlight -= 1;
      if (inFlight === 0) idle?.();
    };
    const onMessage = (message: ConsumeMessage | null): void => {
      // null: the broker cancelled the consumer (its queue was deleted); nothing more comes on it.
      if (message === null) return;
      inFlight += 1;
      let done = false;
      const settle = (how: () => void) => async (): Promise<void> => {
        if (done) return;
        done = true;
        settled();
        // Throws once the channel is closed: the broker then requeues the message itself.
        how();
      };
      const delivery: Delivery = {
        ...toQueueMessage(message),
        ack: settle(() => channel.ack(message)),
        requeue: settle(() => channel.nack(message, false, true)),
      };
      handle(delivery).catch(() => delivery.requeue().catch(() => undefined));
    };
    let consumerTag: string;
    try {
      await channel.prefetch(prefetch);
      consumerTag = (await channel.consume(queue, onMessage, { noAck: false })).consumerTag;
    } catch (error) {
      throw this.refused(`consume queue ${queue}`, error);
    }
    return {
      cancel: async () => {
        await channel.cancel(consumerTag).catch(() => undefined);
        // The deliveries already handed out are settled by their handlers, on this channel, before it closes.
        if (inFlight > 0) await new Promise<void>((resolve) => (idle = resolve));
        this.expectedCloses.add(channel);
        await channel.close().catch(() => undefined);
      },
    };
  }

  publish(queue: string, message: QueueMessage): Promise<void> {
    // Publishes to one queue chain on the same promise, so they are sent in call order even while it opens.
    const confirmed = this.publisherFor(queue).then(
      ({ channel, returned }) =>
        new Promise<void>((resolve, reject) => {
          // mandatory: a publish to a missing queue is returned rather than confirmed into nowhere. sendToQueue
          // throws on a closed channel: the executor turns that into this promise's rejection, wrapped below.
          channel.sendToQueue(queue, message.body, { ...publishOptions(message), mandatory: true }, (error: unknown) => {
            // RabbitMQ sends a mandatory publish's basic.return before its confirm, and confirms in publish order:
            // the oldest return of this channel belongs to the first confirm whose message it is.
            const head = returned[0];
            if (head !== undefined && head.content.equals(message.body)) {
              returned.shift();
              reject(new QueueBrokerError(`RabbitMQ could not route a message to queue ${queue}: it does not exist.`, { hint: 'The queue was deleted while the split ran; the message stays on its original queue.' }));
            } else if (error !== null && error !== undefined) {
              reject(new QueueBrokerError(`RabbitMQ refused a message for queue ${queue}.`, { cause: error }));
            } else {
              resolve();
            }
          });
        }),
    ).catch((error: unknown) => {
      if (error instanceof QueueBrokerError) throw error;
      throw new QueueBrokerError(`Cannot publish to queue ${queue}: ${(error as Error).message}`, { cause: error });
    });
    return withTimeout(
      confirmed,
      this.confirmTimeoutMs,
      () => new TimeoutError(`RabbitMQ did not confirm a message for queue ${queue} within ${this.confirmTimeoutMs} ms.`, { hint: 'The broker may be blocked (memory or disk alarm); the message is retried. A slow broker needs a larger confirmTimeoutMs.' }),
    );
  }

  private refused(what: string, error: unknown): QueueBrokerError {
    return new QueueBrokerError(`RabbitMQ at ${this.where} refused to ${what}: ${(error as Error).message}`, { cause: error });
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.connection.close().catch(() => undefined);
  }
}
