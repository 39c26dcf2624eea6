// The operator's serving certificate. An admin may bring one (tls.cert_file/key_file); otherwise the operator
// makes a CA of its own once, keeps it in the state dir, and issues its serving certificate from it, so that
// clients pin one small CA file (`local_operator.ca_file`) that survives certificate renewals. openssl does the
// cryptography: Node has no X.509 writer, and openssl is what admins audit anyway.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { runChildSync } from '../core/child.js';
import { ToolMissingError, ConfigError } from '../core/errors.js';

export interface ServingCertificate {
  cert: string;
  key: string;
  /** The CA file clients should trust, when the operator made its own. */
  caFile: string | undefined;
}

export function servingCertificate(stateDir: string, tls: { cert_file?: string | undefined; key_file?: string | undefined; names: string[] }): ServingCertificate {
  if (tls.cert_file !== undefined || tls.key_file !== undefined) {
    if (tls.cert_file === undefined || tls.key_file === undefined) throw new ConfigError('tls.cert_file and tls.key_file go together: give both, or neither to let the operator make its own.');
    return { cert: readFileSync(tls.cert_file, 'utf8'), key: readFileSync(tls.key_file, 'utf8'), caFile: undefined };
  }
  const dir = join(stateDir, 'tls');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caFile = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  if (!existsSync(caFile) || !existsSync(caKey)) makeCa(caFile, caKey);
  const names = [...new Set(['localhost', '127.0.0.1', hostname(), ...tls.names])];
  const certFile = join(dir, 'server.pem');
  const keyFile = join(dir, 'server-key.pem');
  const namesFile = join(dir, 'server.names');
  // Issued again when the names change, so an added name takes effect on restart.
  if (!existsSync(certFile) || !existsSync(keyFile) || !existsSync(namesFile) || readFileSync(namesFile, 'utf8') !== names.join('\n')) {
    issue(dir, { caFile, caKey }, names, { certFile, keyFile });
    writeFileSync(namesFile, names.join('\n'));
  }
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), caFile };
}

/** A CA and a serving certificate for an install elsewhere (a cluster), as PEM text. */
export interface IssuedCertificate {
  caCert: string;
  cert: string;
  key: string;
}

/**
 * A fresh CA and a serving certificate from it for `names`. The CA's key is thrown away once the certificate is
 * signed: nothing else is ever issued from it, so the CA (the APIService's caBundle) vouches for this one
 * certificate only, and renewing means issuing both again.
 */
export function issueWithThrowawayCa(names: readonly string[], days = 825): IssuedCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'remocal-tls-'));
  try {
    const caFile = join(dir, 'ca.pem');
    const caKey = join(dir, 'ca-key.pem');
    const certFile = join(dir, 'server.pem');
    const keyFile = join(dir, 'server-key.pem');
    makeCa(caFile, caKey);
    issue(dir, { caFile, caKey }, names, { certFile, keyFile }, days);
    return { caCert: readFileSync(caFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function makeCa(caFile: string, caKey: string): void {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', caKey, '-out', caFile, '-days', '3650', '-subj', '/CN=remocal operator CA']);
}

function issue(dir: string, ca: { caFile: string; caKey: string }, names: readonly string[], out: { certFile: string; keyFile: string }, days = 825): void {
  const san = names.map((name) => (isIP(name) === 0 ? `DNS:${name}` : `IP:${name}`)).join(',');
  const csr = join(dir, 'server.csr');
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', out.keyFile, '-out', csr, '-subj', '/CN=remocal operator']);
  const extFile = join(dir, 'server.ext');
  writeFileSync(extFile, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n`);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.caFile, '-CAkey', ca.caKey, '-CAcreateserial', '-out', out.certFile, '-days', String(days), '-extfile', extFile]);
}

function openssl(args: string[]): void {
  const result = runChildSync('openssl', args, { encoding: 'utf8', timeout: 30_000 });
  if (result.error !== undefined && (result.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new ToolMissingError('The operator makes its serving certificate with openssl, which is not installed.', { hint: 'Install it (apt-get install -y openssl), or give tls.cert_file and tls.key_file.' });
  }
  if (result.status !== 0) throw new ConfigError(`openssl ${args[0]} failed: ${String(result.stderr).trim()}`);
}
