// The queue splitter: for one original queue of a workload, the operator consumes it and forwards each message to
// the first session (in the order they were added) whose filter matches it, or else to the deployed app's own
// temporary queue. It knows brokers only through QueueDriver (driver.ts).
//
// Names. A destination's queue is `<queue>.remocal.<session id>`, the deployed app's `<queue>.remocal.deployed`:
// derived, not random, so that an operator restarted after a crash declares the same queues again and finds the
// messages waiting in them.
//
// Delivery: at least once, never lost. A message is acked on the original queue only after the broker confirmed
// its forward. A session that ends has its queue drained back to the original queue, then deleted; what was
// waiting there is routed again, as if it had just arrived, and so goes to the deployed app (or to another
// session whose filter matches). The same on stop(), for every session and for the deployed app's queue.
//
// Where a message can be seen twice (each time, `redelivered` counts the ones the broker flags):
// - the operator dies, or loses the broker, after a forward was confirmed and before its ack reached the broker:
//   the original queue delivers it again and it is forwarded again, possibly elsewhere if the sessions changed;
// - a confirm times out although the broker had the message: it is requeued and forwarded again;
// - the same two while draining a temporary queue back: the message is on the original queue again, and still on
//   the temporary one, to be drained (or consumed) once more;
// - an app that consumes its queue and dies before its own ack, as with any AMQP consumer.
//
// Order is kept per destination: the driver takes the messages of the original queue in order, and the splitter
// calls `publish` for each before anything else of it can interleave, so the broker receives each destination's
// messages in the order they were taken. Requeued and drained-back messages go to the tail of the original queue:
// their order against newer messages is not kept.

import { QueueBrokerError, UsageError } from '../../core/errors.js';
import type { Delivery, QueueDriver, Subscription } from './driver.js';
import { compileMessageFilter, type MessageFilter, type MessageFilterSpec } from './filter.js';

export const deployedId = 'deployed';
const idPattern = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The temporary queue of `id` (a session id, or `deployed`) for the original `queue`. */
export function tempQueueName(queue: string, id: string): string {
  return `${queue}.remocal.${id}`;
}

export interface DestinationCounts {
  id: string;
  queue: string;
  active: boolean;
  /** Forwards the broker confirmed. */
  forwarded: number;
  /** Of those, how many the broker flagged as delivered before: possible duplicates. */
  redelivered: number;
  /** Messages moved from its temporary queue back to the original one when it ended. */
  drainedBack: number;
  /** Forwards that failed and were requeued on the original queue. */
  failed: number;
}

export interface SplitterStatus {
  queue: string;
  destinations: DestinationCounts[];
}

export interface SplitterOptions {
  driver: QueueDriver;
  /** The original queue, the one the workload consumes. */
  queue: string;
  /** Messages forwarded at once, waiting for their confirms; also the prefetch on the original queue. */
  prefetch?: number;
}

class Destination {
  readonly counts: DestinationCounts;
  private inFlight = 0;
  private idle: Array<() => void> = [];

  constructor(
    readonly id: string,
    readonly queue: string,
    readonly filter: MessageFilter | undefined,
  ) {
    this.counts = { id, queue, active: true, forwarded: 0, redelivered: 0, drainedBack: 0, failed: 0 };
  }

  track<T>(work: Promise<T>): Promise<T> {
    this.inFlight += 1;
    return work.finally(() => {
      this.inFlight -= 1;
      if (this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve();
    });
  }

  /** Resolves once no forward to it is waiting for its confirm. */
  settled(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }
}

export class QueueSplitter {
  private readonly driver: QueueDriver;
  private readonly queue: string;
  private readonly prefetch: number;
  private readonly deployed: Destination;
  /** Sessions in the order they were added: the first whose filter matches takes the message. */
  private sessions: Destination[] = [];
  private readonly ended: DestinationCounts[] = [];
  private subscription: Subscription | undefined;
  // Membership changes (add, remove, stop) run one at a time, in the order asked.
  private changes: Promise<unknown> = Promise.resolve();

  constructor(options: SplitterOptions) {
    this.driver = options.driver;
    this.queue = options.queue;
    this.prefetch = options.prefetch ?? 200;
    this.deployed = new Destination(deployedId, tempQueueName(this.queue, deployedId), undefined);
  }

  private serial<T>(change: () => Promise<T>): Promise<T> {
    const next = this.changes.then(change);
    this.changes = next.catch(() => undefined);
    return next;
  }

  /** The deployed app's queue name; the original queue is consumed from now on. */
  start(): Promise<string> {
    return this.serial(async () => {
      if (this.subscription) return this.deployed.queue;
      await this.driver.ensureQueue(this.deployed.queue);
      this.subscription = await this.driver.consume(this.queue, this.prefetch, (delivery) => this.route(delivery));
      return this.deployed.queue;
    });
  }

  /** Adds a session; its messages go to the queue whose name this returns. Adding an id again keeps its place. */
  async addSession(id: string, filter: MessageFilterSpec | MessageFilter): Promise<string> {
    if (!idPattern.test(id) || id === deployedId) {
      throw new UsageError(`A split session id must be a DNS label other than "${deployedId}"; got "${id}".`);
    }
    const compiled = 'matches' in filter ? (filter as MessageFilter) : compileMessageFilter(filter as MessageFilterSpec);
    return this.serial(async () => {
      const existing = this.sessions.find((session) => session.id === id);
      if (existing) return existing.queue;
      const session = new Destination(id, tempQueueName(this.queue, id), compiled);
      await this.driver.ensureQueue(session.queue);
      this.sessions = [...this.sessions, session];
      return session.queue;
    });
  }

  /**
   * Ends a session: no new message goes to it, what it had not consumed goes back to the original queue, and its
   * queue is deleted. Call it once the session's app no longer consumes the queue: a message that app holds
   * unacked when the queue is deleted goes with it.
   */
  removeSession(id: string): Promise<void> {
    return this.serial(async () => {
      const session = this.sessions.find((candidate) => candidate.id === id);
      if (!session) return;
      this.sessions = this.sessions.filter((candidate) => candidate !== session);
      await this.retire(session);
    });
  }

  /**
   * The end of the split (its last session ended): the original queue is no longer consumed, and every temporary
   * queue, the deployed app's too, is drained back to it and deleted. Call it once the deployed app consumes the
   * original queue again (its env restored), for the same reason as removeSession.
   */
  stop(): Promise<void> {
    return this.serial(async () => {
      await this.subscription?.cancel();
      this.subscription = undefined;
      const sessions = this.sessions;
      this.sessions = [];
      for (const session of sessions) await this.retire(session);
      await this.retire(this.deployed);
    });
  }

  status(): SplitterStatus {
    return { queue: this.queue, destinations: [this.deployed.counts, ...this.sessions.map((session) => session.counts), ...this.ended] };
  }

  private route(delivery: Delivery): Promise<void> {
    const destination = this.sessions.find((session) => session.filter?.matches(delivery)) ?? this.deployed;
    // No await before publish: the order of these calls is the order the broker gets them (see the top).
    const forward = destination.track(this.driver.publish(destination.queue, delivery));
    return forward.then(
      async () => {
        destination.counts.forwarded += 1;
        if (delivery.redelivered) destination.counts.redelivered += 1;
        await delivery.ack();
      },
      (error: unknown) => {
        destination.counts.failed += 1;
        // The driver requeues a message whose handler failed.
        throw error;
      },
    );
  }

  private async retire(destination: Destination): Promise<void> {
    destination.counts.active = false;
    await destination.settled();
    // Its app is gone (the callers' contract): what that app took and never acked must come back now, not
    // whenever the broker gives up on it, or the drain, and every membership change queued behind it, waits.
    await this.driver.release(destination.queue);
    await this.drainBack(destination);
    await this.driver.deleteQueue(destination.queue);
    if (destination !== this.deployed) this.ended.push(destination.counts);
  }

  /** Moves every message waiting in `destination`'s queue back to the original queue, each confirmed before acked. */
  private async drainBack(destination: Destination): Promise<void> {
    // Rounds, because a message our drain consumer held when it stopped is back on the queue only once its
    // channel closed; bounded, because a queue someone keeps publishing to would never be empty.
    for (let round = 0; round < 100; round += 1) {
      if ((await this.driver.depth(destination.queue)) === 0) return;
      let progress: () => void = () => undefined;
      const subscription = await this.driver.consume(destination.queue, this.prefetch, async (delivery) => {
        await this.driver.publish(this.queue, delivery);
        destination.counts.drainedBack += 1;
        await delivery.ack();
        progress();
      });
      // Until the queue reads empty: re-read it after each forward, or when no forward came for a while.
      for (;;) {
        if ((await this.driver.depth(destination.queue)) === 0) break;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 200);
          progress = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      await subscription.cancel();
    }
    throw new QueueBrokerError(`The temporary queue ${destination.queue} did not empty: something keeps publishing to it.`);
  }
}
