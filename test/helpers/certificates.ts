// Throwaway CAs and client certificates for tests, made with openssl in a directory of the test's own (what a
// cluster's front-proxy CA and its client certificate are, or an intruder's).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChildSync } from '../../src/core/child.js';

export class TestCertificates {
  readonly dir = mkdtempSync(join(tmpdir(), 'remocal-certs-'));

  openssl(args: string[]): void {
    const result = runChildSync('openssl', args, { cwd: this.dir, encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 0, `openssl ${args.join(' ')}: ${result.stderr}`);
  }

  /** A self-signed CA `<name>.pem` with its key; returns the PEM. */
  ca(name: string): string {
    this.openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`]);
    return this.read(`${name}.pem`);
  }

  /** A client certificate with `cn`, signed by the CA `ca`. */
  client(name: string, cn: string, ca: string): { cert: string; key: string } {
    this.openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    writeFileSync(join(this.dir, 'client.ext'), 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n');
    this.openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}-key.pem`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', 'client.ext']);
    return { cert: this.read(`${name}.pem`), key: this.read(`${name}-key.pem`) };
  }

  read(name: string): string {
    return readFileSync(join(this.dir, name), 'utf8');
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
