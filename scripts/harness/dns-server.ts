// An authoritative DNS server on loopback for the tests: PTR, A, AAAA and TXT from a zone the
// test declares, NXDOMAIN for anything else, every query logged. Haraka is pointed at it by
// dns-preload.js (beside this file), so no test ever asks the machine's resolver.
import dgram from 'node:dgram'
import path from 'node:path'
import dnsPacket from 'dns-packet'
import { parseIp, reverseName } from '../../plugins/smart-greylist/core/ip'
import { packageRoot } from '../../plugins/smart-greylist/setup'

/**
 * The preload that points every resolver of a process at one server (also those plugins make
 * themselves). Plain JavaScript, so node loads it with --require: found from the package root,
 * as this file also runs compiled, from dist/.
 */
export const DNS_PRELOAD = path.join(packageRoot(__dirname), 'scripts', 'harness', 'dns-preload.js')

/** Points this process's resolvers at `server` (host:port). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const { useDnsServer } = require(DNS_PRELOAD) as { useDnsServer(this: void, server: string): void }

export interface Zone {
  ptr?: Record<string, string[]>
  a?: Record<string, string[]>
  aaaa?: Record<string, string[]>
  txt?: Record<string, string[]>
}

export class DnsServer {
  readonly queries: { name: string; type: string }[] = []
  /** While true, queries get no answer at all (a server that is down or black-holed). */
  silent = false
  /** Each answer is sent this long after its query (a slow server, or a long path to it). */
  delayMs = 0
  private ptr = new Map<string, string[]>()
  private records = new Map<string, Map<string, string[]>>()
  private constructor(
    private readonly sock: dgram.Socket,
    readonly port: number,
  ) {}

  static async start(zone: Zone = {}): Promise<DnsServer> {
    const sock = dgram.createSocket('udp4')
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve))
    const server = new DnsServer(sock, sock.address().port)
    server.add(zone)
    sock.on('message', (msg, rinfo) => server.answer(msg, rinfo))
    return server
  }

  add(zone: Zone): void {
    for (const [ip, names] of Object.entries(zone.ptr ?? {})) this.ptr.set(reverseName(parseIp(ip)!), names)
    for (const type of ['a', 'aaaa', 'txt'] as const) {
      for (const [name, values] of Object.entries(zone[type] ?? {})) {
        const key = name.toLowerCase()
        const byType = this.records.get(key) ?? new Map<string, string[]>()
        byType.set(type.toUpperCase(), values)
        this.records.set(key, byType)
      }
    }
  }

  private answer(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    let query: dnsPacket.Packet
    try {
      query = dnsPacket.decode(msg)
    } catch {
      return
    }
    const q = query.questions?.[0]
    if (!q || this.silent) return
    const name = q.name.toLowerCase()
    this.queries.push({ name, type: q.type })
    const answers: dnsPacket.Answer[] = []
    let exists = false
    if (this.ptr.has(name)) {
      exists = true
      if (q.type === 'PTR') for (const data of this.ptr.get(name)!) answers.push({ type: 'PTR', name: q.name, ttl: 60, data })
    }
    // A name with no records of its own takes those of the closest `*.` wildcard above it.
    const labels = name.split('.')
    const byType = this.records.get(name) ?? labels.map((_, i) => this.records.get(`*.${labels.slice(i + 1).join('.')}`)).find(Boolean)
    if (byType) {
      exists = true
      for (const data of byType.get(q.type) ?? []) {
        if (q.type === 'A' || q.type === 'AAAA') answers.push({ type: q.type, name: q.name, ttl: 60, data })
        if (q.type === 'TXT') answers.push({ type: 'TXT', name: q.name, ttl: 60, data: [data] })
      }
    }
    const reply = dnsPacket.encode({
      id: query.id,
      type: 'response',
      flags: dnsPacket.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) | (exists ? 0 : 3),
      questions: query.questions,
      answers,
    })
    const send = (): void => {
      try {
        this.sock.send(reply, rinfo.port, rinfo.address, () => undefined)
      } catch {
        // closed while the answer was delayed
      }
    }
    if (this.delayMs > 0) setTimeout(send, this.delayMs)
    else send()
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.sock.close(() => resolve()))
  }
}
