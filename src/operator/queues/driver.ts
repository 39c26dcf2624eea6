// Queue splitting (docs/queues.md): the operator consumes a workload's queue and forwards each message to the
// session whose filter matches it, or to the deployed app's own temporary queue. The splitter knows brokers only
// through this interface, so that SQS, Kafka or Redis Streams are one more driver, not a change to it.
//
// The guarantee every driver gives the splitter: a message taken from a queue stays the broker's until `ack`, and
// `publish` resolves only once the broker has it (RabbitMQ's publisher confirm, JetStream's PubAck). Forward, then
// ack: a crash between the two is the one place a message is seen twice, never the place it is lost.

/** One message as the broker delivered it: body, headers and properties kept intact for the forward. */
export interface QueueMessage {
  body: Buffer;
  /** Application headers (AMQP headers, NATS headers); filters match them. */
  headers: Record<string, string>;
  /**
   * Broker properties a filter may match and a forward must keep (AMQP: content_type, message_id, correlation_id,
   * reply_to, type, app_id, priority…; NATS: the subject). Kept as the driver's own, opaque to the splitter.
   */
  properties: Record<string, string>;
  /** For the splitter's counts and logs; unique per delivery, not per message. */
  deliveryTag: string;
  /** Whether the broker says it delivered this one before (a redelivery after a crash): a possible duplicate. */
  redelivered: boolean;
  /**
   * The driver's own form of the message, opaque to the splitter: what `publish` of the same driver uses to send
   * it on exactly as it came. The string views above cannot: AMQP headers are typed tables (numbers, booleans,
   * nested tables, byte arrays), and a forward must not turn them into strings. Absent on a message built by
   * hand; the driver then publishes from the string views.
   */
  raw?: unknown;
}

export interface Delivery extends QueueMessage {
  /** Done with it: the broker may forget it. Only after its forward was confirmed. */
  ack(): Promise<void>;
  /** Give it back to the queue, for another try or another consumer. */
  requeue(): Promise<void>;
}

export interface Subscription {
  /** Stops taking new messages; those already handed out are acked or requeued by their handlers. */
  cancel(): Promise<void>;
}

export interface QueueDriver {
  readonly kind: string;
  /** Creates a queue (or stream consumer) if missing; idempotent. */
  ensureQueue(name: string): Promise<void>;
  /** Deletes a queue; idempotent. */
  deleteQueue(name: string): Promise<void>;
  /**
   * Makes the messages of `queue` that a consumer took and neither acked nor requeued deliverable again now, for
   * the splitter to drain a queue whose app is gone. A broker that requeues a dead consumer's messages as soon as
   * its link closes (RabbitMQ) has nothing to do; one that waits for an ack deadline (JetStream's ack_wait) would
   * hold them that long, and the drain with them. Called only once nothing consumes the queue: a consumer still
   * there may see its later acks fail and its messages delivered again, duplicates, not losses.
   */
  release(queue: string): Promise<void>;
  /** Messages waiting in it, as the broker counts them. */
  depth(name: string): Promise<number>;
  /**
   * Hands each message of `queue` to `handle`, at most `prefetch` unacked at a time, in the broker's order. A
   * handler that throws gets its message requeued.
   */
  consume(queue: string, prefetch: number, handle: (delivery: Delivery) => Promise<void>): Promise<Subscription>;
  /**
   * Resolves once the broker confirmed it has `message` on `queue`; rejects when it refused, the queue is missing,
   * or the link dropped. Publishes reach the broker in the order of the calls, so that a caller may have several
   * waiting for their confirms and still keep the order per destination queue.
   */
  publish(queue: string, message: QueueMessage): Promise<void>;
  /** Resolves when the broker link is lost (to reconnect), with why. */
  readonly lost: Promise<Error>;
  close(): Promise<void>;
}
