// TargetResolver against real DNS servers on loopback, with the target's files in a temporary root. What glibc
// itself does with the same files is checked in glibc-compliance.test.ts; here each behaviour gets its own
// readable test, and query()/reverse() are compared with Node's own Resolver asking the same server.

import dns from 'node:dns';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Answer } from 'dns-packet';
import { TargetResolver } from '../../../src/agent/dns/resolver.js';
import type { GetAddrInfoResult, Result } from '../../../src/protocol/messages.js';
import { TestDnsServer, UNUSED_LOOPBACK_ADDRESS, type Zone } from './dns-test-server.js';

const A = (data: string, ttl = 300): Answer => ({ type: 'A', name: '', ttl, data });
const AAAA = (data: string, ttl = 300): Answer => ({ type: 'AAAA', name: '', ttl, data });

const ZONE: Zone = {
  'svc.ns.svc.cluster.local': [A('10.0.0.1')],
  'svc.svc.cluster.local': [A('10.0.0.99')],
  'both.example': [A('10.0.0.2'), AAAA('fd00::2'), A('10.0.0.3')],
  'v6only.example': [AAAA('fd00::1')],
  'db.ns.svc.cluster.local': [A('10.0.0.50')],
  'fail.example': 'SERVFAIL',
  'records.example': [
    A('10.1.0.1', 60),
    AAAA('fd00::1:1', 120),
    { type: 'TXT', name: '', data: ['v=spf1 -all'] },
    { type: 'TXT', name: '', data: ['part one', 'part two'] },
    { type: 'MX', name: '', data: { preference: 10, exchange: 'mail.records.example' } },
    { type: 'CAA', name: '', data: { flags: 0, tag: 'issue', value: 'ca.example' } },
    { type: 'NS', name: '', data: 'ns1.records.example' },
    {
      type: 'SOA',
      name: '',
      data: { mname: 'ns1.records.example', rname: 'admin.records.example', serial: 7, refresh: 60, retry: 30, expire: 600, minimum: 5 },
    },
  ],
  '_http._tcp.records.example': [
    { type: 'SRV', name: '', data: { priority: 1, weight: 5, port: 8080, target: 'web.records.example' } },
    { type: 'SRV', name: '', data: { priority: 2, weight: 0, port: 8081, target: 'web2.records.example' } },
  ],
  'alias.records.example': [{ type: 'CNAME', name: '', data: 'records.example' }],
  'naptr.records.example': [
    { type: 'NAPTR', name: '', data: { order: 10, preference: 5, flags: 'u', services: 'E2U+sip', regexp: '!^.*$!sip:a@b!', replacement: '.' } },
  ],
  '2.0.0.10.in-addr.arpa': [
    { type: 'PTR', name: '', data: 'one.example' },
    { type: 'PTR', name: '', data: 'two.example' },
  ],
  '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa': [{ type: 'PTR', name: '', data: 'six.example' }],
};

const SEARCH = 'search ns.svc.cluster.local svc.cluster.local cluster.local';

/** A target root with etc/resolv.conf, etc/hosts and etc/host.conf. */
class TargetRoot {
  readonly root = mkdtempSync(join(tmpdir(), 'remocal-dns-'));
  constructor(files: { resolvConf: string; hosts?: string; hostConf?: string }) {
    mkdirSync(join(this.root, 'etc'));
    this.write('resolv.conf', files.resolvConf);
    this.write('hosts', files.hosts ?? '');
    this.write('host.conf', files.hostConf ?? 'multi on\n');
  }
  write(name: string, text: string): void {
    writeFileSync(join(this.root, 'etc', name), text);
  }
  /** Replaces a file the way kubelet does: a new file renamed over the old one. */
  replace(name: string, text: string): void {
    const temporary = join(this.root, 'etc', `.${name}.new`);
    writeFileSync(temporary, text);
    renameSync(temporary, join(this.root, 'etc', name));
  }
  resolver(): TargetResolver {
    return new TargetResolver(this.root);
  }
  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

function addressesOf(result: Result<GetAddrInfoResult>): string[] {
  assert.ok(result.ok, `expected addresses, got ${JSON.stringify(result)}`);
  return result.value.addresses.map((entry) => `${entry.address}/${entry.family}`);
}


const nativeFields = (error: NodeJS.ErrnoException) => {
  const fields: Record<string, unknown> = { code: error.code, message: error.message, syscall: error.syscall };
  if (typeof error.errno === 'number') fields.errno = error.errno;
  return fields;
};

describe('TargetResolver', () => {
  let server: TestDnsServer;
  const roots: TargetRoot[] = [];
  const target = (files: { resolvConf: string; hosts?: string; hostConf?: string }) => {
    const root = new TargetRoot(files);
    roots.push(root);
    return root;
  };
  before(async () => {
    server = await TestDnsServer.start(ZONE);
  });
  after(async () => {
    await server.close();
    for (const root of roots) root.remove();
  });

  describe('search list and ndots', () => {
    const askedFor = async (conf: string, host: string, family: 0 | 4 | 6 = 4) => {
      const resolver = target({ resolvConf: `nameserver ${server.address}\n${conf}\n` }).resolver();
      server.queries.length = 0;
      const result = await resolver.getaddrinfo(host, family);
      return { result, queries: [...server.queries] };
    };

    test('ndots:5: a short name tries every search domain, then itself', async () => {
      const { result, queries } = await askedFor(`${SEARCH}\noptions ndots:5`, 'api');
      assert.deepEqual(queries, ['A api.ns.svc.cluster.local', 'A api.svc.cluster.local', 'A api.cluster.local', 'A api']);
      assert.equal(result.ok, false);
    });

    test('ndots:5: a name with fewer than five dots is still searched first', async () => {
      const { queries } = await askedFor(`${SEARCH}\noptions ndots:5`, 'api.other.example');
      assert.deepEqual(queries, [
        'A api.other.example.ns.svc.cluster.local',
        'A api.other.example.svc.cluster.local',
        'A api.other.example.cluster.local',
        'A api.other.example',
      ]);
    });

    test('ndots:1: a name with a dot is tried as-is first, then with each search domain', async () => {
      const { queries } = await askedFor(SEARCH, 'api.example');
      assert.deepEqual(queries, [
        'A api.example',
        'A api.example.ns.svc.cluster.local',
        'A api.example.svc.cluster.local',
        'A api.example.cluster.local',
      ]);
    });

    test('ndots:1: a single label is searched first', async () => {
      const { queries } = await askedFor(SEARCH, 'api');
      assert.deepEqual(queries, ['A api.ns.svc.cluster.local', 'A api.svc.cluster.local', 'A api.cluster.local', 'A api']);
    });

    test('a trailing dot makes the name absolute: no search', async () => {
      const { queries } = await askedFor(`${SEARCH}\noptions ndots:5`, 'api.example.');
      assert.deepEqual(queries, ['A api.example']);
    });

    test('the first candidate with an address wins; family 0 asks A and AAAA for each', async () => {
      const { result, queries } = await askedFor(`${SEARCH}\noptions ndots:5`, 'svc', 0);
      assert.deepEqual(addressesOf(result), ['10.0.0.1/4']);
      assert.deepEqual([...queries].sort(), ['A svc.ns.svc.cluster.local', 'AAAA svc.ns.svc.cluster.local']);
    });

    test('no-tld-query: a single label is never asked as-is', async () => {
      const { queries } = await askedFor(`${SEARCH}\noptions no-tld-query`, 'api');
      assert.deepEqual(queries, ['A api.ns.svc.cluster.local', 'A api.svc.cluster.local', 'A api.cluster.local']);
    });
  });

  describe('hosts file', () => {
    const hosts = `127.0.0.1 localhost\nfd00::5 db\n10.0.0.5 db db-alias.ns DB-Upper\n10.0.0.6 db\n`;
    test('answers before DNS, every line of the name, IPv4 first', async () => {
      const resolver = target({ resolvConf: `nameserver ${server.address}\n${SEARCH}\n`, hosts }).resolver();
      server.queries.length = 0;
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('db', 0)), ['10.0.0.5/4', '10.0.0.6/4', 'fd00::5/6']);
      assert.deepEqual(server.queries, []);
    });

    test('aliases match, case-insensitively', async () => {
      const resolver = target({ resolvConf: `nameserver ${server.address}\n`, hosts }).resolver();
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('DB-ALIAS.NS', 4)), ['10.0.0.5/4']);
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('db-upper', 4)), ['10.0.0.5/4']);
    });

    test('family filter; a name without an entry of that family goes to DNS', async () => {
      const resolver = target({ resolvConf: `nameserver ${server.address}\n${SEARCH}\n`, hosts: 'fd00::5 db\n' }).resolver();
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('db', 6)), ['fd00::5/6']);
      server.queries.length = 0;
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('db', 4)), ['10.0.0.50/4']);
      assert.deepEqual(server.queries, ['A db.ns.svc.cluster.local']);
    });

    test('with multi off (no host.conf), only the first line', async () => {
      const root = target({ resolvConf: `nameserver ${server.address}\n`, hosts, hostConf: '' });
      assert.deepEqual(addressesOf(await root.resolver().getaddrinfo('db', 0)), ['fd00::5/6']);
      assert.deepEqual(addressesOf(await root.resolver().getaddrinfo('db', 4)), ['10.0.0.5/4']);
    });

    test('localhost stays on the loopback even when the hosts file lacks it', async () => {
      const resolver = target({ resolvConf: `nameserver ${server.address}\n${SEARCH}\n`, hosts: '' }).resolver();
      server.queries.length = 0;
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('localhost', 0)), ['127.0.0.1/4', '::1/6']);
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('LOCALHOST', 6)), ['::1/6']);
      assert.deepEqual(server.queries, []);
    });

    test('a changed hosts file is read again', async () => {
      const root = target({ resolvConf: `nameserver ${server.address}\n`, hosts: '10.0.0.7 cache\n' });
      const resolver = root.resolver();
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('cache', 4)), ['10.0.0.7/4']);
      root.replace('hosts', '10.0.0.8 cache\n');
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('cache', 4)), ['10.0.0.8/4']);
    });
  });

  describe('families and order', () => {
    test('IPv4 before IPv6, each in the order of the answer; the family filters', async () => {
      const resolver = target({ resolvConf: `nameserver ${server.address}\n` }).resolver();
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('both.example', 0)), ['10.0.0.2/4', '10.0.0.3/4', 'fd00::2/6']);
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('both.example', 4)), ['10.0.0.2/4', '10.0.0.3/4']);
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('both.example', 6)), ['fd00::2/6']);
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('v6only.example', 0)), ['fd00::1/6']);
    });

    test('numeric hosts answer without a lookup, in getaddrinfo forms', async () => {
      const resolver = target({ resolvConf: `nameserver ${server.address}\n` }).resolver();
      server.queries.length = 0;
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('10.0.0.1', 0)), ['10.0.0.1/4']);
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('127.1', 4)), ['127.0.0.1/4']);
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('FD00:0::1', 0)), ['fd00::1/6']);
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('::ffff:10.1.1.1', 4)), ['10.1.1.1/4']);
      assert.deepEqual(await resolver.getaddrinfo('10.0.0.1', 6), {
        ok: false,
        error: { code: 'EAI_ADDRFAMILY', errno: -3000, syscall: 'getaddrinfo', message: 'getaddrinfo EAI_ADDRFAMILY 10.0.0.1' },
      });
      assert.deepEqual(server.queries, []);
    });
  });

  describe('failures', () => {
    test("an unknown name fails with the fields of Node's own lookup error", async () => {
      // glibc refuses this name before sending anything, so the native lookup stays on this machine.
      const invalid = '-remocal.invalid';
      const native = await new Promise<NodeJS.ErrnoException>((resolve) => dns.lookup(invalid, (error) => resolve(error!)));
      const resolver = target({ resolvConf: `nameserver ${server.address}\n` }).resolver();
      const ours = await resolver.getaddrinfo(invalid, 0);
      assert.deepEqual(ours, { ok: false, error: nativeFields(native) });

      assert.deepEqual(await resolver.getaddrinfo('nothere.example', 0), {
        ok: false,
        error: { code: 'ENOTFOUND', errno: -3008, syscall: 'getaddrinfo', message: 'getaddrinfo ENOTFOUND nothere.example' },
      });
    });

    test('a name that exists without an address of the family: ENOTFOUND with EAI_NODATA errno', async () => {
      const resolver = target({ resolvConf: `nameserver ${server.address}\n` }).resolver();
      assert.deepEqual(await resolver.getaddrinfo('v6only.example', 4), {
        ok: false,
        error: { code: 'ENOTFOUND', errno: -3007, syscall: 'getaddrinfo', message: 'getaddrinfo ENOTFOUND v6only.example' },
      });
    });

    test('SERVFAIL for every candidate: EAI_AGAIN, once each was tried (twice: attempts:2 by default)', async () => {
      const failing = await TestDnsServer.start(() => 'SERVFAIL');
      try {
        const resolver = target({ resolvConf: `nameserver ${failing.address}\nsearch ns.svc.cluster.local\n` }).resolver();
        for (const family of [4, 0, 6] as const) {
          assert.deepEqual(await resolver.getaddrinfo('fail.example', family), {
            ok: false,
            error: { code: 'EAI_AGAIN', errno: -3001, syscall: 'getaddrinfo', message: 'getaddrinfo EAI_AGAIN fail.example' },
          });
        }
        assert.deepEqual(failing.queries.slice(0, 4), [
          'A fail.example',
          'A fail.example',
          'A fail.example.ns.svc.cluster.local',
          'A fail.example.ns.svc.cluster.local',
        ]);
      } finally {
        await failing.close();
      }
    });

    test('SERVFAIL, then NXDOMAIN for a later candidate: EAI_AGAIN, except for family 4 (as glibc)', async () => {
      const resolver = target({ resolvConf: `nameserver ${server.address}\nsearch ns.svc.cluster.local\n` }).resolver();
      server.queries.length = 0;
      const again = { code: 'EAI_AGAIN', errno: -3001, syscall: 'getaddrinfo', message: 'getaddrinfo EAI_AGAIN fail.example' };
      const notFound = { code: 'ENOTFOUND', errno: -3008, syscall: 'getaddrinfo', message: 'getaddrinfo ENOTFOUND fail.example' };
      assert.deepEqual(await resolver.getaddrinfo('fail.example', 0), { ok: false, error: again });
      assert.deepEqual(await resolver.getaddrinfo('fail.example', 6), { ok: false, error: again });
      // AF_INET goes through gethostbyname2_r: a search that ended on an answer reads "not found".
      assert.deepEqual(await resolver.getaddrinfo('fail.example', 4), { ok: false, error: notFound });
    });

    test('a silent server: EAI_AGAIN after the configured timeout', { timeout: 15_000 }, async () => {
      const silent = await TestDnsServer.start(() => 'DROP');
      try {
        const resolver = target({ resolvConf: `nameserver ${silent.address}\noptions timeout:1 attempts:1\n` }).resolver();
        const started = Date.now();
        const result = await resolver.getaddrinfo('slow.example', 0);
        assert.deepEqual(result, {
          ok: false,
          error: { code: 'EAI_AGAIN', errno: -3001, syscall: 'getaddrinfo', message: 'getaddrinfo EAI_AGAIN slow.example' },
        });
        assert.ok(Date.now() - started < 5_000, 'bounded by the timeout');
        assert.deepEqual([...silent.queries].sort(), ['A slow.example', 'AAAA slow.example']);
      } finally {
        await silent.close();
      }
    });

    test('no nameserver answers at all: EAI_AGAIN at once', async () => {
      const resolver = target({ resolvConf: `nameserver ${UNUSED_LOOPBACK_ADDRESS}\n${SEARCH}\n` }).resolver();
      const started = Date.now();
      const result = await resolver.getaddrinfo('svc', 0);
      assert.equal(result.ok ? 'ok' : result.error.code, 'EAI_AGAIN');
      assert.ok(Date.now() - started < 1_000);
    });
  });

  describe('nameservers', () => {
    test('the second nameserver answers when the first is down', async () => {
      const down = UNUSED_LOOPBACK_ADDRESS;
      const resolver = target({ resolvConf: `nameserver ${down}\nnameserver ${server.address}\n${SEARCH}\n` }).resolver();
      const started = Date.now();
      assert.deepEqual(addressesOf(await resolver.getaddrinfo('svc', 4)), ['10.0.0.1/4']);
      assert.ok(Date.now() - started < 1_000, 'a refused connection moves on at once');
    });

    test('the second nameserver answers when the first says SERVFAIL or stays silent', { timeout: 15_000 }, async () => {
      const failing = await TestDnsServer.start(() => 'SERVFAIL');
      const silent = await TestDnsServer.start(() => 'DROP');
      try {
        for (const first of [failing, silent]) {
          const conf = `nameserver ${first.address}\nnameserver ${server.address}\noptions timeout:1 attempts:1\n`;
          assert.deepEqual(addressesOf(await target({ resolvConf: conf }).resolver().getaddrinfo('both.example', 4)), [
            '10.0.0.2/4',
            '10.0.0.3/4',
          ]);
          assert.deepEqual(first.queries, ['A both.example']);
        }
      } finally {
        await failing.close();
        await silent.close();
      }
    });

    test('rotate spreads successive lookups over the nameservers', async () => {
      const other = await TestDnsServer.start(ZONE);
      try {
        const resolver = target({ resolvConf: `nameserver ${server.address}\nnameserver ${other.address}\noptions rotate\n` }).resolver();
        server.queries.length = 0;
        await resolver.getaddrinfo('both.example', 4);
        await resolver.getaddrinfo('both.example', 4);
        assert.deepEqual([server.queries.length, other.queries.length], [1, 1]);
      } finally {
        await other.close();
      }
    });

    test('a changed resolv.conf is read again', async () => {
      const other = await TestDnsServer.start({ 'svc.ns.svc.cluster.local': [A('10.0.0.111')] });
      try {
        const root = target({ resolvConf: `nameserver ${server.address}\n${SEARCH}\n` });
        const resolver = root.resolver();
        assert.deepEqual(addressesOf(await resolver.getaddrinfo('svc', 4)), ['10.0.0.1/4']);
        root.replace('resolv.conf', `nameserver ${other.address}\n${SEARCH}\n`);
        assert.deepEqual(addressesOf(await resolver.getaddrinfo('svc', 4)), ['10.0.0.111/4']);
        root.write('resolv.conf', `nameserver ${server.address}\nsearch svc.cluster.local\n`);
        assert.deepEqual(addressesOf(await resolver.getaddrinfo('svc', 4)), ['10.0.0.99/4']);
      } finally {
        await other.close();
      }
    });
  });

  describe('query', () => {
    let resolver: TargetResolver;
    let node: InstanceType<typeof dns.promises.Resolver>;
    before(() => {
      resolver = target({ resolvConf: `nameserver ${server.address}\n${SEARCH}\noptions ndots:5\n` }).resolver();
      node = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
      node.setServers([server.address]);
    });

    const cases: { rrtype: Parameters<TargetResolver['query']>[1]; name: string; ttl?: boolean; native: () => Promise<unknown> }[] = [
      { rrtype: 'A', name: 'records.example', native: () => node.resolve4('records.example') },
      { rrtype: 'A', name: 'records.example', ttl: true, native: () => node.resolve4('records.example', { ttl: true }) },
      { rrtype: 'AAAA', name: 'records.example', ttl: true, native: () => node.resolve6('records.example', { ttl: true }) },
      { rrtype: 'TXT', name: 'records.example', native: () => node.resolveTxt('records.example') },
      { rrtype: 'SRV', name: '_http._tcp.records.example', native: () => node.resolveSrv('_http._tcp.records.example') },
      { rrtype: 'MX', name: 'records.example', native: () => node.resolveMx('records.example') },
      { rrtype: 'CAA', name: 'records.example', native: () => node.resolveCaa('records.example') },
      { rrtype: 'NS', name: 'records.example', native: () => node.resolveNs('records.example') },
      { rrtype: 'SOA', name: 'records.example', native: () => node.resolveSoa('records.example') },
      { rrtype: 'CNAME', name: 'alias.records.example', native: () => node.resolveCname('alias.records.example') },
      { rrtype: 'NAPTR', name: 'naptr.records.example', native: () => node.resolveNaptr('naptr.records.example') },
      { rrtype: 'PTR', name: '2.0.0.10.in-addr.arpa', native: () => node.resolvePtr('2.0.0.10.in-addr.arpa') },
      { rrtype: 'ANY', name: 'records.example', native: () => node.resolveAny('records.example') },
    ];
    for (const { rrtype, name, ttl, native } of cases) {
      test(`${rrtype}${ttl ? ' with ttl' : ''}: the records Node gives`, async () => {
        const expected = await native();
        assert.deepEqual(await resolver.query(name, rrtype, ttl), { ok: true, value: { records: expected } });
      });
    }

    test("errors carry Node's code, syscall and message", async () => {
      const native = await node.resolve4('nothere.example').then(
        () => assert.fail('resolved'),
        (error: NodeJS.ErrnoException) => error,
      );
      assert.deepEqual(await resolver.query('nothere.example', 'A'), { ok: false, error: nativeFields(native) });
      assert.deepEqual(await resolver.query('nothere.example', 'A'), {
        ok: false,
        error: { code: 'ENOTFOUND', syscall: 'queryA', message: 'queryA ENOTFOUND nothere.example' },
      });
      const noData = await resolver.query('v6only.example', 'MX');
      assert.deepEqual(noData, { ok: false, error: { code: 'ENODATA', syscall: 'queryMx', message: 'queryMx ENODATA v6only.example' } });
    });

    test('no search list: the name is asked as given, even with ndots:5', async () => {
      server.queries.length = 0;
      const result = await resolver.query('svc', 'A');
      assert.equal(result.ok ? 'ok' : result.error.code, 'ENOTFOUND');
      assert.deepEqual(server.queries, ['A svc']);
    });
  });

  describe('reverse', () => {
    test('hosts file first, with the names Node gives (all but the first of the merged entry)', async () => {
      const resolver = target({
        resolvConf: `nameserver ${server.address}\n`,
        hosts: '10.0.0.2 web web-alias\n10.0.0.2 other\nfd00::1 v6name v6alias\n10.0.0.3 lonely\n',
      }).resolver();
      server.queries.length = 0;
      assert.deepEqual(await resolver.reverse('10.0.0.2'), { ok: true, value: { hostnames: ['web-alias', 'other'] } });
      assert.deepEqual(await resolver.reverse('fd00:0:0::1'), { ok: true, value: { hostnames: ['v6alias'] } });
      assert.deepEqual(await resolver.reverse('10.0.0.3'), { ok: true, value: { hostnames: [] } });
      assert.deepEqual(server.queries, []);
    });

    test("then PTR records, as Node's reverse returns them", async () => {
      const resolver = target({ resolvConf: `nameserver ${server.address}\n` }).resolver();
      const node = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
      node.setServers([server.address]);
      for (const address of ['10.0.0.2', 'fd00::1']) {
        assert.deepEqual(await resolver.reverse(address), { ok: true, value: { hostnames: await node.reverse(address) } });
      }
      assert.deepEqual(await resolver.reverse('10.0.0.2'), { ok: true, value: { hostnames: ['one.example', 'two.example'] } });
    });

    test("failures read as Node's: ENOTFOUND for any DNS failure, EINVAL for a bad address", async () => {
      const resolver = target({ resolvConf: `nameserver ${server.address}\n` }).resolver();
      const node = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
      node.setServers([server.address]);
      for (const address of ['10.0.0.9', 'not-an-address']) {
        const native = await node.reverse(address).then(
          () => assert.fail('resolved'),
          (error: NodeJS.ErrnoException) => error,
        );
        assert.deepEqual(await resolver.reverse(address), { ok: false, error: nativeFields(native) });
      }
    });
  });
});
