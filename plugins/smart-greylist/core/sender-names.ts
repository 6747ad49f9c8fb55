// Whether a forward-confirmed rDNS name speaks for a mail sender's machines or for an access
// network's end users. Grouping retries under a `host:` identity lets every address of that
// domain inherit a retry: right for Exchange Online, SES, Gmail or an ESP, whose names are the
// sender's own; wrong for an access ISP, whose generic names put a whole botnet under one domain.
// The ISP, not the bot, writes those names, so they look alike everywhere: a label that spells the
// client's address (or numbers the machine), next to words for the kind of line. Pure.
import type { OrgDomainFn } from './identity'
import type { ParsedIp } from './ip'
import type { Breadth } from './spf-record'

/**
 * How much a domain's SPF record may authorise in total and still vouch for its per-address
 * names. Wider than a sender identity's ([identity] spf_widest_*, a /16): the question is not
 * whether a bot anywhere could borrow the domain, only the client's own name is asked, but whether
 * the domain says it sends mail from this machine. Every range Exchange Online sends from is
 * 2^19 addresses, Google's and SES's less; an access network that lists its customers' space
 * lists far more, and a pass-qualified `all` or `ptr`, or a record that passes probes, vouches
 * for nothing.
 */
export const VOUCH_BREADTH: Breadth = { widestIpv4: 12, widestIpv6: 28, refusePtr: true }

/**
 * Words access networks put into their customers' generic names (`c-73-12-34-56.hsd1.ma.…`,
 * `dynamic-85-1-2-3.dsl.…`, `cpe-70-1-2-3.nc.res.rr.com`, `p5dc3a1b2.dip0.t-ipconnect.de`). Read
 * as whole words of the labels below the organisational domain, digits stripped (`hsd1` is
 * `hsd`); no word a hex-spelled address can produce (only a–f letters) is listed, so `bb` is not.
 */
export const END_USER_WORDS: ReadonlySet<string> = new Set([
  'abo', // wanadoo.fr subscribers
  'adsl',
  'broadband',
  'cable',
  'cgnat',
  'client',
  'clients',
  'cpe',
  'cust',
  'customer',
  'customers',
  'dhcp',
  'dial',
  'dialup',
  'dip', // t-ipconnect.de: dynamic IP
  'dsl',
  'dyn',
  'dynamic',
  'dynip',
  'ftth',
  'fttc',
  'fttx',
  'home',
  'hsd', // comcast: high-speed data
  'hsi',
  'lte',
  'mobile',
  'pool',
  'ppp',
  'pppoe',
  'res',
  'resi',
  'residential',
  'sdsl',
  'subscriber',
  'user',
  'users',
  'vdsl',
  'wireless',
  'xdsl',
  // Seen in the wild since: Free's `subs.proxad.net`, Cablecom's `dclient`, Comcast Business's
  // `hfc`, Telefonica's `dynamicip`, Vodafone's `pools`, Videotron's `modemcable`, and others'.
  'aftr',
  'bredband',
  'broad',
  'cablemodem',
  'cliente',
  'clientes',
  'dclient',
  'dialin',
  'dinamic',
  'dinamica',
  'dinamico',
  'dorm',
  'dynamicip',
  'fios',
  'flets',
  'fttb',
  'fttn',
  'fttp',
  'gpon',
  'gprs',
  'hfc',
  'ipoe',
  'kunde',
  'kunden',
  'modemcable',
  'pools',
  'resnet',
  'subs',
  'umts',
  'wifi',
  'wimax',
  'wlan',
])

/**
 * - `end_user`: an address-spelling name with end-user words (or the client is in a policy block
 *   list): never grouped.
 * - `per_address`: the name spells the address or numbers the machine, with nothing to say whose
 *   line it is, or has end-user words without spelling the address (a modem's MAC, a customer
 *   number: `cpe1c1b0d9e8f7a-….cpe.net.cable.…`): grouped only when the name's domain vouches for
 *   the client (its SPF record).
 * - `named`: a name somebody chose for a machine (`mta12.esp.example`): grouped.
 */
export type NameKind = 'end_user' | 'per_address' | 'named'

export function nameKind(name: string, ip: ParsedIp, orgDomain: OrgDomainFn): NameKind {
  const own = ownLabels(name, orgDomain)
  const words = own.flatMap((l) => l.split(/[^a-z]+/)).filter(Boolean)
  const endUser = words.some((w) => END_USER_WORDS.has(w))
  if (!spellsAddress(name, own, ip)) return endUser ? 'per_address' : 'named'
  return endUser ? 'end_user' : 'per_address'
}

/** The labels below the organisational domain (all but the last two when the suffix is unknown). */
function ownLabels(name: string, orgDomain: OrgDomainFn): string[] {
  const host = name.toLowerCase().replace(/\.$/, '')
  const org = orgDomain(host)
  const labels = host.split('.')
  const keep = org && host !== org && host.endsWith(`.${org}`) ? labels.length - org.split('.').length : org === host ? 0 : labels.length - 2
  return labels.slice(0, Math.max(0, keep))
}

function spellsAddress(name: string, own: readonly string[], ip: ParsedIp): boolean {
  if (nameEmbedsIp(name, ip) || perMachineLabel(name)) return true
  if (ip.kind() !== 'ipv4') return own.some((l) => IPV6_GROUPS.test(l))
  // Across labels too: `static.56.34.12.88.clients.your-server.de`, `12.34.56.78.dyn.user.…`;
  // as numbers, so zero-padded octets count (`syn-072-012-034-056.res.spectrum.com`).
  const [, , c = 0, d = 0] = ip.toByteArray()
  const runs = own
    .join('.')
    .split(/[^0-9]+/)
    .filter(Boolean)
    .map(Number)
  return runs.some((r, i) => (r === c && runs[i + 1] === d) || (r === d && runs[i + 1] === c))
}

const IPV6_GROUPS = /(?:[0-9a-f]{1,4}-){3,}[0-9a-f]{1,4}/

/** A first label that numbers machines: a run of 4+ digits, or 8 hex characters (an address). */
export function perMachineLabel(name: string): boolean {
  const first = firstLabel(name)
  return /[0-9]{4,}/.test(first) || /(?:^|[^0-9a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{8}(?:$|[^0-9a-f])/.test(first)
}

/**
 * Whether a name's first label spells the address: `1-2-3-4.dyn…`, `a8-12.smtp-out…` for
 * x.x.8.12, `mail-eopbgr220092…` for x.x.22.92. Such names are per-address pool names.
 */
export function nameEmbedsIp(name: string, ip: ParsedIp): boolean {
  const first = firstLabel(name)
  if (ip.kind() !== 'ipv4') return IPV6_GROUPS.test(first)
  const bytes = ip.toByteArray()
  // The whole address in hex, whatever precedes it (`d54c2deb3.access.telenet.be`).
  if (first.includes(bytes.map((b) => b.toString(16).padStart(2, '0')).join(''))) return true
  const [, , c = '', d = ''] = bytes.map(String)
  const runs = first.split(/[^0-9]+/).filter(Boolean)
  if (runs.some((r, i) => Number(r) === Number(c) && Number(runs[i + 1]) === Number(d))) return true
  const packed = [c + d.padStart(3, '0'), c + d.padStart(4, '0'), c.padStart(3, '0') + d.padStart(3, '0')]
  return runs.some((r) => packed.some((p) => r.endsWith(p)))
}

function firstLabel(name: string): string {
  return name.toLowerCase().split('.', 1)[0] ?? ''
}

/**
 * The domains that may vouch for a per-address name, the organisational domain first (where a
 * sender publishes SPF: `amazonses.com`, `outlook.com`, `google.com`), then each one below it down
 * to the name's parent; at most `max`.
 */
export function vouchingDomains(parent: string, orgDomain: OrgDomainFn, max = 3): string[] {
  const org = orgDomain(parent)
  if (!org) return []
  const out = [org]
  let d = parent
  const below: string[] = []
  while (d !== org && d.endsWith(`.${org}`)) {
    below.push(d)
    d = d.slice(d.indexOf('.') + 1)
  }
  return [...out, ...below.reverse()].slice(0, max)
}
