// The seeded population a simulation replays: sender classes with the DNS facts they present
// (PTR names, forward confirmation, SPF records) and the retry habits they are documented to have
// (docs/simulation.md gives the sources), and a day of messages. Every attempt's time and client
// address depend only on (seed, message, attempt number), so each keying of a run sees the same
// trace up to the point where its decisions differ.
import { createHash } from 'node:crypto'
import { CLASS_IDS, type ClassId, type Mix } from './mix'
import { Random, seedOf } from './random'
import type { Zone } from './zone'

const MIN = 60_000
const HOUR = 60 * MIN
export const DAY_MS = 24 * HOUR

/** What a class is, for the report. */
export interface ClassInfo {
  readonly id: ClassId
  readonly spam: boolean
  readonly label: string
}

export const CLASSES: readonly ClassInfo[] = [
  { id: 'exchange_online', spam: false, label: 'Exchange Online' },
  { id: 'gmail', spam: false, label: 'Gmail' },
  { id: 'amazon_ses', spam: false, label: 'Amazon SES' },
  { id: 'esp_long_tail', spam: false, label: 'ESP / company cluster' },
  { id: 'company_mta', spam: false, label: 'single-address Postfix' },
  { id: 'pool_no_ptr', spam: false, label: 'pool without PTR' },
  { id: 'spam_no_retry', spam: true, label: 'spam, never retries' },
  { id: 'spam_same_address', spam: true, label: 'spam, retries same address' },
  { id: 'spam_botnet', spam: true, label: 'spam, retries via other bots' },
  { id: 'snowshoe', spam: true, label: 'snowshoe, sends once' },
]

function ipInt(ip: string): number {
  return ip.split('.').reduce((n, o) => n * 256 + Number(o), 0)
}
function intIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}
function inRange(cidr: string, r: Random): string {
  const [base = '', len = '32'] = cidr.split('/')
  const size = 2 ** (32 - Number(len))
  // Never the network's first or last address.
  return intIp(ipInt(base) + 1 + r.int(Math.max(1, size - 2)))
}
function octets(ip: string): number[] {
  return ip.split('.').map(Number)
}

// Published ranges (docs/simulation.md): Microsoft 365 endpoint set ID 10, Google's _netblocks,
// amazonses.com's SPF. The plugin's shipped providers file lists the same.
const EOP_RANGES = ['40.92.0.0/15', '40.107.0.0/16', '52.100.0.0/14', '104.47.0.0/17']
const GOOGLE_RANGES = ['209.85.128.0/17', '74.125.0.0/16', '173.194.0.0/16', '108.177.8.0/21', '64.233.160.0/19', '66.102.0.0/20', '72.14.192.0/18']
const SES_RANGES: readonly (readonly [string, string])[] = [
  ['54.240.0.0/18', 'us-west-2'],
  ['69.169.224.0/20', 'eu-west-1'],
]
/** Hosting space for the long tail, company MTAs, pools and snowshoe senders (distinct /8s per role). */
const HOSTING = ['185.0.0.0/8', '193.0.0.0/8', '195.0.0.0/8', '212.0.0.0/8', '217.0.0.0/8']
const SNOWSHOE = ['45.0.0.0/8', '5.0.0.0/8']
/** Access networks and the names their ISPs give customer lines (end-user names: never grouped). */
const ISPS: readonly { readonly space: string; readonly name: (ip: string) => string }[] = [
  { space: '73.0.0.0/8', name: (ip) => `c-${ip.replace(/\./g, '-')}.hsd1.ma.sim-cable.net` },
  { space: '86.0.0.0/8', name: (ip) => `dynamic-${ip.replace(/\./g, '-')}.dsl.sim-telecom.net` },
  { space: '98.0.0.0/8', name: (ip) => `cpe-${ip.replace(/\./g, '-')}.res.sim-broadband.com` },
]

/** One sender: a tenant, a user, an organisation's cluster, a bot. */
export interface Sender {
  readonly domain: string
  /** Its own addresses (empty: it sends from its provider's shared pool). */
  readonly ips: readonly string[]
  readonly helo: string
  readonly recipients: readonly number[]
  /** spam_botnet: the bot's ISP (its retries go through that ISP's other bots). */
  readonly isp?: number
}

export interface Attempt {
  readonly ip: string
  readonly helo: string
}

export interface Population {
  readonly seed: number
  readonly mix: Mix
  readonly zone: Zone
  readonly recipientDomain: string
  /** Messages in arrival order. */
  readonly count: number
  readonly cls: Uint8Array
  readonly sender: Uint32Array
  readonly recipient: Uint32Array
  readonly arrival: Float64Array
  readonly senders: readonly (readonly Sender[])[]
  /** Messages per class. */
  readonly perClass: readonly number[]
  sender_address(m: number): string
  recipient_address(m: number): string
  messageId(m: number): string
  /** SHA-256 (hex) of the message body: one message keeps its body over its retries. */
  bodyDigest(m: number): string
  /** Where attempt `k` (0 = first) of message `m` comes from. */
  attempt(m: number, k: number): Attempt
  /** When attempt `k + 1` comes, in ms after the first, or null: the sender gives up. */
  nextAfter(m: number, k: number, elapsedMs: number): number | null
}

export interface PopulationOptions {
  readonly seed: number
  readonly messages: number
  /** Arrivals are spread over this long (a day). */
  readonly spanMs?: number
}

export function buildPopulation(mix: Mix, opts: PopulationOptions): Population {
  const root = new Random(opts.seed)
  const span = opts.spanMs ?? DAY_MS
  const zone: Required<Zone> = { ptr: {}, a: {}, aaaa: {}, txt: {} }
  const used = new Set<string>()
  const unique = (make: () => string): string => {
    for (;;) {
      const ip = make()
      if (!used.has(ip)) {
        used.add(ip)
        return ip
      }
    }
  }
  const host = (ip: string, name: string | null, confirmed = true): void => {
    if (!name) return
    zone.ptr[ip] = [name]
    if (confirmed) zone.a[name] = [...(zone.a[name] ?? []), ip]
  }

  // Shared pools, their names and the SPF records that speak for them.
  const pr = root.fork(1)
  const eopPool = Array.from({ length: 4096 }, () => unique(() => inRange(pr.pick(EOP_RANGES), pr)))
  for (const ip of eopPool) {
    const [, b = 0, c = 0, d = 0] = octets(ip)
    host(ip, `mail-eopbgr${b}${String(c).padStart(3, '0')}${String(d).padStart(3, '0')}.outbound.protection.outlook.com`)
  }
  zone.txt['outlook.com'] = ['v=spf1 include:spf2.outlook.com -all']
  zone.txt['spf2.outlook.com'] = [`v=spf1 ${EOP_RANGES.map((r) => `ip4:${r}`).join(' ')} -all`]
  zone.txt['spf.protection.outlook.com'] = [`v=spf1 ${EOP_RANGES.map((r) => `ip4:${r}`).join(' ')} -all`]
  const gmailPool = Array.from({ length: 2048 }, () => unique(() => inRange(pr.pick(GOOGLE_RANGES), pr)))
  gmailPool.forEach((ip, i) => host(ip, `mail-gw${i}-f${octets(ip)[3]}.google.com`))
  zone.txt['gmail.com'] = ['v=spf1 redirect=_spf.google.com']
  zone.txt['_spf.google.com'] = ['v=spf1 include:_netblocks.google.com ~all']
  zone.txt['_netblocks.google.com'] = [`v=spf1 ${GOOGLE_RANGES.map((r) => `ip4:${r}`).join(' ')} ~all`]
  const sesPool = Array.from({ length: 1024 }, (_, i) => {
    const [range = '', region = ''] = SES_RANGES[i % SES_RANGES.length] ?? []
    const ip = unique(() => inRange(range, pr))
    const [, , c = 0, d = 0] = octets(ip)
    host(ip, `a${c}-${d}.smtp-out.${region}.amazonses.com`)
    return ip
  })
  zone.txt['amazonses.com'] = [`v=spf1 ${SES_RANGES.map(([r]) => `ip4:${r}`).join(' ')} -all`]

  // Messages per class and senders per class.
  const total = CLASS_IDS.reduce((s, id) => s + mix.classes[id].share, 0)
  const perClass = CLASS_IDS.map((id) => Math.round((mix.classes[id].share / total) * opts.messages))
  const nSenders = CLASS_IDS.map((id, c) => Math.max(perClass[c] ? 1 : 0, Math.ceil((perClass[c] ?? 0) / mix.classes[id].messages_per_sender)))
  const recipientsOf = (r: Random, n: number): number[] => Array.from({ length: n }, () => r.int(mix.recipients))
  const senders: Sender[][] = CLASS_IDS.map((id, c) => {
    const r = root.fork(100 + c)
    const n = nSenders[c] ?? 0
    const out: Sender[] = []
    for (let i = 0; i < n; i++) out.push(makeSender(id, i, r))
    return out
  })

  function makeSender(id: ClassId, i: number, r: Random): Sender {
    const rcpts = recipientsOf(r, 1 + r.int(3))
    switch (id) {
      case 'exchange_online': {
        const domain = `eo-tenant${i}.com`
        zone.txt[domain] = ['v=spf1 include:spf.protection.outlook.com -all']
        return { domain, ips: [], helo: `${r.pick(['EUR01', 'EUR05', 'NAM10', 'APC01'])}-obe.outbound.protection.outlook.com`, recipients: rcpts }
      }
      case 'gmail':
        return { domain: 'gmail.com', ips: [], helo: '', recipients: rcpts }
      case 'amazon_ses': {
        const domain = `ses-customer${i}.com`
        zone.txt[domain] = ['v=spf1 include:amazonses.com -all']
        return { domain, ips: [], helo: '', recipients: rcpts }
      }
      case 'esp_long_tail': {
        // 2 to 8 machines in 1 to 3 networks; half name them, half spell their addresses.
        const domain = `ltail${i}.com`
        const nets = Array.from({ length: 1 + r.int(3) }, () => inRange(r.pick(HOSTING), r).replace(/\.\d+$/, '.0/24'))
        const ips = Array.from({ length: 2 + r.int(7) }, () => unique(() => inRange(r.pick(nets), r)))
        const spells = r.chance(0.5)
        ips.forEach((ip, j) => host(ip, spells ? `out-${ip.replace(/\./g, '-')}.mail.${domain}` : `mta${j + 1}.mail.${domain}`))
        zone.txt[domain] = [`v=spf1 ${nets.map((n) => `ip4:${n}`).join(' ')} -all`]
        return { domain, ips, helo: `mail.${domain}`, recipients: rcpts }
      }
      case 'company_mta': {
        const domain = `co${i}.com`
        const ip = unique(() => inRange(r.pick(HOSTING), r))
        host(ip, `mail.${domain}`)
        if (r.chance(0.8)) zone.txt[domain] = [`v=spf1 ip4:${ip} -all`]
        return { domain, ips: [ip], helo: `mail.${domain}`, recipients: rcpts }
      }
      case 'pool_no_ptr': {
        const domain = `noptr${i}.com`
        const nets = Array.from({ length: 4 }, () => inRange(r.pick(HOSTING), r).replace(/\.\d+$/, '.0/24'))
        const ips = nets.flatMap((n) => [unique(() => inRange(n, r)), unique(() => inRange(n, r))])
        return { domain, ips, helo: `mailer.${domain}`, recipients: rcpts }
      }
      case 'snowshoe': {
        const domain = `snow${i}-offers.com`
        const ip = unique(() => inRange(r.pick(SNOWSHOE), r))
        host(ip, `mail.${domain}`)
        zone.txt[domain] = [`v=spf1 ip4:${ip} -all`]
        return { domain, ips: [ip], helo: `mail.${domain}`, recipients: [] }
      }
      case 'spam_no_retry':
      case 'spam_same_address':
      case 'spam_botnet': {
        // A bot on a residential line: 70% with the ISP's generic name, forward-confirmed.
        const isp = r.int(ISPS.length)
        const ispDef = ISPS[isp] ?? ISPS[0]
        if (!ispDef) throw new Error('no ISP')
        const ip = unique(() => inRange(ispDef.space, r))
        if (r.chance(0.7)) host(ip, ispDef.name(ip))
        return { domain: `deals${r.int(500)}-shop.com`, ips: [ip], helo: r.chance(0.5) ? ip : `user-pc${i}`, recipients: [], isp }
      }
    }
  }

  // Per ISP, the other bots a retry goes through: a botnet has thousands in an ISP's space.
  const br = root.fork(3)
  const botsByIsp: Attempt[][] = ISPS.map((isp) =>
    Array.from({ length: 1024 }, (_, j) => {
      const ip = unique(() => inRange(isp.space, br))
      if (br.chance(0.7)) host(ip, isp.name(ip))
      return { ip, helo: br.chance(0.5) ? ip : `user-pc-b${j}` }
    }),
  )

  // The day's messages, in arrival order.
  const mr = root.fork(7)
  const count = perClass.reduce((a, b) => a + b, 0)
  const arrivalRaw = new Float64Array(count)
  const clsRaw = new Uint8Array(count)
  let m = 0
  perClass.forEach((n, c) => {
    for (let j = 0; j < n; j++, m++) {
      clsRaw[m] = c
      arrivalRaw[m] = Math.floor(mr.next() * span)
    }
  })
  const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => (arrivalRaw[a] ?? 0) - (arrivalRaw[b] ?? 0))
  const cls = new Uint8Array(count)
  const arrival = new Float64Array(count)
  const sender = new Uint32Array(count)
  const recipient = new Uint32Array(count)
  order.forEach((src, i) => {
    const c = clsRaw[src] ?? 0
    cls[i] = c
    arrival[i] = arrivalRaw[src] ?? 0
    const s = mr.int(nSenders[c] ?? 1)
    sender[i] = s
    const rcpts = senders[c]?.[s]?.recipients ?? []
    recipient[i] = rcpts.length ? (rcpts[mr.int(rcpts.length)] ?? 0) : mr.int(mix.recipients)
  })

  const classOf = (i: number): ClassId => CLASS_IDS[cls[i] ?? 0] ?? 'spam_no_retry'
  const senderOf = (i: number): Sender => senders[cls[i] ?? 0]?.[sender[i] ?? 0] ?? { domain: 'unknown.com', ips: [], helo: '', recipients: [] }
  const rnd = (i: number, k: number, salt = 0): Random => new Random(seedOf(opts.seed, i, k, salt))
  // Per message, whether its SES sender caps attempts at 300 s.
  const capped = (i: number): boolean => rnd(i, 0, 9).chance(mix.classes.amazon_ses.capped_fraction ?? 0)

  return {
    seed: opts.seed,
    mix,
    zone,
    recipientDomain: 'sim-site.net',
    count,
    cls,
    sender,
    recipient,
    arrival,
    senders,
    perClass,
    sender_address(i) {
      const s = senderOf(i)
      switch (classOf(i)) {
        case 'gmail':
          return `user${sender[i]}@gmail.com`
        case 'spam_no_retry':
        case 'spam_same_address':
        case 'spam_botnet':
        case 'snowshoe':
          return `${['info', 'promo', 'sales', 'news', 'offer'][rnd(i, 0, 3).int(5)]}${rnd(i, 0, 4).int(1000)}@${s.domain}`
        default:
          return `${['news', 'noreply', 'billing', 'anna', 'support'][(sender[i] ?? 0) % 5]}@${s.domain}`
      }
    },
    recipient_address(i) {
      return `mailbox${recipient[i]}@sim-site.net`
    },
    messageId(i) {
      return `<m${i}.${opts.seed}@${senderOf(i).domain}>`
    },
    bodyDigest(i) {
      return createHash('sha256').update(`body of message ${i} seed ${opts.seed}`).digest('hex')
    },
    attempt(i, k) {
      const s = senderOf(i)
      const r = rnd(i, k)
      switch (classOf(i)) {
        case 'exchange_online':
          // Every attempt from another machine of the pool.
          return { ip: r.pick(eopPool), helo: s.helo }
        case 'gmail': {
          // Up to 7 machines in turn, each in another network.
          const ip = gmailPool[(rnd(i, 0, 5).int(gmailPool.length) + (k % 7) * 293) % gmailPool.length] ?? ''
          return { ip, helo: zone.ptr[ip]?.[0] ?? 'mail.google.com' }
        }
        case 'amazon_ses': {
          const ip = r.pick(sesPool)
          return { ip, helo: zone.ptr[ip]?.[0] ?? 'amazonses.com' }
        }
        case 'esp_long_tail':
        case 'pool_no_ptr': {
          const ip = r.pick(s.ips)
          return { ip, helo: zone.ptr[ip]?.[0] ?? s.helo }
        }
        case 'spam_botnet': {
          if (k === 0) return { ip: s.ips[0] ?? '', helo: s.helo }
          return r.pick(botsByIsp[s.isp ?? 0] ?? [])
        }
        default:
          return { ip: s.ips[0] ?? '', helo: s.helo }
      }
    },
    nextAfter(i, k, elapsed) {
      const r = rnd(i, k + 1, 1)
      const within = (next: number, giveUpMs: number): number | null => (next <= giveUpMs ? next : null)
      const postfix = (): number => Math.min(300_000 * 2 ** k, 4_000_000) + r.between(0, 300_000)
      switch (classOf(i)) {
        case 'exchange_online':
          // Within about 15 minutes first, later up to an hour apart; gives up at 24 h.
          return within(elapsed + (k === 0 ? r.between(1, 15) * MIN : k === 1 ? r.between(5, 20) * MIN : r.between(15, 60) * MIN), DAY_MS)
        case 'gmail': {
          // About 6, 29 and 57 minutes after the first, then hourly.
          const at = [6, 29, 57][k]
          return within(at !== undefined ? r.jitter(at, 0.15) * MIN : elapsed + r.jitter(60, 0.15) * MIN, 2 * DAY_MS)
        }
        case 'amazon_ses':
          return within(elapsed + r.jitter(Math.min(60_000 * 2 ** k, 30 * MIN), 0.2), capped(i) ? 300_000 : 14 * HOUR)
        case 'esp_long_tail':
          return within(elapsed + r.jitter(Math.min(600_000 * 2 ** k, HOUR), 0.2), 3 * DAY_MS)
        case 'company_mta':
        case 'spam_same_address':
          // Postfix: minimal_backoff_time 300 s doubling to maximal_backoff_time 4000 s, tried at
          // the next queue run (queue_run_delay 300 s); bounced after maximal_queue_lifetime 5 d.
          return within(elapsed + postfix(), 5 * DAY_MS)
        case 'pool_no_ptr':
          return within(elapsed + r.between(10, 15) * MIN, DAY_MS)
        case 'spam_botnet':
          return k < 5 ? elapsed + r.between(15, 60) * MIN : null
        case 'spam_no_retry':
        case 'snowshoe':
          return null
      }
    },
  }
}
