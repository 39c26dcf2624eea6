// Kubernetes mode's authenticator: the front proxy's rules, read from the ConfigMap
// `kube-system/extension-apiserver-authentication` at start and read again every `reload` seconds, so that a
// rotated requestheader CA (or a changed list of allowed names) takes effect without a restart. The server's
// TLS context is swapped with it, so the new CA is the one client certificates are checked against.

import type { IncomingMessage } from 'node:http';
import { ConfigError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { apiStatus, type Kube } from '../platform/kubernetes/api.js';
import { FrontProxyAuthenticator, parseAuthenticationConfigMap, type FrontProxySettings } from './front-proxy.js';
import type { Authentication, Authenticator } from './identity.js';

export const AUTHENTICATION_CONFIGMAP = { namespace: 'kube-system', name: 'extension-apiserver-authentication' } as const;

export class ReloadingFrontProxyAuthenticator implements Authenticator {
  private current: FrontProxyAuthenticator;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private settings: FrontProxySettings,
    private version: string | undefined,
  ) {
    this.current = new FrontProxyAuthenticator(settings);
  }

  static async load(kube: Kube): Promise<ReloadingFrontProxyAuthenticator> {
    const { settings, version } = await readSettings(kube);
    return new ReloadingFrontProxyAuthenticator(settings, version);
  }

  get frontProxy(): FrontProxySettings {
    return this.settings;
  }

  authenticate(request: IncomingMessage): Authentication {
    return this.current.authenticate(request);
  }

  /** Reads the ConfigMap again every `intervalMs`; `onChange` gets the new settings (to swap the TLS context). */
  watch(kube: Kube, intervalMs: number, log: Logger, onChange: (settings: FrontProxySettings) => void): void {
    this.timer = setInterval(() => {
      readSettings(kube).then(
        ({ settings, version }) => {
          if (version !== undefined && version === this.version) return;
          this.settings = settings;
          this.version = version;
          this.current = new FrontProxyAuthenticator(settings);
          onChange(settings);
          log.info({ resourceVersion: version }, 'the front proxy\'s settings changed; reloaded');
        },
        // The old settings stay: an API server that is briefly away must not lock every user out.
        (error: Error) => log.warn({ err: error }, 'could not read the authentication ConfigMap again; keeping the settings I have'),
      );
    }, intervalMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }
}

async function readSettings(kube: Kube): Promise<{ settings: FrontProxySettings; version: string | undefined }> {
  let configMap;
  try {
    configMap = await kube.core.readNamespacedConfigMap(AUTHENTICATION_CONFIGMAP);
  } catch (error) {
    const status = apiStatus(error);
    throw new ConfigError(
      `The operator cannot read the ConfigMap ${AUTHENTICATION_CONFIGMAP.namespace}/${AUTHENTICATION_CONFIGMAP.name}${status === null ? `: ${(error as Error).message}` : ` (${status.code}: ${status.message})`}.`,
      { hint: 'Its ServiceAccount needs the Role extension-apiserver-authentication-reader in kube-system: `remocal operator setup` binds it.' },
    );
  }
  return { settings: parseAuthenticationConfigMap({ data: configMap.data }), version: configMap.metadata?.resourceVersion };
}
