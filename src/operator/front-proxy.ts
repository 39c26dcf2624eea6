// Who is calling, in Kubernetes mode. The operator then sits behind the cluster's API server as the aggregated API
// `operator.remocal.dev`: the API server authenticates the user and RBAC-checks the request, then proxies it here
// with the user in `X-Remote-User`/`X-Remote-Group`/`X-Remote-Extra-*`, on a TLS connection where it presents its
// front-proxy client certificate. Anyone can write those headers, so they are believed only on a connection whose
// client certificate was signed by the requestheader client CA and whose CN is one of the allowed names: the rule
// Kubernetes applies itself. The CA, the names and the header names come from the ConfigMap
// `kube-system/extension-apiserver-authentication`.

import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { TLSSocket, type DetailedPeerCertificate, type TlsOptions } from 'node:tls';
import { ConfigError } from '../core/errors.js';
import type { Authentication, Authenticator, Identity } from './identity.js';

export interface FrontProxySettings {
  /** Header names carrying the user, lower-cased; the first one present wins. */
  usernameHeaders: string[];
  /** Header names carrying the groups, lower-cased; every value of every one counts. */
  groupHeaders: string[];
  /** Prefixes of the headers carrying the extra, lower-cased. */
  extraHeaderPrefixes: string[];
  /** CNs the front proxy's certificate may have; empty means any certificate the CA signed. */
  allowedNames: string[];
  /** The requestheader client CA bundle, PEM. */
  clientCA: string;
}

/** The ConfigMap as the API returns it; only `data` is read. */
export interface ConfigMapJson {
  data?: Record<string, string> | undefined;
}

/** Kubernetes' own bounds are looser; these keep one request's identity small whatever the headers hold. */
export const FRONT_PROXY_LIMITS = { groups: 64, extraKeys: 64, valuesPerExtraKey: 64, valueBytes: 1024 } as const;

const CONFIGMAP = 'kube-system/extension-apiserver-authentication';
const HINT = `Check the ConfigMap with \`kubectl -n kube-system get configmap extension-apiserver-authentication -o yaml\`; the API server fills it from its --requestheader-* flags.`;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function headerList(data: Record<string, string>, key: string, required: boolean): string[] {
  const text = data[key];
  if (text === undefined || text.trim() === '') {
    if (required) throw new ConfigError(`The ConfigMap ${CONFIGMAP} has no ${key}: the API server has no front proxy to trust.`, { hint: HINT });
    return [];
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConfigError(`The ConfigMap ${CONFIGMAP} has a ${key} that is not JSON: ${JSON.stringify(text.slice(0, 80))}.`, { hint: HINT });
  }
  if (!Array.isArray(value) || !value.every((item): item is string => typeof item === 'string')) {
    throw new ConfigError(`The ConfigMap ${CONFIGMAP} has a ${key} that is not a JSON array of strings.`, { hint: HINT });
  }
  if (required && value.length === 0) throw new ConfigError(`The ConfigMap ${CONFIGMAP} has an empty ${key}: the API server has no front proxy to trust.`, { hint: HINT });
  return value;
}

function headerNames(data: Record<string, string>, key: string, required: boolean): string[] {
  const names = headerList(data, key, required).map((name) => name.trim());
  for (const name of names) {
    if (!TOKEN.test(name)) throw new ConfigError(`The ConfigMap ${CONFIGMAP} has a ${key} entry that is not a header name: ${JSON.stringify(name)}.`, { hint: HINT });
  }
  return names.map((name) => name.toLowerCase());
}

function pemCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => new X509Certificate(block));
}

/** The front-proxy settings in the ConfigMap `kube-system/extension-apiserver-authentication`. */
export function parseAuthenticationConfigMap(configMap: ConfigMapJson): FrontProxySettings {
  const data = configMap.data;
  if (data === undefined || typeof data !== 'object') throw new ConfigError(`The ConfigMap ${CONFIGMAP} has no data.`, { hint: HINT });
  const clientCA = data['requestheader-client-ca-file'];
  if (clientCA === undefined || clientCA.trim() === '') {
    throw new ConfigError(`The ConfigMap ${CONFIGMAP} has no requestheader-client-ca-file: the API server has no front proxy to trust (it runs without --requestheader-client-ca-file).`, { hint: HINT });
  }
  let certificates: X509Certificate[];
  try {
    certificates = pemCertificates(clientCA);
  } catch (error) {
    throw new ConfigError(`The ConfigMap ${CONFIGMAP} has a requestheader-client-ca-file that does not parse: ${(error as Error).message}.`, { hint: HINT });
  }
  if (certificates.length === 0) throw new ConfigError(`The ConfigMap ${CONFIGMAP} has a requestheader-client-ca-file with no PEM certificate in it.`, { hint: HINT });
  return {
    usernameHeaders: headerNames(data, 'requestheader-username-headers', true),
    groupHeaders: headerNames(data, 'requestheader-group-headers', false),
    extraHeaderPrefixes: headerNames(data, 'requestheader-extra-headers-prefix', false),
    allowedNames: headerList(data, 'requestheader-allowed-names', false),
    clientCA,
  };
}

/**
 * What the operator's HTTPS server needs so that `socket.authorized` means "signed by the requestheader CA": the CA
 * as its only trust anchor, and a client certificate asked for but not required, so that a request without one
 * gets a Status 401 it can read rather than a failed handshake.
 */
export function frontProxyTlsOptions(settings: FrontProxySettings): Pick<TlsOptions, 'ca' | 'requestCert' | 'rejectUnauthorized'> {
  return { ca: settings.clientCA, requestCert: true, rejectUnauthorized: false };
}

/** Node hands header values over as latin1; the API server writes names as UTF-8 bytes. */
function utf8(value: string): string | undefined {
  const bytes = Buffer.from(value, 'latin1');
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? text : undefined;
}

/**
 * The identity the front proxy's headers name, from `rawHeaders` (name, value, name, value…): Node's `headers`
 * joins repeats with ", ", which would split or merge group names that contain a comma. Only call this once the
 * connection is known to come from the front proxy.
 */
export function identityFromHeaders(rawHeaders: readonly string[], settings: FrontProxySettings): Authentication {
  const users = new Map<string, string[]>();
  const groups = new Map<string, string[]>();
  const extra = new Map<string, string[]>();
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const name = rawHeaders[index]!.toLowerCase();
    const raw = rawHeaders[index + 1]!;
    const isUser = settings.usernameHeaders.includes(name);
    const isGroup = settings.groupHeaders.includes(name);
    const prefix = settings.extraHeaderPrefixes.find((candidate) => name.startsWith(candidate));
    if (!isUser && !isGroup && prefix === undefined) continue;
    if (raw === '') continue;
    if (Buffer.byteLength(raw, 'latin1') > FRONT_PROXY_LIMITS.valueBytes) return { ok: false, message: `the front proxy's ${rawHeaders[index]} header is longer than ${FRONT_PROXY_LIMITS.valueBytes} bytes` };
    const value = utf8(raw);
    if (value === undefined) return { ok: false, message: `the front proxy's ${rawHeaders[index]} header is not UTF-8` };
    if (isUser) users.set(name, [...(users.get(name) ?? []), value]);
    if (isGroup) groups.set(name, [...(groups.get(name) ?? []), value]);
    if (prefix !== undefined) {
      // Go canonicalises header names (X-Remote-Extra-Remocal.dev%2fteam for remocal.dev/team): the key is
      // lower-case and percent-encoded, so lower-casing first makes the escapes decodable again.
      let key: string;
      try {
        key = decodeURIComponent(name.slice(prefix.length));
      } catch {
        return { ok: false, message: `the front proxy's ${rawHeaders[index]} header has a key that is not percent-encoded UTF-8` };
      }
      if (key === '') return { ok: false, message: `the front proxy's ${rawHeaders[index]} header has no key after its prefix` };
      const values = extra.get(key) ?? [];
      values.push(value);
      if (values.length > FRONT_PROXY_LIMITS.valuesPerExtraKey) return { ok: false, message: `the front proxy sent more than ${FRONT_PROXY_LIMITS.valuesPerExtraKey} values for the extra key ${JSON.stringify(key)}` };
      extra.set(key, values);
      if (extra.size > FRONT_PROXY_LIMITS.extraKeys) return { ok: false, message: `the front proxy sent more than ${FRONT_PROXY_LIMITS.extraKeys} extra keys` };
    }
  }
  // As Kubernetes does: the first configured user header that is present names the user.
  const userHeader = settings.usernameHeaders.find((name) => users.has(name));
  if (userHeader === undefined) return { ok: false, message: `the front proxy sent no user header (${settings.usernameHeaders.join(', ')})` };
  const userValues = users.get(userHeader)!;
  if (userValues.length > 1) return { ok: false, message: `the front proxy sent ${userValues.length} ${userHeader} headers; one user is expected` };
  const groupList = settings.groupHeaders.flatMap((name) => groups.get(name) ?? []);
  if (groupList.length > FRONT_PROXY_LIMITS.groups) return { ok: false, message: `the front proxy sent more than ${FRONT_PROXY_LIMITS.groups} groups` };
  const identity: Identity = { user: userValues[0]!, groups: groupList, admin: groupList.includes('system:masters'), extra: Object.fromEntries(extra) };
  return { ok: true, identity };
}

type Verdict = { ok: true } | { ok: false; message: string };

function certificateChain(peer: DetailedPeerCertificate): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  for (let current: DetailedPeerCertificate | undefined = peer; current !== undefined && !seen.has(current) && chain.length < 10; current = current.issuerCertificate) {
    seen.add(current);
    if (current.raw === undefined) break;
    chain.push(new X509Certificate(current.raw));
  }
  return chain;
}

export class FrontProxyAuthenticator implements Authenticator {
  private readonly anchors: X509Certificate[];
  // The certificate is the connection's, not the request's: it is checked once per keep-alive connection.
  private readonly verdicts = new WeakMap<TLSSocket, Verdict>();

  constructor(private readonly settings: FrontProxySettings) {
    this.anchors = pemCertificates(settings.clientCA);
  }

  authenticate(request: IncomingMessage): Authentication {
    const socket = request.socket;
    if (!(socket instanceof TLSSocket)) return { ok: false, message: 'the request did not come over TLS, so it cannot come from the API server\'s front proxy' };
    let verdict = this.verdicts.get(socket);
    if (verdict === undefined) {
      verdict = this.checkCertificate(socket);
      this.verdicts.set(socket, verdict);
    }
    if (!verdict.ok) return verdict;
    return identityFromHeaders(request.rawHeaders, this.settings);
  }

  private checkCertificate(socket: TLSSocket): Verdict {
    const peer = socket.getPeerCertificate(true);
    if (Object.keys(peer).length === 0 || peer.raw === undefined) {
      return { ok: false, message: 'no client certificate was presented: in Kubernetes mode only the API server\'s front proxy, with its client certificate, may call the operator' };
    }
    if (!socket.authorized) {
      // Node gives OpenSSL's code here (UNABLE_TO_VERIFY_LEAF_SIGNATURE), a string despite its type.
      const reason = socket.authorizationError instanceof Error ? socket.authorizationError.message : String(socket.authorizationError);
      return { ok: false, message: `the client certificate is not signed by the API server's requestheader client CA (${reason})` };
    }
    // `authorized` speaks for whatever CAs the server was given; this ties it to the requestheader CA alone, so
    // a server that also trusted another CA would still not believe that CA's certificates here.
    const chain = certificateChain(peer);
    const anchored = chain.some((certificate) => this.anchors.some((anchor) => anchor.checkIssued(certificate) && certificate.verify(anchor.publicKey)));
    if (!anchored) return { ok: false, message: 'the client certificate is not signed by the API server\'s requestheader client CA' };
    const cn: unknown = peer.subject.CN;
    if (typeof cn !== 'string') return { ok: false, message: 'the client certificate has no single CN' };
    if (this.settings.allowedNames.length > 0 && !this.settings.allowedNames.includes(cn)) {
      return { ok: false, message: `the client certificate's CN ${JSON.stringify(cn)} is not one of the requestheader allowed names (${this.settings.allowedNames.join(', ')})` };
    }
    return { ok: true };
  }
}
