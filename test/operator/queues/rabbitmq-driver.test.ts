// The RabbitMQ driver against a real broker: a forward keeps body, properties and typed headers; publish resolves
// on the confirm and refuses a missing queue; requeue gives the message back, flagged redelivered; depth counts;
// a channel the broker closes is reported as the link lost.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import amqp, { type ChannelModel, type GetMessage } from 'amqplib';
import { QueueBrokerError } from '../../../src/core/errors.js';
import type { Delivery, QueueDriver } from '../../../src/operator/queues/driver.js';
import { connectRabbitMq } from '../../../src/operator/queues/rabbitmq.js';
import { startRabbitMq, type RabbitMqNode } from '../../helpers/rabbitmq.js';

/** The next delivery of `queue`, through the driver, left unsettled. */
async function nextDelivery(driver: QueueDriver, queue: string): Promise<{ delivery: Delivery; cancel: () => Promise<void> }> {
  let got!: (delivery: Delivery) => void;
  const first = new Promise<Delivery>((resolve) => (got = resolve));
  let taken = false;
  const subscription = await driver.consume(queue, 1, async (delivery) => {
    if (taken) return delivery.requeue();
    taken = true;
    got(delivery);
  });
  const delivery = await first;
  return { delivery, cancel: () => subscription.cancel() };
}

describe('RabbitMQ driver', { timeout: 120_000 }, () => {
  let node: RabbitMqNode;
  let driver: QueueDriver;
  let client: ChannelModel;

  before(async () => {
    node = await startRabbitMq();
    driver = await connectRabbitMq({ url: node.url });
    client = await amqp.connect(node.url);
  });

  after(async () => {
    await client?.close().catch(() => undefined);
    await driver?.close();
    await node?.stop();
  });

  it('forwards body, properties and typed headers intact', async () => {
    await driver.ensureQueue('props.in');
    await driver.ensureQueue('props.out');
    const channel = await client.createConfirmChannel();
    const body = Buffer.from([0, 1, 2, 255, 254]);
    const sent = {
      contentType: 'application/octet-stream',
      contentEncoding: 'identity',
      deliveryMode: 2,
      priority: 7,
      correlationId: 'corr-1',
      replyTo: 'replies',
      expiration: '600000',
      messageId: 'msg-1',
      timestamp: 1_700_000_000,
      type: 'order.created',
      appId: 'shop',
      // cluster_id is left out: RabbitMQ drops it from every message (deprecated in 0-9-1).
      headers: { 'x-dev': 'alice', count: 42, ratio: 1.5, flag: true, nested: { a: 'b' }, list: ['x', 2] },
    };
    channel.sendToQueue('props.in', body, sent);
    await channel.waitForConfirms();

    const { delivery, cancel } = await nextDelivery(driver, 'props.in');
    assert.equal(delivery.headers['x-dev'], 'alice');
    assert.equal(delivery.headers.count, '42');
    assert.equal(delivery.properties.message_id, 'msg-1');
    assert.equal(delivery.properties.priority, '7');
    await driver.publish('props.out', delivery);
    await delivery.ack();
    await cancel();

    const got = (await channel.get('props.out', { noAck: true })) as GetMessage;
    assert.ok(got, 'the forward is on the queue once publish resolved');
    assert.deepEqual(got.content, body);
    const { headers, ...properties } = got.properties;
    const { headers: sentHeaders, ...sentProperties } = sent;
    assert.deepEqual(headers, sentHeaders);
    for (const [key, value] of Object.entries(sentProperties)) assert.deepEqual((properties as unknown as Record<string, unknown>)[key], value, key);
    assert.equal(await driver.depth('props.in'), 0);
    await channel.close();
  });

  it('publishes a hand-built message from its string views, persistent', async () => {
    await driver.ensureQueue('built');
    await driver.publish('built', { body: Buffer.from('hi'), headers: { 'x-dev': 'bob' }, properties: { message_id: 'm2', priority: '3' }, deliveryTag: '0', redelivered: false });
    const channel = await client.createChannel();
    const got = (await channel.get('built', { noAck: true })) as GetMessage;
    assert.equal(got.properties.messageId, 'm2');
    assert.equal(got.properties.priority, 3);
    assert.equal(got.properties.deliveryMode, 2);
    assert.deepEqual(got.properties.headers, { 'x-dev': 'bob' });
    await channel.close();
  });

  it('resolves a publish only with the message on the queue, and refuses a missing queue', async () => {
    await driver.ensureQueue('depth');
    const message = { body: Buffer.from('x'), headers: {}, properties: {}, deliveryTag: '0', redelivered: false };
    for (let i = 0; i < 5; i += 1) await driver.publish('depth', message);
    assert.equal(await driver.depth('depth'), 5);
    await assert.rejects(driver.publish('no-such-queue', message), (error: unknown) => error instanceof QueueBrokerError && /does not exist/.test((error as Error).message));
    // The refusal closed nothing: the driver still publishes.
    await driver.publish('depth', message);
    assert.equal(await driver.depth('depth'), 6);
    await assert.rejects(driver.depth('no-such-queue'), QueueBrokerError);
    await driver.deleteQueue('depth');
    await driver.deleteQueue('depth');
  });

  it('requeues a message, which comes back flagged redelivered', async () => {
    await driver.ensureQueue('requeue');
    await driver.publish('requeue', { body: Buffer.from('again'), headers: {}, properties: {}, deliveryTag: '0', redelivered: false });
    const first = await nextDelivery(driver, 'requeue');
    assert.equal(first.delivery.redelivered, false);
    await first.delivery.requeue();
    await first.cancel();
    const second = await nextDelivery(driver, 'requeue');
    assert.equal(second.delivery.body.toString(), 'again');
    assert.equal(second.delivery.redelivered, true);
    await second.delivery.ack();
    await second.cancel();
    assert.equal(await driver.depth('requeue'), 0);
  });

  it('reports the link lost when the broker closes a channel', async () => {
    const doomed = await connectRabbitMq({ url: node.url });
    await doomed.ensureQueue('lost');
    // RabbitMQ closes the channel of a publish whose user_id is not the connection's user.
    const refused = doomed.publish('lost', { body: Buffer.from('x'), headers: {}, properties: { user_id: 'someone-else' }, deliveryTag: '0', redelivered: false });
    const lost = await doomed.lost;
    assert.ok(lost instanceof QueueBrokerError);
    assert.match(lost.message, /Lost the link/);
    await assert.rejects(refused);
    await doomed.close();
  });
});
