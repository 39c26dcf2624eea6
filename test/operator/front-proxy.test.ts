// Kubernetes-mode identity: the ConfigMap as the API server wrote it, the headers as the aggregator sent them, and a
// real HTTPS server on 127.0.0.1 that believes X-Remote-* only from a client certificate the requestheader CA signed
// with an allowed CN. The certificates are made here with openssl.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../src/core/errors.js';
import { FRONT_PROXY_LIMITS, FrontProxyAuthenticator, frontProxyTlsOptions, identityFromHeaders, parseAuthenticationConfigMap, type ConfigMapJson, type FrontProxySettings } from '../../src/operator/front-proxy.js';
import type { Authenticator } from '../../src/operator/identity.js';
import { TestCertificates } from '../helpers/certificates.js';

const fixtures = new URL('../fixtures/k8s/operator/', import.meta.url);
const fixture = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, fixtures), 'utf8')) as T;
const recordedConfigMap = fixture<ConfigMapJson & { data: Record<string, string> }>('extension-apiserver-authentication-configmap.json');
interface RecordedRequest { url: string; rawHeaders: string[]; tls: { authorized: boolean; peerCertificate: { subject: { CN: string } } } }
const recorded = (name: string): RecordedRequest[] => fixture<{ requests: RecordedRequest[] }>(name).requests;

const certificates = new TestCertificates();
after(() => certificates.remove());
const openssl = (args: string[]): void => certificates.openssl(args);
const makeCA = (name: string): string => certificates.ca(name);
const makeClient = (name: string, cn: string, ca: string): { cert: string; key: string } => certificates.client(name, cn, ca);
const read = (name: string): string => certificates.read(name);

interface Server { port: number; close(): Promise<void> }

/** An HTTPS server that answers the caller's identity as JSON, or 401 with the refusal. */
async function startServer(tls: https.ServerOptions, auth: () => Authenticator): Promise<Server> {
  const server = https.createServer({ cert: read('serving.pem'), key: read('serving-key.pem'), ...tls }, (request, response) => {
    const result = auth().authenticate(request);
    const [status, body] = result.ok ? [200, result.identity] : [401, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Unauthorized', code: 401, message: `Unauthorized: ${result.message}` }];
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

async function call(port: number, headers: Record<string, string | string[]>, client?: { cert: string; key: string }): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const request = https.request({ host: '127.0.0.1', port, path: '/apis/operator.remocal.dev/v1', ca: read('serving.pem'), agent: false, headers, ...client }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  });
}

describe('the extension-apiserver-authentication ConfigMap', () => {
  it('gives the header names, the allowed names and the CA of the recorded cluster', () => {
    const settings = parseAuthenticationConfigMap(recordedConfigMap);
    assert.deepEqual(settings.usernameHeaders, ['x-remote-user']);
    assert.deepEqual(settings.groupHeaders, ['x-remote-group']);
    assert.deepEqual(settings.extraHeaderPrefixes, ['x-remote-extra-']);
    assert.deepEqual(settings.allowedNames, ['front-proxy-client']);
    assert.equal(settings.clientCA, recordedConfigMap.data['requestheader-client-ca-file']);
    // The requestheader CA, not the client-ca-file beside it.
    assert.equal(new X509Certificate(settings.clientCA).subject, 'CN=k8s-lab-front-proxy-ca');
  });

  it('refuses a ConfigMap that would leave nothing to trust, naming the key', () => {
    const without = (key: string, value?: string): ConfigMapJson => {
      const data = { ...recordedConfigMap.data };
      if (value === undefined) delete data[key];
      else data[key] = value;
      return { data };
    };
    const refuses = (configMap: ConfigMapJson, words: RegExp): void => {
      assert.throws(() => parseAuthenticationConfigMap(configMap), (error: unknown) => error instanceof ConfigError && words.test(error.message));
    };
    refuses({}, /has no data/);
    refuses(without('requestheader-client-ca-file'), /no requestheader-client-ca-file/);
    refuses(without('requestheader-client-ca-file', 'not a pem'), /no PEM certificate/);
    refuses(without('requestheader-username-headers'), /no requestheader-username-headers/);
    refuses(without('requestheader-username-headers', '[]'), /empty requestheader-username-headers/);
    refuses(without('requestheader-group-headers', 'X-Remote-Group'), /requestheader-group-headers that is not JSON/);
    refuses(without('requestheader-allowed-names', '{"a":1}'), /requestheader-allowed-names that is not a JSON array of strings/);
    refuses(without('requestheader-extra-headers-prefix', '["X Bad"]'), /not a header name/);
    // Groups, extras and allowed names may be absent.
    const settings = parseAuthenticationConfigMap(without('requestheader-allowed-names'));
    assert.deepEqual(settings.allowedNames, []);
  });
});

describe('the identity in the front proxy\'s headers', () => {
  const settings = parseAuthenticationConfigMap(recordedConfigMap);

  it('keeps a group with a comma whole and decodes the mangled extra keys (impersonation, recorded)', () => {
    const [request] = recorded('aggregated-request-impersonated-extra.json');
    assert.deepEqual(identityFromHeaders(request!.rawHeaders, settings), {
      ok: true,
      identity: { user: 'someone', groups: ['g1', 'a,b', 'system:authenticated'], admin: false, extra: { 'remocal.dev/team': ['blue'], scopes: ['view', 'edit'] } },
    });
  });

  it('makes a member of system:masters an admin (kubectl get as admin, recorded)', () => {
    const requests = recorded('aggregated-request-kubectl-get-sessions-admin.json');
    assert.equal(requests.length, 2);
    for (const request of requests) {
      assert.equal(request.tls.authorized, true);
      assert.ok(settings.allowedNames.includes(request.tls.peerCertificate.subject.CN));
      assert.deepEqual(identityFromHeaders(request.rawHeaders, settings), { ok: true, identity: { user: 'admin', groups: ['system:masters', 'system:authenticated'], admin: true, extra: {} } });
    }
  });

  it('reads the WebSocket upgrade of dev-alice (recorded)', () => {
    const [request] = recorded('aggregated-request-websocket-portforward-alice.json');
    assert.deepEqual(identityFromHeaders(request!.rawHeaders, settings), { ok: true, identity: { user: 'dev-alice', groups: ['developers', 'system:authenticated'], admin: false, extra: {} } });
  });

  it('matches header names whatever their case, and decodes UTF-8 values', () => {
    const zoe = Buffer.from('zoë', 'utf8').toString('latin1');
    const result = identityFromHeaders(['x-remote-user', zoe, 'X-REMOTE-GROUP', 'g', 'x-remote-extra-a%2Fb', 'v'], settings);
    assert.deepEqual(result, { ok: true, identity: { user: 'zoë', groups: ['g'], admin: false, extra: { 'a/b': ['v'] } } });
  });

  it('refuses what is ambiguous or too big', () => {
    const refusal = (rawHeaders: string[]): string => {
      const result = identityFromHeaders(rawHeaders, settings);
      assert.equal(result.ok, false);
      return result.ok ? '' : result.message;
    };
    const many = (header: (index: number) => string, count: number): string[] => Array.from({ length: count }, (_, index) => [header(index), String(index)]).flat();
    const same = (header: string) => (): string => header;
    assert.match(refusal(['X-Remote-Group', 'g']), /no user header \(x-remote-user\)/);
    assert.match(refusal(['X-Remote-User', '']), /no user header/);
    assert.match(refusal(['X-Remote-User', 'a', 'X-Remote-User', 'b']), /2 x-remote-user headers/);
    assert.match(refusal(['X-Remote-User', 'a', ...many(same('X-Remote-Group'), FRONT_PROXY_LIMITS.groups + 1)]), /more than 64 groups/);
    assert.equal(identityFromHeaders(['X-Remote-User', 'a', ...many(same('X-Remote-Group'), FRONT_PROXY_LIMITS.groups)], settings).ok, true);
    assert.match(refusal(['X-Remote-User', 'a', ...many((index) => `X-Remote-Extra-K${index}`, FRONT_PROXY_LIMITS.extraKeys + 1)]), /more than 64 extra keys/);
    assert.equal(identityFromHeaders(['X-Remote-User', 'a', ...many((index) => `X-Remote-Extra-K${index}`, FRONT_PROXY_LIMITS.extraKeys)], settings).ok, true);
    assert.match(refusal(['X-Remote-User', 'a', ...many(same('X-Remote-Extra-K'), FRONT_PROXY_LIMITS.valuesPerExtraKey + 1)]), /more than 64 values for the extra key "k"/);
    assert.match(refusal(['X-Remote-User', 'a'.repeat(1025)]), /longer than 1024 bytes/);
    assert.equal(identityFromHeaders(['X-Remote-User', 'a'.repeat(1024)], settings).ok, true);
    assert.match(refusal(['X-Remote-User', 'a', 'X-Remote-Group', 'x'.repeat(1025)]), /X-Remote-Group header is longer than 1024 bytes/);
    assert.match(refusal(['X-Remote-User', 'a', 'X-Remote-Extra-Bad%zz', 'v']), /not percent-encoded/);
    assert.match(refusal(['X-Remote-User', Buffer.from([0xff, 0xfe]).toString('latin1')]), /not UTF-8/);
  });
});

describe('FrontProxyAuthenticator on a real TLS server', () => {
  let settings: FrontProxySettings;
  let auth: Authenticator;
  let server: Server;
  let frontProxy: { cert: string; key: string };
  let intruder: { cert: string; key: string };
  let outsider: { cert: string; key: string };
  const alice = { 'X-Remote-User': 'alice', 'X-Remote-Group': ['dev,ops', 'system:authenticated'], 'X-Remote-Extra-Remocal.dev%2fteam': 'blue', 'X-Remote-Extra-Scopes': ['view', 'edit'] };

  before(async () => {
    makeCA('front-proxy-ca');
    makeCA('other-ca');
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'serving-key.pem', '-out', 'serving.pem', '-days', '2', '-subj', '/CN=remocal-operator', '-addext', 'subjectAltName=IP:127.0.0.1']);
    frontProxy = makeClient('front-proxy-client', 'front-proxy-client', 'front-proxy-ca');
    intruder = makeClient('intruder', 'intruder', 'front-proxy-ca');
    outsider = makeClient('outsider', 'front-proxy-client', 'other-ca');
    // The recorded ConfigMap, with this test's CA in place of the cluster's.
    settings = parseAuthenticationConfigMap({ data: { ...recordedConfigMap.data, 'requestheader-client-ca-file': read('front-proxy-ca.pem') } });
    auth = new FrontProxyAuthenticator(settings);
    server = await startServer(frontProxyTlsOptions(settings), () => auth);
  });
  after(async () => server.close());

  it('believes the headers on the front proxy\'s certificate: groups with commas whole, extras decoded', async () => {
    const answer = await call(server.port, alice, frontProxy);
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { user: 'alice', groups: ['dev,ops', 'system:authenticated'], admin: false, extra: { 'remocal.dev/team': ['blue'], scopes: ['view', 'edit'] } });
  });

  it('makes system:masters an admin', async () => {
    const answer = await call(server.port, { 'X-Remote-User': 'root', 'X-Remote-Group': 'system:masters' }, frontProxy);
    assert.deepEqual(answer, { status: 200, body: { user: 'root', groups: ['system:masters'], admin: true, extra: {} } });
  });

  it('refuses a client\'s own X-Remote-User without a certificate', async () => {
    const answer = await call(server.port, { 'X-Remote-User': 'evil', 'X-Remote-Group': 'system:masters' });
    assert.equal(answer.status, 401);
    assert.match(String(answer.body.message), /^Unauthorized: no client certificate was presented/);
  });

  it('refuses a certificate from another CA, even with the allowed CN', async () => {
    const answer = await call(server.port, alice, outsider);
    assert.equal(answer.status, 401);
    assert.match(String(answer.body.message), /not signed by the API server's requestheader client CA \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
  });

  it('refuses a CN outside the allowed names', async () => {
    const answer = await call(server.port, alice, intruder);
    assert.equal(answer.status, 401);
    assert.match(String(answer.body.message), /CN "intruder" is not one of the requestheader allowed names \(front-proxy-client\)/);
  });

  it('refuses the right certificate without a user header', async () => {
    const answer = await call(server.port, { 'X-Remote-Group': 'system:masters' }, frontProxy);
    assert.equal(answer.status, 401);
    assert.match(String(answer.body.message), /the front proxy sent no user header/);
  });

  it('lets in any CN the CA signed when the allowed names are empty, as Kubernetes does', async (t) => {
    const before = auth;
    auth = new FrontProxyAuthenticator({ ...settings, allowedNames: [] });
    t.after(() => { auth = before; });
    const answer = await call(server.port, { 'X-Remote-User': 'bob' }, intruder);
    assert.deepEqual(answer, { status: 200, body: { user: 'bob', groups: [], admin: false, extra: {} } });
    assert.equal((await call(server.port, { 'X-Remote-User': 'bob' }, outsider)).status, 401);
  });

  it('trusts only the requestheader CA even on a server that also trusts another CA', async () => {
    const wide = await startServer({ ca: [read('front-proxy-ca.pem'), read('other-ca.pem')], requestCert: true, rejectUnauthorized: false }, () => auth);
    try {
      const answer = await call(wide.port, alice, outsider);
      assert.equal(answer.status, 401);
      assert.match(String(answer.body.message), /^Unauthorized: the client certificate is not signed by the API server's requestheader client CA$/);
      assert.equal((await call(wide.port, alice, frontProxy)).status, 200);
    } finally {
      await wide.close();
    }
  });
});
