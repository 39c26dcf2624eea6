import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { ProtocolError, TimeoutError } from '../../src/core/errors.js';
import type { AgentRequest, AgentResults, Result } from '../../src/protocol/messages.js';
import { RpcClient, serveRequests, type RequestHandlers } from '../../src/protocol/rpc.js';
import { fileHandlers } from '../../src/agent/files/handlers.js';
import { linkPair } from './helpers.js';

const unused = async (): Promise<Result<never>> => ({ ok: false, error: { code: 'ENOTSUP', message: 'not in this test' } });

function handlers(overrides: Partial<RequestHandlers<AgentRequest, AgentResults>>): RequestHandlers<AgentRequest, AgentResults> {
  return {
    'tcp.connect': unused,
    'dns.getaddrinfo': unused,
    'dns.query': unused,
    'dns.reverse': unused,
    'env.get': unused,
    'incoming.subscribe': unused,
    'incoming.unsubscribe': unused,
    'session.close': unused,
    'udp.open': unused,
    'udp.close': unused,
    ...fileHandlers(null),
    ...overrides,
  };
}

describe('rpc', () => {
  it('matches concurrent answers to their requests by id, whatever their order', async () => {
    const pair = await linkPair();
    try {
      serveRequests<AgentRequest, AgentResults>(
        pair.agent,
        handlers({
          'dns.reverse': async (request) => {
            const n = Number(request.address.split('.').at(-1));
            // Later requests answer first.
            await delay(60 - n);
            return { ok: true, value: { hostnames: [`host-${n}.example`] } };
          },
        }),
      );
      const client = new RpcClient<AgentRequest, AgentResults>(pair.intproxy);
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, n) => client.request({ op: 'dns.reverse', address: `10.0.0.${n}` })),
      );
      answers.forEach((answer, n) => assert.deepEqual(answer, { ok: true, value: { hostnames: [`host-${n}.example`] } }));
      assert.equal(client.inFlight, 0);
    } finally {
      pair.dispose();
    }
  });

  it('passes remote failures through as values', async () => {
    const pair = await linkPair();
    try {
      serveRequests<AgentRequest, AgentResults>(
        pair.agent,
        handlers({
          'dns.getaddrinfo': async (request) => ({
            ok: false,
            error: { code: 'ENOTFOUND', message: `getaddrinfo ENOTFOUND ${request.host}`, syscall: 'getaddrinfo' },
          }),
        }),
      );
      const client = new RpcClient<AgentRequest, AgentResults>(pair.intproxy);
      const answer = await client.request({ op: 'dns.getaddrinfo', host: 'nowhere.invalid', family: 0 });
      assert.deepEqual(answer, {
        ok: false,
        error: { code: 'ENOTFOUND', message: 'getaddrinfo ENOTFOUND nowhere.invalid', syscall: 'getaddrinfo' },
      });
    } finally {
      pair.dispose();
    }
  });

  it('turns a handler that throws into a REMOCAL_INTERNAL failure and reports it', async () => {
    const pair = await linkPair();
    try {
      const reported: unknown[] = [];
      serveRequests<AgentRequest, AgentResults>(
        pair.agent,
        handlers({
          'env.get': async () => {
            throw new Error('environ unreadable');
          },
        }),
        (error, request) => reported.push([String(error), request.op]),
      );
      const client = new RpcClient<AgentRequest, AgentResults>(pair.intproxy);
      const answer = await client.request({ op: 'env.get' });
      assert.deepEqual(answer, { ok: false, error: { code: 'REMOCAL_INTERNAL', message: 'environ unreadable' } });
      assert.deepEqual(reported, [['Error: environ unreadable', 'env.get']]);
    } finally {
      pair.dispose();
    }
  });

  it('answers REMOCAL_INTERNAL when the answer is too big for a frame', async () => {
    const pair = await linkPair();
    try {
      serveRequests<AgentRequest, AgentResults>(
        pair.agent,
        handlers({ 'env.get': async () => ({ ok: true, value: { env: { HUGE: 'x'.repeat(2 * 1024 * 1024) } } }) }),
      );
      const client = new RpcClient<AgentRequest, AgentResults>(pair.intproxy);
      const answer = await client.request({ op: 'env.get' });
      assert.equal(!answer.ok && answer.error.code, 'REMOCAL_INTERNAL');
      assert.match(!answer.ok ? answer.error.message : '', /could not be sent: .*exceeds the 1048576-byte frame limit/);
    } finally {
      pair.dispose();
    }
  });

  it('answers an op it has no handler for with REMOCAL_FEATURE_UNAVAILABLE', async () => {
    const pair = await linkPair();
    try {
      serveRequests<AgentRequest, AgentResults>(pair.agent, {} as RequestHandlers<AgentRequest, AgentResults>);
      const client = new RpcClient<AgentRequest, AgentResults>(pair.intproxy);
      const answer = await client.request({ op: 'env.get' });
      assert.equal(!answer.ok && answer.error.code, 'REMOCAL_FEATURE_UNAVAILABLE');
    } finally {
      pair.dispose();
    }
  });

  it('times out with a TimeoutError that names the op, and drops the late answer', async () => {
    const pair = await linkPair();
    try {
      serveRequests<AgentRequest, AgentResults>(
        pair.agent,
        handlers({
          'dns.query': async () => {
            await delay(150);
            return { ok: true, value: { records: [] } };
          },
        }),
      );
      const client = new RpcClient<AgentRequest, AgentResults>(pair.intproxy);
      await assert.rejects(client.request({ op: 'dns.query', name: 'slow.example', rrtype: 'A' }, 50), (error: unknown) => {
        assert.ok(error instanceof TimeoutError);
        assert.match(error.message, /no answer to 'dns.query' within 50 ms/);
        return true;
      });
      await delay(150);
      assert.equal(client.inFlight, 0);
      assert.equal(pair.intproxy.closed, false);
    } finally {
      pair.dispose();
    }
  });

  it('rejects every pending request with the close error when the link closes', async () => {
    const pair = await linkPair();
    try {
      serveRequests<AgentRequest, AgentResults>(pair.agent, handlers({ 'env.get': () => new Promise(() => {}) }));
      const client = new RpcClient<AgentRequest, AgentResults>(pair.intproxy);
      const pending = [client.request({ op: 'env.get' }), client.request({ op: 'env.get' })];
      await delay(20);
      const reason = new ProtocolError('the agent went away');
      pair.intproxy.close(reason);
      for (const request of pending) await assert.rejects(request, (error) => error === reason);
      await assert.rejects(client.request({ op: 'env.get' }), (error) => error === reason);
    } finally {
      pair.dispose();
    }
  });

  it('rejects pending requests when the peer closes the link', async () => {
    const pair = await linkPair();
    try {
      serveRequests<AgentRequest, AgentResults>(pair.agent, handlers({ 'env.get': () => new Promise(() => {}) }));
      const client = new RpcClient<AgentRequest, AgentResults>(pair.intproxy);
      const pending = client.request({ op: 'env.get' });
      await delay(20);
      pair.agent.close();
      await assert.rejects(pending, /the link closed before the answer to 'env.get'/);
    } finally {
      pair.dispose();
    }
  });

  it('answers pings', async () => {
    const pair = await linkPair();
    try {
      serveRequests<AgentRequest, AgentResults>(pair.agent, handlers({}));
      const client = new RpcClient<AgentRequest, AgentResults>(pair.intproxy);
      const roundTrip = await client.ping(1000);
      assert.ok(roundTrip >= 0 && roundTrip < 1000);
    } finally {
      pair.dispose();
    }
  });
});
