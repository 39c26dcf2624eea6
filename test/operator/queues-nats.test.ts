// The NATS JetStream queue driver against a real nats-server: what the splitter relies on (driver.ts), message by
// message.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { QueueBrokerError } from '../../src/core/errors.js';
import type { Delivery, QueueDriver, QueueMessage } from '../../src/operator/queues/driver.js';
import { connectNats } from '../../src/operator/queues/nats.js';
import { startNatsServer, type NatsServer } from '../helpers/nats.js';
import { freePort } from '../helpers/net.js';
import { waitFor } from '../helpers/processes.js';

function message(body: string | Buffer, headers: Record<string, string> = {}): QueueMessage {
  return { body: Buffer.from(body), headers, properties: {}, deliveryTag: 'test', redelivered: false };
}

/** What a consumer got, in order, with each delivery kept for the test to settle. */
async function collect(driver: QueueDriver, queue: string, prefetch: number, onDelivery: (delivery: Delivery) => Promise<void> = async () => {}) {
  const got: Delivery[] = [];
  const subscription = await driver.consume(queue, prefetch, async (delivery) => {
    got.push(delivery);
    await onDelivery(delivery);
  });
  return { got, subscription };
}

async function ackPending(url: string, queue: string): Promise<{ ackPending: number; pending: number }> {
  const nc = await connect({ servers: url, reconnect: false });
  try {
    const info = await (await jetstreamManager(nc)).consumers.info(queue, queue);
    return { ackPending: info.num_ack_pending, pending: info.num_pending };
  } finally {
    await nc.close();
  }
}

describe('NATS JetStream queue driver', { timeout: 360_000 }, () => {
  let server: NatsServer;
  let driver: QueueDriver;

  before(async () => {
    server = await startNatsServer();
    driver = await connectNats({ url: server.url });
  });
  after(async () => {
    await driver?.close();
    await server?.stop();
  });

  it('confirms a publish once the stream has it, and counts it in depth', async () => {
    await driver.ensureQueue('confirmed');
    await driver.ensureQueue('confirmed'); // idempotent
    assert.equal(await driver.depth('confirmed'), 0);
    for (let i = 0; i < 3; i++) await driver.publish('confirmed', message(`m${i}`));
    assert.equal(await driver.depth('confirmed'), 3);
    await driver.deleteQueue('confirmed');
    await driver.deleteQueue('confirmed'); // idempotent
    await assert.rejects(driver.depth('confirmed'), QueueBrokerError);
  });

  it('refuses a publish to a queue that does not exist, and a name that cannot be a subject', async () => {
    await assert.rejects(driver.publish('missing', message('x')), (error: Error) => error instanceof QueueBrokerError && /missing/.test(error.message));
    for (const name of ['orders.*', 'orders.>', 'orders..eu', '$JS', 'a b', '', 'x'.repeat(129)]) {
      await assert.rejects(driver.ensureQueue(name), QueueBrokerError, name);
    }
    await assert.rejects(driver.consume('ok', 0, async () => {}), QueueBrokerError);
  });

  it('takes the splitter\'s dotted temporary queue names, and refuses two names that would share a stream', async () => {
    await driver.ensureQueue('orders.remocal.alice');
    await driver.publish('orders.remocal.alice', message('for alice'));
    assert.equal(await driver.depth('orders.remocal.alice'), 1);
    await assert.rejects(driver.ensureQueue('orders_remocal_alice'), (error: Error) => error instanceof QueueBrokerError && /orders\.remocal\.alice/.test(error.message));
    const { got, subscription } = await collect(driver, 'orders.remocal.alice', 1, (delivery) => delivery.ack());
    await waitFor(() => got.length === 1, 'the message');
    assert.equal(got[0]!.properties.subject, 'orders.remocal.alice');
    await subscription.cancel();
    await driver.deleteQueue('orders.remocal.alice');
  });

  it('keeps body and headers intact across a forward, with the subject as a property', async () => {
    await driver.ensureQueue('fwd_src');
    await driver.ensureQueue('fwd_dst');
    const body = Buffer.from([0, 1, 2, 255, 13, 10, 0x7b]);
    const headers = { 'X-Dev': 'alice', 'Content-Type': 'application/octet-stream', 'x-lower': 'v', 'X-Empty': '' };
    await driver.publish('fwd_src', message(body, headers));

    const source = await collect(driver, 'fwd_src', 10, async (delivery) => {
      await driver.publish('fwd_dst', delivery);
      await delivery.ack();
    });
    const destination = await collect(driver, 'fwd_dst', 10, (delivery) => delivery.ack());
    await waitFor(() => destination.got.length === 1, 'the forwarded message');
    const [original] = source.got;
    const [forwarded] = destination.got;
    assert.deepEqual(original!.body, body);
    assert.deepEqual(original!.headers, headers);
    assert.equal(original!.properties.subject, 'fwd_src');
    assert.equal(original!.redelivered, false);
    assert.deepEqual(forwarded!.body, body);
    assert.deepEqual(forwarded!.headers, headers);
    assert.equal(forwarded!.properties.subject, 'fwd_dst');
    await source.subscription.cancel();
    await destination.subscription.cancel();
    await waitFor(async () => (await driver.depth('fwd_src')) === 0 && (await driver.depth('fwd_dst')) === 0, 'both queues empty');
  });

  it('drops a second forward of the same delivery in the destination dedupe window', async () => {
    await driver.ensureQueue('dup_src');
    await driver.ensureQueue('dup_dst');
    await driver.publish('dup_src', message('once'));
    const source = await collect(driver, 'dup_src', 1, async (delivery) => {
      // As after a crash between the forward and the ack: the same delivery forwarded twice.
      await driver.publish('dup_dst', delivery);
      await driver.publish('dup_dst', delivery);
      await delivery.ack();
    });
    await waitFor(() => source.got.length === 1, 'the message');
    await waitFor(async () => (await driver.depth('dup_src')) === 0, 'the source acked');
    assert.equal(await driver.depth('dup_dst'), 1);
    await source.subscription.cancel();
  });

  it('redelivers a requeued message, and one whose handler threw, flagged as redelivered', async () => {
    await driver.ensureQueue('requeue');
    await driver.publish('requeue', message('again', { n: '1' }));
    let calls = 0;
    const { got, subscription } = await collect(driver, 'requeue', 1, async (delivery) => {
      calls++;
      if (calls === 1) return delivery.requeue();
      if (calls === 2) throw new Error('handler failed');
      await delivery.ack();
    });
    await waitFor(() => got.length === 3, 'three deliveries of the message');
    assert.deepEqual(
      got.map((delivery) => [delivery.body.toString(), delivery.headers.n, delivery.redelivered]),
      [
        ['again', '1', false],
        ['again', '1', true],
        ['again', '1', true],
      ],
    );
    assert.equal(new Set(got.map((delivery) => delivery.deliveryTag)).size, 3, 'a tag per delivery');
    await waitFor(async () => (await driver.depth('requeue')) === 0, 'the message acked');
    await assert.rejects(got[2]!.ack(), QueueBrokerError, 'a second ack of one delivery');
    await subscription.cancel();
  });

  it('never holds more than the prefetch unacked, and still goes through every message', async () => {
    const total = 40;
    const prefetch = 4;
    await driver.ensureQueue('bounded');
    for (let i = 0; i < total; i++) await driver.publish('bounded', message(String(i)));
    let held = 0;
    let maxHeld = 0;
    const { got, subscription } = await collect(driver, 'bounded', prefetch, async () => {
      held++;
      maxHeld = Math.max(maxHeld, held);
    });
    let acked = 0;
    while (acked < total) {
      await waitFor(() => held === Math.min(prefetch, total - acked), 'a full prefetch of unacked messages');
      // The server agrees: it handed out just the prefetch and keeps the rest.
      assert.deepEqual(await ackPending(server.url, 'bounded'), { ackPending: held, pending: total - acked - held });
      assert.equal(got.length, acked + held);
      for (const delivery of got.slice(acked)) {
        // Released as the ack leaves: the server may hand out the next one before the ack's answer is read.
        held--;
        acked++;
        await delivery.ack();
      }
    }
    assert.equal(maxHeld, prefetch);
    assert.deepEqual(
      got.map((delivery) => delivery.body.toString()),
      Array.from({ length: total }, (_, i) => String(i)),
      'in the order published',
    );
    await subscription.cancel();
    assert.equal(await driver.depth('bounded'), 0);
  });

  it('stops handing out messages on cancel, and the unacked ones stay in the queue', async () => {
    await driver.ensureQueue('cancelled');
    for (let i = 0; i < 5; i++) await driver.publish('cancelled', message(String(i)));
    const { got, subscription } = await collect(driver, 'cancelled', 2);
    await waitFor(() => got.length === 2, 'two deliveries');
    await subscription.cancel();
    for (const delivery of got) await delivery.requeue();
    assert.equal(got.length, 2);
    assert.equal(await driver.depth('cancelled'), 5);
  });

  // A split session's end drained its queue only after the ack_wait (30 s by default) of what its gone app had
  // pulled, and every session change queued behind it waited as long.
  it('release hands out again at once what a gone consumer took and never acked, not after the ack_wait', async () => {
    await driver.ensureQueue('released');
    for (let i = 0; i < 3; i++) await driver.publish('released', message(String(i)));
    // The gone app: it took all three, then its link went without an ack or a requeue.
    const app = await connectNats({ url: server.url });
    const taken = await collect(app, 'released', 10);
    await waitFor(() => taken.got.length === 3, 'the app took the three');
    await app.close();
    assert.equal(await driver.depth('released'), 3, 'still the stream\'s, held by the gone consumer');

    const released = Date.now();
    await driver.release('released');
    const again = await collect(driver, 'released', 10, (delivery) => delivery.ack());
    await waitFor(() => again.got.length === 3, 'the three handed out again', 10_000);
    assert.ok(Date.now() - released < 10_000, 'well within the 30 s ack_wait');
    assert.deepEqual(again.got.map((delivery) => delivery.body.toString()), ['0', '1', '2'], 'in their order');
    await again.subscription.cancel();
    await waitFor(async () => (await driver.depth('released')) === 0, 'all acked');
    await driver.release('released'); // a queue with nothing held: nothing changes
    await driver.deleteQueue('released');
    await driver.release('released'); // a deleted queue stays deleted
    await assert.rejects(driver.depth('released'), QueueBrokerError);
  });

  it('reports a closed connection as lost, and a new driver gets the unacked messages again after a restart', async () => {
    const short = await connectNats({ url: server.url, ackWaitMs: 500 });
    try {
      await short.ensureQueue('survives');
      for (let i = 0; i < 3; i++) await short.publish('survives', message(String(i)));
      const { got } = await collect(short, 'survives', 10);
      await waitFor(() => got.length === 3, 'three deliveries');

      await server.kill();
      const lost = await short.lost;
      assert.ok(lost instanceof QueueBrokerError, String(lost));
      assert.match(lost.message, /Lost the link/);
      // At once, not after the request timeout: the link is known to be gone.
      const failing = Date.now();
      await assert.rejects(got[0]!.ack(), (error: Error) => error instanceof QueueBrokerError && /closed connection/.test(error.message));
      await assert.rejects(short.publish('survives', message('x')), (error: Error) => error instanceof QueueBrokerError && /closed connection/.test(error.message));
      assert.ok(Date.now() - failing < 1_000);
    } finally {
      await short.close();
    }

    await server.restart();
    await driver.close();
    driver = await connectNats({ url: server.url });
    assert.equal(await driver.depth('survives'), 3, 'file storage kept the unacked messages');
    const again = await collect(driver, 'survives', 10, (delivery) => delivery.ack());
    await waitFor(() => again.got.length === 3, 'the three messages redelivered', 15_000);
    assert.deepEqual(again.got.map((delivery) => delivery.body.toString()).sort(), ['0', '1', '2']);
    assert.ok(again.got.every((delivery) => delivery.redelivered));
    await again.subscription.cancel();
    await waitFor(async () => (await driver.depth('survives')) === 0, 'all acked');
  });

  it('fails to connect within its bound when nothing listens', async () => {
    const port = await freePort();
    const started = Date.now();
    await assert.rejects(connectNats({ url: `nats://127.0.0.1:${port}`, connectTimeoutMs: 2_000 }), QueueBrokerError);
    assert.ok(Date.now() - started < 5_000);
  });
});
