// Conflicts between sessions on one port, at the incoming service: the real service (redirector, iptables, HTTP
// router) in a fixture pod, driven for named sessions by service-agent.ts, with requests sent from the host to
// the pod's IP to see who answers. Also the pure parts: which filters are the same, and the decision matrix.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decideSteal, type Holding } from '../../../src/agent/incoming/conflicts.js';
import { filterIdentity } from '../../../src/agent/incoming/http-filter.js';
import type { Pod } from '../../../src/fixture/pod.js';
import type { HttpFilterSpec, OnConcurrentSteal, Result, SubscribeResult } from '../../../src/protocol/messages.js';
import type { SubscriptionStats } from '../../../src/protocol/shared-agent.js';
import { answeredFrom, httpRequest } from '../../helpers/net.js';
import { createTestPod, podIptablesRules } from '../../helpers/pod.js';
import { waitFor } from '../../helpers/processes.js';
import { AgentProcess } from './agent-process.js';

const serviceAgent = new URL('./service-agent.ts', import.meta.url).pathname;

describe('filterIdentity', () => {
  test('key order, the order of all_of / any_of parts, method case and ports do not count', () => {
    assert.equal(
      filterIdentity({ header_filter: '^x-dev: alice$', ports: [8080, 9090] }),
      filterIdentity({ ports: [9090, 8080], header_filter: '^x-dev: alice$' }),
    );
    assert.equal(filterIdentity({ header_filter: 'a', ports: [8080] }), filterIdentity({ header_filter: 'a' }), 'both apply to the port compared on');
    assert.equal(
      filterIdentity({ all_of: [{ header: 'a' }, { method: 'get' }], ports: [1] }),
      filterIdentity({ ports: [1], all_of: [{ method: 'GET' }, { header: 'a' }] }),
    );
    assert.equal(filterIdentity({ method_filter: 'post' }), filterIdentity({ method_filter: 'POST' }));
  });

  test('different filters differ', () => {
    const identities = [
      { header_filter: 'a' },
      { header_filter: 'b' },
      { path_filter: 'a' },
      { all_of: [{ header: 'a' }, { path: 'b' }] },
      { any_of: [{ header: 'a' }, { path: 'b' }] },
      { all_of: [{ header: 'a' }] },
    ].map((spec: HttpFilterSpec) => filterIdentity(spec));
    assert.equal(new Set(identities).size, identities.length);
  });
});

describe('decideSteal', () => {
  const holder = (id: string, identity: string | null): Holding => ({ session: { id, owner: `owner-${id}` }, since: 0, identity });
  const ask = (identity: string | null, onConcurrentSteal: OnConcurrentSteal, mode: 'steal' | 'mirror' = 'steal') => ({ port: 80, mode, identity, onConcurrentSteal });
  const lock = { whole: holder('a', null), filtered: [] };
  const shared = { whole: undefined, filtered: [holder('b', 'x'), holder('c', 'y')] };

  test('a locked port: another whole steal is refused unless it overrides; a filtered one is refused whatever it asks', () => {
    for (const mode of ['abort', 'continue'] as const) assert.equal(decideSteal(lock, ask(null, mode)).kind, 'refuse');
    assert.deepEqual(decideSteal(lock, ask(null, 'override')), { kind: 'displace', holders: [lock.whole] });
    for (const mode of ['abort', 'continue', 'override'] as const) {
      const decision = decideSteal(lock, ask('z', mode));
      assert.equal(decision.kind, 'refuse');
      assert.match(decision.kind === 'refuse' ? decision.error.message : '', /locked: stolen whole by session a \(owner-a\), since 1970-01-01T00:00:00.000Z; a filtered steal cannot share a locked port/);
    }
    assert.equal(decideSteal(lock, ask(null, 'abort', 'mirror')).kind, 'share');
  });

  test('a port shared by filters: a whole steal is refused unless it overrides them all; only the same filter conflicts', () => {
    assert.equal(decideSteal(shared, ask(null, 'abort')).kind, 'refuse');
    assert.deepEqual(decideSteal(shared, ask(null, 'override')), { kind: 'displace', holders: shared.filtered });
    assert.equal(decideSteal(shared, ask('z', 'abort')).kind, 'share');
    const same = decideSteal(shared, ask('y', 'override'));
    assert.equal(same.kind === 'refuse' && same.error.code, 'REMOCAL_FILTER_CONFLICT');
  });
});

describe('conflicts at the incoming service, with real traffic', () => {
  let pod: Pod;
  let agent: AgentProcess;
  const subscribe = async (session: string, options: { filter?: HttpFilterSpec; onConcurrentSteal?: OnConcurrentSteal; overrideRefusal?: object; mode?: 'steal' | 'mirror' } = {}) => {
    const { filter = null, mode = 'steal', ...rest } = options;
    const reply = await agent.send({ op: 'subscribe', session, port: pod.ports.target, mode, filter, ...rest });
    return reply.result as Result<SubscribeResult>;
  };
  const stats = async (session: string) => (await agent.send({ op: 'stats', session })).subscriptions as SubscriptionStats[];
  const who = async (path: string, headers: Record<string, string> = {}) => answeredFrom((await httpRequest({ host: pod.ip, port: pod.ports.target, path, headers })).body);
  const noticesOf = (session: string) => agent.notices.filter((notice) => notice.session === session);
  const failure = (result: Result<SubscribeResult>) => (result.ok ? assert.fail(`subscribed: ${JSON.stringify(result)}`) : result.error);

  before(async () => {
    pod = await createTestPod();
    agent = new AgentProcess(pod, serviceAgent);
    await agent.ready();
  });

  after(async () => {
    await agent?.send({ op: 'close' }).catch(() => undefined);
    await agent?.stop();
    await pod?.destroy();
  });

  test('a lock: abort and continue are refused naming the holder; a policy refuses the override; override takes the port and the holder is told', async () => {
    const alice = await subscribe('alice');
    assert.ok(alice.ok);
    for (const onConcurrentSteal of [undefined, 'abort', 'continue'] as const) {
      const refused = failure(await subscribe('bob', onConcurrentSteal === undefined ? {} : { onConcurrentSteal }));
      assert.equal(refused.code, 'REMOCAL_PORT_HELD');
      assert.match(refused.message, new RegExp(`port ${pod.ports.target} of the target is locked: stolen whole by session alice \\(owner-of-alice\\), since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z`));
      assert.match(refused.hint ?? '', /remocal session list/);
    }
    const policy = { code: 'REMOCAL_POLICY_BLOCKED', message: 'policy team/no-override forbids taking ports over' };
    assert.deepEqual(failure(await subscribe('bob', { onConcurrentSteal: 'override', overrideRefusal: policy })), policy);
    assert.equal(await who('/still-alice'), 'alice');
    assert.deepEqual(noticesOf('alice'), [], 'nobody was displaced');

    const bob = await subscribe('bob', { onConcurrentSteal: 'override' });
    assert.ok(bob.ok);
    assert.deepEqual(bob.value.displaced, [{ session: 'alice', owner: 'owner-of-alice' }]);
    assert.equal(await who('/now-bob'), 'bob');
    const [taken, ...more] = await waitFor(() => noticesOf('alice').length > 0 && noticesOf('alice'), 'alice to be told');
    assert.equal(more.length, 0);
    assert.equal(taken!.code, 'REMOCAL_PORT_TAKEN');
    assert.match(String(taken!.message), new RegExp(`port ${pod.ports.target} of the target was taken over by session bob \\(owner-of-bob\\)`));
    assert.deepEqual(await stats('alice'), [], 'alice holds nothing now');
    // Her old subscription id is not hers to end any more, and ending it changes nothing.
    assert.ok(((await agent.send({ op: 'unsubscribe', session: 'alice', subscription: alice.value.subscription })).result as Result<unknown>).ok);
    assert.equal(await who('/still-bob'), 'bob');

    // A filtered steal cannot share a locked port, even asking to override.
    const carol = failure(await subscribe('carol', { filter: { header_filter: '^x-dev: carol$' }, onConcurrentSteal: 'override' }));
    assert.equal(carol.code, 'REMOCAL_PORT_HELD');
    assert.match(carol.message, /stolen whole by session bob \(owner-of-bob\).*; a filtered steal cannot share a locked port/);
    assert.equal(await who('/carol', { 'x-dev': 'carol' }), 'bob');

    assert.ok(((await agent.send({ op: 'unsubscribe', session: 'bob', subscription: bob.value.subscription })).result as Result<unknown>).ok);
    assert.equal(await who('/free'), 'target');
  });

  test('filters: the same filter is refused naming its holder; an overlap is told once per pair, shown in the stats; admits narrows; override displaces every filter', async () => {
    const dana = await subscribe('dana', { filter: { header_filter: '^x-dev: dana$', ports: [pod.ports.target] } });
    assert.ok(dana.ok);
    const same = failure(await subscribe('ed', { filter: { ports: [1, pod.ports.target], header_filter: '^x-dev: dana$' }, onConcurrentSteal: 'override' }));
    assert.equal(same.code, 'REMOCAL_FILTER_CONFLICT');
    assert.match(same.message, /already stolen with the same HTTP filter by session dana \(owner-of-dana\), since /);
    const ed = await subscribe('ed', { filter: { header_filter: '^x-team: a$' } });
    assert.ok(ed.ok);

    assert.equal(await who('/d', { 'x-dev': 'dana' }), 'dana');
    assert.equal(await who('/e', { 'x-team': 'a' }), 'ed');
    assert.deepEqual([...noticesOf('dana'), ...noticesOf('ed')], [], 'no overlap yet');
    // Both match: the first subscribed gets it, and both are told, once.
    assert.equal(await who('/orders/7', { 'x-dev': 'dana', 'x-team': 'a' }), 'dana');
    assert.equal(await who('/orders/8', { 'x-dev': 'dana', 'x-team': 'a' }), 'dana');
    await waitFor(() => noticesOf('dana').length > 0 && noticesOf('ed').length > 0, 'both to be told of the overlap');
    for (const [told, other, went] of [['dana', 'ed', 'this session'], ['ed', 'dana', 'session dana \\(owner-of-dana\\)']] as const) {
      const notices = noticesOf(told);
      assert.equal(notices.length, 1, `${told} is told once: ${JSON.stringify(notices)}`);
      assert.equal(notices[0]!.code, 'REMOCAL_FILTER_OVERLAP');
      assert.match(String(notices[0]!.message), new RegExp(`the request GET /orders/7 on port ${pod.ports.target} matched the HTTP filter of this session and that of session ${other} \\(owner-of-${other}\\).*it went to ${went}`));
      assert.deepEqual((await stats(told))[0]!.overlaps, [{ session: other, owner: `owner-of-${other}`, request: 'GET /orders/7' }]);
    }

    // A session that does not admit a request does not match it, whatever its filter says.
    await agent.send({ op: 'refuse-path', session: 'dana', path: '/private' });
    assert.equal(await who('/private/1', { 'x-dev': 'dana' }), 'target');
    assert.equal(await who('/private/2', { 'x-dev': 'dana', 'x-team': 'a' }), 'ed');
    assert.equal(await who('/public', { 'x-dev': 'dana' }), 'dana');

    // A whole steal that overrides takes the port from every filtered holder, each told who took it.
    const fay = await subscribe('fay', { onConcurrentSteal: 'override' });
    assert.ok(fay.ok);
    assert.deepEqual(fay.value.displaced?.map((other) => other.session), ['dana', 'ed']);
    assert.equal(await who('/anything', { 'x-dev': 'dana' }), 'fay');
    for (const told of ['dana', 'ed']) {
      await waitFor(() => noticesOf(told).some((notice) => notice.code === 'REMOCAL_PORT_TAKEN'), `${told} to be told`);
      assert.match(String(noticesOf(told).at(-1)!.message), /taken over by session fay \(owner-of-fay\)/);
      assert.deepEqual(await stats(told), []);
    }
    await agent.send({ op: 'close' });
    assert.doesNotMatch(await podIptablesRules(pod), /REMOCAL-/, 'no rule left in the pod');
    assert.equal(await who('/closed'), 'target');
  });
});
