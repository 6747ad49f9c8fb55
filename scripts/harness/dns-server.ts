// An authoritative DNS server on loopback for the tests: PTR, A, AAAA and TXT from a zone the
// test declares, NXDOMAIN for anything else, every query logged. Haraka is pointed at it by
// dns-preload.js (beside this file), so no test ever asks the machine's resolver.
import dgram from 'node:dgram'
import path from 'node:path'
import dnsPacket from 'dns-packet'
import { packageRoot } from '../../plugins/smart-greylist/setup'
import { ZoneResolver, type Zone } from '../../cli/sim/zone'

export type { Zone }

/**
 * The preload that points every resolver of a process at one server (also those plugins make
 * themselves). Plain JavaScript, so node loads it with --require: found from the package root,
 * as this file also runs compiled, from dist/.
 */
export const DNS_PRELOAD = path.join(packageRoot(__dirname), 'scripts', 'harness', 'dns-preload.js')

/** Points this process's resolvers at `server` (host:port). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const { useDnsServer } = require(DNS_PRELOAD) as { useDnsServer(this: void, server: string): void }

export class DnsServer {
  readonly queries: { name: string; type: string }[] = []
  /** While true, queries get no answer at all (a server that is down or black-holed). */
  silent = false
  /** Each answer is sent this long after its query (a slow server, or a long path to it). */
  delayMs = 0
  /** The records, and what a server answers from them: the simulator's in-memory DNS, one way for both. */
  private readonly zone = new ZoneResolver()
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
    this.zone.add(zone)
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
    const { exists, values } = this.zone.answer(name, q.type)
    for (const data of values) {
      if (q.type === 'PTR' || q.type === 'A' || q.type === 'AAAA') answers.push({ type: q.type, name: q.name, ttl: 60, data })
      if (q.type === 'TXT') answers.push({ type: 'TXT', name: q.name, ttl: 60, data: [data] })
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
