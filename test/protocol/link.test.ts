import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { ProtocolError } from '../../src/core/errors.js';
import { encodeCredit, encodeDataHeader, encodeEnd, encodeMessage, encodeReset } from '../../src/protocol/frames.js';
import { Link, type LinkOptions } from '../../src/protocol/link.js';
import { PROTOCOL_VERSION, type Hello } from '../../src/protocol/messages.js';
import { collectFrames, linkPair, socketPair, type AgentLink } from './helpers.js';

const intproxyHello: Hello = { type: 'hello', protocol: 'remocal', role: 'intproxy', version: 1, minVersion: 1 };

/** An agent-side Link on one end of a unix socket, and the other end raw, for the test to play the peer. */
async function rawPeer(options: Partial<LinkOptions> = {}) {
  const sockets = await socketPair();
  const link: AgentLink = new Link(
    { readable: sockets.server, writable: sockets.server },
    { role: 'agent', streamIdParity: 'even', ...options },
  );
  const closed = once(link, 'close') as Promise<[Error | undefined]>;
  const received = collectFrames(sockets.client);
  return { link, raw: sockets.client, received, closed, dispose: sockets.dispose };
}

async function handshaken(options: Partial<LinkOptions> = {}) {
  const peer = await rawPeer(options);
  const handshake = peer.link.handshake(2000);
  peer.raw.write(encodeMessage(intproxyHello));
  await handshake;
  return peer;
}

async function closeError(closed: Promise<[Error | undefined]>): Promise<ProtocolError> {
  const [error] = await closed;
  assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
  return error;
}

describe('link handshake', () => {
  it('exchanges hellos and agrees on a version', async () => {
    const pair = await linkPair();
    try {
      assert.equal(pair.intproxy.peerHello?.role, 'agent');
      assert.equal(pair.agent.peerHello?.role, 'intproxy');
      assert.equal(pair.intproxy.version, PROTOCOL_VERSION);
      assert.equal(pair.agent.version, PROTOCOL_VERSION);
      const message = once(pair.agent, 'message');
      pair.intproxy.send({ type: 'ping', id: 7 });
      assert.deepEqual(await message, [{ type: 'ping', id: 7 }]);
    } finally {
      pair.dispose();
    }
  });

  it('names both versions when the peer is too new', async () => {
    const peer = await rawPeer();
    try {
      const handshake = peer.link.handshake(2000);
      peer.raw.write(encodeMessage({ ...intproxyHello, version: 9, minVersion: 5 }));
      await assert.rejects(handshake, (error: unknown) => {
        assert.ok(error instanceof ProtocolError);
        assert.match(
          error.message,
          /this agent speaks version 1 \(down to 1\), the peer \(intproxy\) speaks version 9 \(down to 5\)/,
        );
        return true;
      });
      assert.equal(peer.link.closed, true);
      // Our hello went out first, so the peer can tell its user the same.
      const hello = await peer.received.next('message');
      assert.equal(hello.kind === 'message' && hello.message.type, 'hello');
    } finally {
      peer.dispose();
    }
  });

  it('names both versions when the peer is too old', async () => {
    const peer = await rawPeer();
    try {
      const handshake = peer.link.handshake(2000);
      peer.raw.write(encodeMessage({ ...intproxyHello, version: 0, minVersion: 0 }));
      await assert.rejects(handshake, /speaks version 1 \(down to 1\), the peer \(intproxy\) speaks version 0 \(down to 0\)/);
    } finally {
      peer.dispose();
    }
  });

  it('agrees on the lower version when the ranges overlap', async () => {
    const peer = await rawPeer();
    try {
      const handshake = peer.link.handshake(2000);
      peer.raw.write(encodeMessage({ ...intproxyHello, version: 4, minVersion: 1 }));
      assert.equal((await handshake).version, 4);
      assert.equal(peer.link.version, 1);
    } finally {
      peer.dispose();
    }
  });

  it('fails when the first frame is not a hello', async () => {
    const firstFrames: Array<[Buffer, RegExp]> = [
      [encodeMessage({ type: 'ping', id: 1 }), /expected a hello as the first frame, got a 'ping' message/],
      [Buffer.concat([encodeDataHeader(1, 3), Buffer.from('abc')]), /expected a hello as the first frame, got a DATA frame/],
      [encodeCredit(1, 10), /got a CREDIT frame/],
      [encodeMessage({ type: 'hello', protocol: 'other', version: 1, minVersion: 1 } as { type: string }), /protocol "other"/],
    ];
    for (const [frame, expected] of firstFrames) {
      const peer = await rawPeer();
      try {
        const handshake = peer.link.handshake(2000);
        peer.raw.write(frame);
        await assert.rejects(handshake, (error: unknown) => error instanceof ProtocolError && expected.test(error.message));
      } finally {
        peer.dispose();
      }
    }
  });

  it('times out when the peer says nothing', async () => {
    const peer = await rawPeer();
    try {
      const started = Date.now();
      await assert.rejects(peer.link.handshake(100), (error: unknown) => {
        assert.ok(error instanceof ProtocolError);
        assert.match(error.message, /the peer sent no hello within 100 ms/);
        return true;
      });
      assert.ok(Date.now() - started >= 90);
      assert.equal(peer.link.closed, true);
      assert.ok((await peer.closed)[0] instanceof ProtocolError);
    } finally {
      peer.dispose();
    }
  });

  it('refuses to send before its hello', async () => {
    const peer = await rawPeer();
    try {
      assert.throws(() => peer.link.send({ type: 'pong', id: 1 }), /before handshake/);
      assert.throws(() => peer.link.openStream(), /before handshake/);
    } finally {
      peer.dispose();
    }
  });
});

describe('link with a malformed peer', () => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ['an over-size header', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x01]), /frame of 4294967295 bytes exceeds the 1048576-byte limit/],
    ['an unknown kind', Buffer.from([0, 0, 0, 1, 0x42]), /unknown frame kind 0x42/],
    ['bad JSON', Buffer.concat([Buffer.from([0, 0, 0, 4, 0x01]), Buffer.from('{"t')]), /not valid JSON/],
    ['a message without a type', encodeMessage({ nope: 1 } as unknown as { type: string }), /without a string "type"/],
  ];
  for (const [name, bytes, expected] of cases) {
    it(`closes the link with a ProtocolError on ${name}`, async () => {
      const peer = await handshaken();
      try {
        peer.raw.write(bytes);
        assert.match((await closeError(peer.closed)).message, expected);
        // The link tore its transport down; the process goes on.
        await once(peer.raw, 'close');
      } finally {
        peer.dispose();
      }
    });
  }

  it('closes the link with a ProtocolError when the input ends inside a frame', async () => {
    const peer = await handshaken();
    try {
      peer.raw.end(encodeMessage({ type: 'ping', id: 1 }).subarray(0, 8));
      assert.match((await closeError(peer.closed)).message, /input ended inside a frame: 8 of 27 bytes/);
    } finally {
      peer.dispose();
    }
  });

  it('closes cleanly when the peer ends on a frame boundary', async () => {
    const peer = await handshaken();
    try {
      peer.raw.end();
      assert.deepEqual(await peer.closed, [undefined]);
    } finally {
      peer.dispose();
    }
  });

  it('answers DATA for an unknown stream with RESET, ignores END and RESET, and stays up', async () => {
    const peer = await handshaken();
    try {
      peer.raw.write(Buffer.concat([encodeDataHeader(99, 3), Buffer.from('abc'), encodeEnd(97), encodeReset(95, 'x')]));
      const reset = await peer.received.next('reset');
      assert.deepEqual(reset, { kind: 'reset', streamId: 99, reason: 'UNKNOWN_STREAM' });
      const message = once(peer.link, 'message');
      peer.raw.write(encodeMessage({ type: 'ping', id: 3 }));
      assert.deepEqual(await message, [{ type: 'ping', id: 3 }]);
      assert.equal(peer.link.closed, false);
    } finally {
      peer.dispose();
    }
  });

  it('closes the link when the peer sends beyond its credit', async () => {
    const peer = await handshaken({ initialWindow: 1024 });
    try {
      // The peer opens stream 1 as an opener does: grant first, then name it (here, by fiat).
      peer.raw.write(encodeCredit(1, 5000));
      await delay(20);
      const stream = peer.link.acceptStream(1);
      stream.on('error', () => {});
      assert.deepEqual(await peer.received.next('credit'), { kind: 'credit', streamId: 1, bytes: 1024 });
      // The early credit counts: 3000 bytes may go out at once.
      stream.write(Buffer.alloc(3000, 7));
      const data = await peer.received.next('data');
      assert.equal(data.kind === 'data' && data.data.length, 3000);
      peer.raw.write(Buffer.concat([encodeDataHeader(1, 1025), Buffer.alloc(1025)]));
      assert.match((await closeError(peer.closed)).message, /the peer sent 1 bytes beyond its credit on stream 1/);
    } finally {
      peer.dispose();
    }
  });

  it('returns credit in batches, not per frame', async () => {
    const peer = await handshaken({ initialWindow: 64 * 1024 });
    try {
      peer.raw.write(encodeCredit(1, 64 * 1024));
      await delay(20);
      const stream = peer.link.acceptStream(1);
      stream.on('error', () => {});
      let received = 0;
      stream.on('data', (chunk: Buffer) => (received += chunk.length));
      const frames = [];
      for (let i = 0; i < 64; i++) frames.push(encodeDataHeader(1, 1024), Buffer.alloc(1024, i));
      peer.raw.write(Buffer.concat(frames));
      while (received < 64 * 1024) await delay(5);
      await delay(20);
      const grants = peer.received.frames.filter((frame) => frame.kind === 'credit');
      // The first grant opens the stream; then one per quarter window consumed.
      assert.equal(grants.length, 1 + 4);
      assert.ok(grants.slice(1).every((frame) => frame.kind === 'credit' && frame.bytes >= 16 * 1024));
    } finally {
      peer.dispose();
    }
  });

  it('rejects accepting a stream id of its own parity', async () => {
    const peer = await handshaken();
    try {
      assert.throws(() => peer.link.acceptStream(2), /not one the peer could have opened/);
    } finally {
      peer.dispose();
    }
  });
});
