// What every session on one target shares: the target's resolver, its incoming traffic (one redirector, one
// iptables chain, one cleanup supervisor, whoever subscribes), where its files are, and the watch on its
// process. A direct session has the target to itself; behind the operator, many sessions share one.

import { existsSync } from 'node:fs';
import type { Logger } from '../core/log.js';
import { TargetResolver } from './dns/resolver.js';
import { IncomingService, type IncomingSession } from './incoming/service.js';
import { watchTarget } from './target-watch.js';

export interface TargetOptions {
  pid: number | null;
  netns: string | null;
  log: Logger;
  /** The most any session may do with the target's files: `off`, read only, or also changes. */
  files: 'off' | 'read' | 'write';
}

/** Where the target's resolver files are, as seen from the agent (which shares the host's mount namespace). */
export function targetDnsFiles(pid: number | null, netns: string | null): { resolvConf: string; hosts: string } {
  if (pid !== null) return { resolvConf: `/proc/${pid}/root/etc/resolv.conf`, hosts: `/proc/${pid}/root/etc/hosts` };
  const netnsDir = netns === null ? null : `/etc/netns/${netns}`;
  return {
    resolvConf: netnsDir !== null && existsSync(`${netnsDir}/resolv.conf`) ? `${netnsDir}/resolv.conf` : '/etc/resolv.conf',
    hosts: netnsDir !== null && existsSync(`${netnsDir}/hosts`) ? `${netnsDir}/hosts` : '/etc/hosts',
  };
}

export class SharedTarget {
  readonly pid: number | null;
  readonly netns: string | null;
  readonly log: Logger;
  readonly resolver: TargetResolver;
  readonly incoming: IncomingService;
  /** The target's root as the agent reaches it; null when it has no files of its own (a bare netns). */
  readonly filesRoot: string | null;
  readonly maxFiles: 'off' | 'read' | 'write';
  private readonly routedListeners = new Set<(session: IncomingSession) => void>();

  constructor(options: TargetOptions) {
    this.pid = options.pid;
    this.netns = options.netns;
    this.log = options.log;
    this.resolver = new TargetResolver(targetDnsFiles(options.pid, options.netns));
    this.incoming = new IncomingService(options.log, (session) => {
      for (const listener of this.routedListeners) listener(session);
    });
    // A bare network namespace has no files of its own: what the app would read "there" is this machine's.
    this.filesRoot = options.files === 'off' || options.pid === null ? null : `/proc/${options.pid}/root`;
    this.maxFiles = options.files;
  }

  /** Calls `listener` for every connection or request routed to a session. */
  onRouted(listener: (session: IncomingSession) => void): () => void {
    this.routedListeners.add(listener);
    return () => this.routedListeners.delete(listener);
  }

  /** Calls `onGone` once when the target's process ends; a target without a process never does. */
  watch(onGone: (reason: string) => void): () => void {
    return this.pid === null ? () => undefined : watchTarget(this.pid, onGone);
  }

  /** The file access a session asks for, within what the agent was started with. */
  filesFor(asked: 'off' | 'read' | 'write'): 'off' | 'read' | 'write' {
    const order = ['off', 'read', 'write'] as const;
    return order[Math.min(order.indexOf(asked), order.indexOf(this.maxFiles))]!;
  }
}
