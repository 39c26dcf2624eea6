// A real DNS server for the resolver tests: UDP on port 53 of a random 127.53.x.y address.
//
// Port 53 because resolv.conf has no port syntax: to test the target's resolv.conf as written, the server has
// to sit where a nameserver line points. A random address in 127.53.0.0/16 (retried on EADDRINUSE) keeps
// parallel test files apart, and keeps every packet on loopback.

import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';

export type Rcode = 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED';
/** What the server does with one question: answer with records (none: NODATA), fail with an rcode, or stay silent. */
export type Reply = Answer[] | Rcode | 'DROP';
export type Handler = (question: { name: string; type: string }) => Reply;

/** Records by owner name (case-insensitive, no trailing dot), or an rcode/DROP for every type of that name. */
export type Zone = Record<string, Answer[] | Rcode | 'DROP'>;

const RCODE_NUMBER: Record<Rcode, number> = { SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 };

/** Answers from a zone: unknown names are NXDOMAIN, known names without the asked type are NODATA. */
export function zoneHandler(zone: Zone): Handler {
  const byName = new Map(Object.entries(zone).map(([name, entry]) => [name.toLowerCase(), entry]));
  return ({ name, type }) => {
    const entry = byName.get(name.toLowerCase());
    if (entry === undefined) return 'NXDOMAIN';
    if (typeof entry === 'string') return entry;
    const records = type === 'ANY' ? entry : entry.filter((record) => record.type === type);
    return records.map((record) => ({ ...record, name }) as Answer);
  };
}

/** Servers never take 127.53.0.0/24, so nothing ever listens here: a nameserver that is down. */
export const UNUSED_LOOPBACK_ADDRESS = '127.53.0.250';

function randomLoopbackAddress(): string {
  const octet = () => 1 + Math.floor(Math.random() * 254);
  return `127.53.${octet()}.${octet()}`;
}

export class TestDnsServer {
  /** Every question received, as "TYPE name", in arrival order. */
  readonly queries: string[] = [];

  private constructor(
    private readonly socket: dgram.Socket,
    readonly address: string,
    public handler: Handler,
  ) {
    socket.on('message', (message, peer) => this.answer(message, peer));
  }

  static async start(handlerOrZone: Handler | Zone): Promise<TestDnsServer> {
    const handler = typeof handlerOrZone === 'function' ? handlerOrZone : zoneHandler(handlerOrZone);
    for (let attempt = 0; ; attempt++) {
      const address = randomLoopbackAddress();
      const socket = dgram.createSocket('udp4');
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.bind(53, address, () => {
            socket.off('error', reject);
            resolve();
          });
        });
        return new TestDnsServer(socket, address, handler);
      } catch (error) {
        socket.close();
        if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 20) throw error;
      }
    }
  }

  /** The names asked for, in order, without repeats of the same name (A and AAAA of one candidate count once). */
  get askedNames(): string[] {
    const names: string[] = [];
    for (const query of this.queries) {
      const name = query.slice(query.indexOf(' ') + 1);
      if (names[names.length - 1] !== name) names.push(name);
    }
    return names;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private answer(message: Buffer, peer: dgram.RemoteInfo): void {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (question === undefined) return;
    this.queries.push(`${question.type} ${question.name}`);
    const reply = this.handler({ name: question.name, type: question.type });
    if (reply === 'DROP') return;
    const rcode = typeof reply === 'string' ? RCODE_NUMBER[reply] : 0;
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode,
      questions: query.questions ?? [],
      answers: typeof reply === 'string' ? [] : reply,
    });
    this.socket.send(response, peer.port, peer.address);
  }
}
