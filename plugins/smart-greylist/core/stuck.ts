// Senders stuck the way Exchange Online used to be (the seed's symptom): one (sender domain,
// recipient) deferred again and again within the retry window, each attempt from another identity
// or network, and never accepted. Pure: the tuple records come from the caller (a SCAN of Redis).
import { domainOf } from './envelope'
import type { OrgDomainFn } from './identity'
import { nameEmbedsIp, nameKind, perMachineLabel, type NameKind } from './sender-names'
import { parseIp, subnetOf } from './ip'
import { safeField } from './text'

/** A tuple record as Redis holds it (keys.ts), read back. */
export interface TupleSeen {
  readonly firstSeen: number
  readonly passedAt: number | null
  readonly identity: string
  readonly sender: string
  readonly recipient: string
  /** The client's address and rDNS name (`?name`: not forward-confirmed) of the deferred attempt; '' when not stored (before 0.7). */
  readonly client: string
  readonly rdns: string
}

export interface StuckPair {
  readonly senderDomain: string
  readonly recipient: string
  /** Tuples of the pair deferred and still waiting for a retry that matches them. */
  readonly deferrals: number
  readonly identities: readonly string[]
  /** The clients' IPv4 /24 or IPv6 /64 networks. */
  readonly networks: readonly string[]
  /** rDNS names as stored: `?name` when not forward-confirmed. */
  readonly names: readonly string[]
  readonly firstSeen: number
  readonly lastSeen: number
  /** The whitelist line or setting that would let this sender through, when one fits safely. */
  readonly suggestion: string | null
  /** Why there is no suggestion, or what to check before taking it. */
  readonly note: string | null
}

/** Deferrals a pair needs to count as stuck, unless the command is told otherwise (the metric's too). */
export const STUCK_MIN_DEFERRALS = 3

export interface StuckOptions {
  /** Deferrals (pending tuples) a pair needs to count as stuck. */
  readonly minDeferrals: number
  readonly windowMs: number
  readonly orgDomain: OrgDomainFn
  /** `[main] net_identity_greylist`: message already lets a message's retry from any address pass. */
  readonly netIdentityGreylist: string
}

/**
 * The stuck pairs, worst first (most identities, then most deferrals, then the longest wait).
 * A pair with a tuple accepted within the window is not stuck: its mail got through.
 */
export function stuckPairs(tuples: Iterable<TupleSeen>, now: number, o: StuckOptions): StuckPair[] {
  const finder = new StuckFinder(now, o)
  for (const t of tuples) finder.add(t)
  return finder.pairs()
}

/**
 * The same, fed a record at a time (a SCAN's batches): it keeps only the window's pending tuples
 * and the pairs that passed in it, not every record.
 */
export class StuckFinder {
  private readonly since: number
  private readonly groups = new Map<string, TupleSeen[]>()
  private readonly through = new Set<string>()

  constructor(
    private readonly now: number,
    private readonly o: StuckOptions,
  ) {
    this.since = now - o.windowMs
  }

  add(t: TupleSeen): void {
    const pair = `${domainOf(t.sender) ?? '<>'}\0${t.recipient}`
    if (t.passedAt !== null) {
      if (t.passedAt >= this.since) this.through.add(pair)
      return
    }
    if (t.firstSeen < this.since || t.firstSeen > this.now) return
    const g = this.groups.get(pair)
    if (g) g.push(t)
    else this.groups.set(pair, [t])
  }

  pairs(): StuckPair[] {
    const out: StuckPair[] = []
    for (const [pair, unordered] of this.groups) {
      if (this.through.has(pair) || unordered.length < this.o.minDeferrals) continue
      // In the order the attempts came (a SCAN's order is none).
      const g = [...unordered].sort((a, b) => a.firstSeen - b.firstSeen)
      const identities = distinct(g.map((t) => t.identity))
      const networks = distinct(g.map((t) => networkOf(t.client)).filter((n): n is string => n !== null))
      if (identities.length < 2 && networks.length < 2) continue
      const [senderDomain = '', recipient = ''] = pair.split('\0')
      const names = distinct(g.map((t) => t.rdns).filter(Boolean))
      const firstSeen = Math.min(...g.map((t) => t.firstSeen))
      const lastSeen = Math.max(...g.map((t) => t.firstSeen))
      out.push({ senderDomain, recipient, deferrals: g.length, identities, networks, names, firstSeen, lastSeen, ...advice(g, identities, this.o) })
    }
    return out.sort((a, b) => b.identities.length - a.identities.length || b.deferrals - a.deferrals || a.firstSeen - b.firstSeen)
  }
}

/** What would let the pair through: a host: line when the names allow one, else the setting for weak identities. */
function advice(g: readonly TupleSeen[], identities: readonly string[], o: StuckOptions): { suggestion: string | null; note: string | null } {
  const named = g.filter((t) => t.rdns)
  const confirmed = named.filter((t) => !t.rdns.startsWith('?'))
  const suffix = commonSuffix(named.map((t) => t.rdns.replace(/^\?/, '')))
  const org = suffix ? o.orgDomain(suffix) : null
  const usable = suffix !== null && org !== null && (suffix === org || suffix.endsWith(`.${org}`))
  // The suffix is of names the senders' DNS chose: shown through safeField, as every such name is.
  const shown = suffix === null ? '' : safeField(suffix)
  if (usable && confirmed.length === g.length) {
    // An access network's customers: a host: line would let every bot of the ISP in.
    if (confirmed.some((t) => nameKindText(t.rdns, t.client, o.orgDomain) === 'end_user')) {
      return { suggestion: null, note: `the names are an access network's customer lines under ${shown}: no whitelist line is safe for them` }
    }
    const perMachine = confirmed.some((t) => perMachineLabel(t.rdns) || nameEmbedsIpText(t.rdns, t.client))
    return {
      suggestion: `host:*.${shown}`,
      note: perMachine ? `the names number machines: make sure ${shown} sends mail and is not an access network` : null,
    }
  }
  if (usable && named.length) {
    return { suggestion: null, note: `the rDNS names share ${shown} but not all are forward-confirmed, so a host: entry would not match them` }
  }
  if (identities.every((i) => i.startsWith('net:'))) {
    return o.netIdentityGreylist === 'recipient'
      ? {
          suggestion: '[main] net_identity_greylist = message',
          note: 'no SPF, rDNS or provider names this sender: with net_identity_greylist = message the retry of a message passes from any address',
        }
      : { suggestion: null, note: 'no SPF, rDNS or provider names this sender, and its messages do not come back the same (net_identity_greylist = message)' }
  }
  return { suggestion: null, note: 'the identities share no name a whitelist line could hold' }
}

function nameKindText(name: string, client: string, orgDomain: OrgDomainFn): NameKind | null {
  const ip = parseIp(client)
  return ip ? nameKind(name, ip, orgDomain) : null
}

function nameEmbedsIpText(name: string, client: string): boolean {
  const ip = parseIp(client)
  return ip !== null && nameEmbedsIp(name, ip)
}

/** The longest run of trailing labels all names share (null when they share none, or there are none). */
export function commonSuffix(names: readonly string[]): string | null {
  const split = names.map((n) => n.toLowerCase().replace(/\.$/, '').split('.').reverse())
  const first = split[0]
  if (!first) return null
  let n = 0
  while (n < first.length && split.every((labels) => labels[n] === first[n])) n++
  // A name shared whole is one host: the suffix is its parent.
  if (split.every((labels) => labels.length === n)) n--
  return n > 0 ? first.slice(0, n).reverse().join('.') : null
}

function networkOf(client: string): string | null {
  const ip = parseIp(client)
  return ip ? subnetOf(ip, ip.kind() === 'ipv4' ? 24 : 64) : null
}

function distinct(values: readonly string[]): string[] {
  return [...new Set(values)]
}
