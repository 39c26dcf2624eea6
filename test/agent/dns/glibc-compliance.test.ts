// TargetResolver.getaddrinfo against the real thing: the same names, families, files and DNS server, once
// through this machine's glibc (Node's dns.lookup in a private mount namespace where the test's resolv.conf,
// hosts, host.conf and nsswitch.conf are bind-mounted over /etc) and once through the resolver. Both must give
// the same addresses (IPv4 first: glibc's RFC 6724 order depends on this machine's routes), the same error
// (code, errno, syscall, message) and send the same questions to the server.
//
// Needs root and unshare(1); skipped otherwise. IP literals that net.isIP accepts are left out: Node answers
// those itself, without glibc.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Answer } from 'dns-packet';
import { TargetResolver } from '../../../src/agent/dns/resolver.js';
import type { GetAddrInfoResult, Result } from '../../../src/protocol/messages.js';
import { TestDnsServer, UNUSED_LOOPBACK_ADDRESS, zoneHandler, type Zone } from './dns-test-server.js';

const canRun = process.getuid?.() === 0 && (await commandWorks('unshare', ['-m', 'true']));
const hasHostConf = existsSync('/etc/host.conf');

const A = (data: string): Answer => ({ type: 'A', name: '', data });
const AAAA = (data: string): Answer => ({ type: 'AAAA', name: '', data });
const TXT: Answer = { type: 'TXT', name: '', data: 'no address here' };

const ZONE: Zone = {
  'svc.ns.svc.cluster.local': [A('10.0.0.1')],
  'both.example': [A('10.0.0.2'), A('10.0.0.3'), AAAA('fd00::2')],
  'v6only.example': [AAAA('fd00::1')],
  'nodata.example': [TXT],
  'nodata.ns.svc.cluster.local': [TXT],
  'x.nodata.svc.cluster.local': [TXT],
  'a.b.c.d.e': [A('10.9.9.9')],
  'fail.example': 'SERVFAIL',
  'refused.example': 'REFUSED',
  'sf.ns.svc.cluster.local': 'SERVFAIL',
  'y.sf2.svc.cluster.local': 'SERVFAIL',
  'rf.ns.svc.cluster.local': 'REFUSED',
  'drop.example': 'DROP',
  'd.ns.svc.cluster.local': 'DROP',
  'x.drop2.svc.cluster.local': 'DROP',
  'root-only': [A('10.7.7.7')],
};

const HOSTS = `# a comment line
10.0.0.1   web web-alias.ns   # trailing comment: other.ns
fd00::1    web
10.0.0.2   WEB
10.0.0.1   web
 10.0.0.3  indented
fd00:0:0::9 v6host
::ffff:10.1.1.1 mapped
127.1      short-form
10.0.0.4   multi1 multi2\tmulti3
`;

const SEARCH = 'search ns.svc.cluster.local svc.cluster.local cluster.local';

type Case = [host: string, family: 0 | 4 | 6];

interface Scenario {
  name: string;
  conf: () => string;
  hostConf?: string;
  /** The target's LOCALDOMAIN, RES_OPTIONS… */
  env?: Record<string, string>;
  /** The target's hostname (set in a private UTS namespace for glibc). */
  hostname?: string;
  cases: Case[];
}

const everyFamily = (...hosts: string[]): Case[] => hosts.flatMap((host) => [0, 4, 6].map((family) => [host, family] as Case));

describe('getaddrinfo compared with glibc', { skip: canRun ? false : 'needs root and unshare' }, () => {
  let server: TestDnsServer;
  let failing: TestDnsServer;
  let dir: string;
  before(async () => {
    server = await TestDnsServer.start(zoneHandler(ZONE));
    failing = await TestDnsServer.start(() => 'SERVFAIL');
    dir = mkdtempSync(join(tmpdir(), 'remocal-glibc-'));
  });
  after(async () => {
    await server.close();
    await failing.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const scenarios: Scenario[] = [
    {
      name: 'ndots:5, search list, one attempt',
      conf: () => `nameserver ${server.address}\n${SEARCH}\noptions ndots:5 timeout:1 attempts:1\n`,
      cases: [
        ...everyFamily('svc', 'nothere', 'a.b.c.d.e', 'nothere.', 'both.example', 'v6only.example', 'nodata', 'sf', 'rf'),
        ...everyFamily('web', 'Web-Alias.NS', 'web.', 'indented', 'v6host', 'mapped', 'multi3', 'short-form'),
        ...everyFamily('a_b', '-a', 'a.-b', 'a..b', 'a*b', '127.1', '0x7f.1', '010.0.0.1', '08.1.1.1', '.'),
      ],
    },
    {
      name: 'ndots:1, two attempts',
      conf: () => `nameserver ${server.address}\n${SEARCH}\noptions timeout:1 attempts:2\n`,
      cases: everyFamily('nothere.x', 'nodata.example', 'x.nodata', 'fail.example', 'refused.example', 'y.sf2', 'sf', 'svc'),
    },
    {
      name: 'search list with the root, odd words and no-tld-query',
      conf: () => `nameserver ${server.address}\nsearch ns.svc.cluster.local . # ;\noptions no-tld-query attempts:1\n`,
      cases: everyFamily('svc', 'root-only', 'nothere', 'nothere.x'),
    },
    {
      name: 'domain line after search, no-aaaa',
      conf: () => `nameserver ${server.address}\n${SEARCH}\ndomain svc.cluster.local other.words\noptions no-aaaa attempts:1\n`,
      cases: everyFamily('svc', 'x.nodata', 'both.example', 'v6only.example'),
    },
    {
      name: 'timeouts',
      conf: () => `nameserver ${server.address}\n${SEARCH}\noptions timeout:1 attempts:1\n`,
      cases: [['drop.example', 0], ['drop.example', 4], ['d', 0], ['d', 4], ['x.drop2', 6]],
    },
    {
      name: 'first nameserver down, or failing',
      conf: () => `nameserver ${UNUSED_LOOPBACK_ADDRESS}\nnameserver ${failing.address}\nnameserver ${server.address}\n${SEARCH}\n`,
      cases: everyFamily('svc', 'nothere', 'both.example', 'fail.example'),
    },
    {
      name: 'LOCALDOMAIN and RES_OPTIONS from the environment',
      conf: () => `nameserver ${server.address}\n${SEARCH}\noptions attempts:1\n`,
      env: { LOCALDOMAIN: 'svc.cluster.local ns.svc.cluster.local', RES_OPTIONS: 'ndots:2 no-tld-query' },
      cases: everyFamily('svc', 'nothere', 'x.nodata'),
    },
    {
      name: 'no search line: the domain of the hostname',
      conf: () => `nameserver ${server.address}\noptions attempts:1\n`,
      hostname: 'pod-1.ns.svc.cluster.local',
      cases: everyFamily('svc', 'nothere'),
    },
    {
      name: 'every nameserver unreachable',
      conf: () => `nameserver ${UNUSED_LOOPBACK_ADDRESS}\n${SEARCH}\noptions timeout:1 attempts:1\n`,
      cases: everyFamily('x', 'x.y'),
    },
  ];
  if (hasHostConf) {
    scenarios.push({
      name: 'host.conf without multi',
      conf: () => `nameserver ${server.address}\n`,
      hostConf: '# nothing\n',
      cases: everyFamily('web', 'WEB', 'mapped'),
    });
  }

  for (const scenario of scenarios) {
    test(scenario.name, { timeout: 120_000 }, async () => {
      const files = {
        resolvConf: write(dir, 'resolv.conf', scenario.conf()),
        hosts: write(dir, 'hosts', HOSTS),
        hostConf: write(dir, 'host.conf', scenario.hostConf ?? 'multi on\n'),
        nsswitch: write(dir, 'nsswitch.conf', 'hosts: files dns\n'),
      };
      const glibc = await lookupWithGlibc(files, scenario, server);

      const resolver = new TargetResolver(
        { resolvConf: files.resolvConf, hosts: files.hosts, hostConf: hasHostConf ? files.hostConf : join(dir, 'absent') },
        { hostname: scenario.hostname ?? hostname(), env: scenario.env ?? {} },
      );
      for (const [index, [host, family]] of scenario.cases.entries()) {
        server.queries.length = 0;
        const ours = describeResult(await resolver.getaddrinfo(host, family));
        const theirs = glibc[index];
        assert.ok(theirs !== undefined);
        const label = `${JSON.stringify(host)} family ${family}`;
        assert.deepEqual(ours, theirs.result, `${label}: result`);
        assert.deepEqual(server.askedNames, askedNames(theirs.queries), `${label}: names asked`);
        assert.deepEqual(countQueries(server.queries), countQueries(theirs.queries), `${label}: questions sent`);
      }
    });
  }
});

type Described = { addresses: string[] } | { error: { code: string; errno?: number; syscall?: string; message: string } };

function describeResult(result: Result<GetAddrInfoResult>): Described {
  if (!result.ok) return { error: { ...result.error } };
  return { addresses: result.value.addresses.map((entry) => `${entry.address}/${entry.family}`) };
}

const PROBE = `
const dns = require('node:dns');
const cases = JSON.parse(process.argv[1]);
const lookup = (host, options) => new Promise((resolve) => dns.lookup(host, options, (error, addresses) => resolve({ error, addresses })));
(async () => {
  for (const [index, [host, family]] of cases.entries()) {
    // A marker question tells the server log where each lookup starts.
    await lookup('remocal-mark-' + index + '.', { all: true, family: 4 });
    const { error, addresses } = await lookup(host, { all: true, family });
    const result = error
      ? { error: { code: error.code, errno: error.errno, syscall: error.syscall, message: error.message } }
      : { addresses: [...addresses.filter((a) => a.family === 4), ...addresses.filter((a) => a.family === 6)].map((a) => a.address + '/' + a.family) };
    process.stdout.write(JSON.stringify(result) + '\\n');
  }
})();
`;

async function lookupWithGlibc(
  files: { resolvConf: string; hosts: string; hostConf: string; nsswitch: string },
  scenario: Scenario,
  server: TestDnsServer,
): Promise<{ result: Described; queries: string[] }[]> {
  const { cases } = scenario;
  const mounts = [
    [files.resolvConf, '/etc/resolv.conf'],
    [files.hosts, '/etc/hosts'],
    [files.nsswitch, '/etc/nsswitch.conf'],
    ...(hasHostConf ? [[files.hostConf, '/etc/host.conf']] : []),
  ];
  const script = [
    ...mounts.map(([from, to]) => `mount --bind '${from}' '${to}'`),
    ...(scenario.hostname === undefined ? [] : [`hostname '${scenario.hostname}'`]),
    `exec '${process.execPath}' -e "$PROBE" "$CASES"`,
  ].join(' && ');
  server.queries.length = 0;
  const env = { ...scenario.env, PATH: process.env.PATH ?? '/usr/bin:/bin', PROBE, CASES: JSON.stringify(cases) };
  const namespaces = scenario.hostname === undefined ? ['-m'] : ['-m', '-u'];
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile('unshare', [...namespaces, 'sh', '-c', script], { env, timeout: 100_000 }, (error, out, err) =>
      error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out),
    ),
  );
  const results = stdout.trim().split('\n').map((line) => JSON.parse(line) as Described);
  // Split the server's log at the markers.
  const perCase: string[][] = cases.map(() => []);
  let current = -1;
  for (const query of server.queries) {
    const marker = /^A remocal-mark-(\d+)$/.exec(query);
    if (marker !== null) current = Number(marker[1]);
    // Names c-ares refuses to encode (a search domain '#') never leave the resolver: it answers NXDOMAIN for
    // them, which is what glibc gets from any server.
    else if (current >= 0 && !/[#;]/.test(query)) perCase[current]?.push(query);
  }
  return results.map((result, index) => ({ result, queries: perCase[index] ?? [] }));
}

function askedNames(queries: string[]): string[] {
  const names: string[] = [];
  for (const query of queries) {
    const name = query.slice(query.indexOf(' ') + 1);
    if (names[names.length - 1] !== name) names.push(name);
  }
  return names;
}

function countQueries(queries: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const query of queries) counts[query] = (counts[query] ?? 0) + 1;
  return counts;
}

function write(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function commandWorks(command: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => execFile(command, args, (error) => resolve(error === null)));
}
