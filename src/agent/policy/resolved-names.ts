// The names a session resolved through the agent, by address: an app that looks up `db.prod.svc` and then dials
// the address it got must meet the same hostname rules as one that dials the name. Bounded, oldest names first out:
// a session that resolves without end must not grow the agent without end.

const MAX_ADDRESSES = 4096;

export class ResolvedNames {
  private readonly byAddress = new Map<string, Set<string>>();

  remember(name: string, addresses: readonly string[]): void {
    for (const address of addresses) {
      let names = this.byAddress.get(address);
      if (names === undefined) {
        if (this.byAddress.size >= MAX_ADDRESSES) this.byAddress.delete(this.byAddress.keys().next().value!);
        names = new Set();
        this.byAddress.set(address, names);
      }
      names.add(name.toLowerCase().replace(/\.$/, ''));
    }
  }

  namesOf(address: string): string[] {
    return [...(this.byAddress.get(address) ?? [])];
  }
}
