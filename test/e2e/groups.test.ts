// End to end: groups no one can widen. Bots of access networks retrying one another's messages
// stay deferred, while the big senders' pools and ESPs whose retries come from many addresses
// pass at their first retry, with the shipped provider list switched off so the rDNS does it all.
// A real Haraka, Redis and DNS server on loopback; clients are presented through PROXY headers.
import assert from 'node:assert/strict'
import { deliver, type Envelope } from '../../scripts/harness/smtp'
import type { Zone } from '../../scripts/harness/dns-server'
import { reverseName, parseIp } from '../../plugins/smart-greylist/core/ip'
import { useStack } from '../helpers/stack'
import { sleep } from '../helpers/wait'
import { EXCHANGE_IPS, exchangeZone } from '../helpers/world'

const DELAY_MS = 1000
const INI = '[main]\ndelay=1\nretry_window=60\n[whitelist]\nproviders=false\n[identity]\npools=false\n[select]\nzones=zen.spamhaus.org\n'

/** A forward-confirmed name for each address. */
function named(zone: Zone, pairs: readonly (readonly [ip: string, name: string])[]): void {
  for (const [ip, name] of pairs) {
    zone.ptr![ip] = [name]
    const family = ip.includes(':') ? 'aaaa' : 'a'
    zone[family] = { ...zone[family], [name]: [ip] }
  }
}

// An access network's generic names, and its SPF lists all of its customers' /12: its words
// still keep the names from vouching for a group.
const CABLE_BOTS = ['73.1.12.34', '73.5.201.7', '73.9.44.180', '73.14.3.99'] as const
const cableName = (ip: string): string => `c-${ip.replace(/\./g, '-')}.hsd1.ma.example-cable.net`
// Another's, with nothing that tells, and no SPF: the names spell the address, so nothing vouches.
const TELCO_BOTS = ['99.12.34.56', '99.40.7.8', '99.77.120.3'] as const
const telcoName = (ip: string): string => `${ip.replace(/\./g, '-')}.lightspeed.example-telco.net`
// Another's, whose SPF lists a whole /8: too wide to vouch for anything.
const WIDE_BOTS = ['101.40.1.2', '101.41.3.4', '101.99.7.8'] as const
const wideName = (ip: string): string => `host${ip.replace(/\./g, '-')}.static.example-telco2.net`
// Chosen names, but a policy block list says the addresses are end-user space.
const PBL_BOTS = [
  ['81.10.4.5', 'alpha.smallbiz-example.net'],
  ['81.22.9.6', 'beta.smallbiz-example.net'],
] as const

// One account sends from one region; its retries come from any address of it.
const SES = [
  ['54.240.8.12', 'a8-12.smtp-out.us-west-2.amazonses.com'],
  ['54.240.27.5', 'a27-5.smtp-out.us-west-2.amazonses.com'],
  ['54.240.40.201', 'a40-201.smtp-out.us-west-2.amazonses.com'],
  ['69.169.231.70', 'a231-70.smtp-out.us-west-2.amazonses.com'],
  ['69.169.225.3', 'a225-3.smtp-out.us-west-2.amazonses.com'],
  ['54.240.60.77', 'a60-77.smtp-out.us-west-2.amazonses.com'],
] as const
const GMAIL_V6 = [
  ['2607:f8b0:4864:20::1130', 'mail-yw1-x1130.google.com'],
  ['2a00:1450:4864:21::62d', 'mail-ej1-x62d.google.com'],
  ['2607:f8b0:4001:c05::236', 'mail-io1-xd36.google.com'],
  ['2a00:1450:4010:c07::12a', 'mail-lf1-x12a.google.com'],
] as const
// An ESP no list names whose names spell their addresses, in six networks; its domain's SPF lists them.
const SPELLED_ESP = ['85.214.130.5', '62.75.200.17', '91.121.50.9', '151.80.33.4', '188.165.9.200', '46.105.77.61'] as const
const spelledName = (ip: string): string => `o-${ip.replace(/\./g, '-')}.out.mailer-esp.com`
// One whose names are opaque, in six networks, with no SPF at all.
const OPAQUE_ESP = ['5.9.10.11', '78.46.2.3', '136.243.7.8', '144.76.9.10', '176.9.12.13', '213.239.5.6'] as const
const opaqueName = (ip: string): string => `mta${OPAQUE_ESP.indexOf(ip as (typeof OPAQUE_ESP)[number]) + 1}.bulk.opaque-esp.net`

function world(): Zone {
  const zone: Zone = {
    ptr: {},
    a: {},
    aaaa: {},
    txt: {
      'example-cable.net': ['v=spf1 ip4:73.0.0.0/12 -all'],
      'example-telco2.net': ['v=spf1 ip4:101.0.0.0/8 -all'],
      'amazonses.com': ['v=spf1 ip4:54.240.0.0/18 ip4:69.169.224.0/20 -all'],
      'google.com': ['v=spf1 include:_netblocks2.google.com -all'],
      '_netblocks2.google.com': ['v=spf1 ip6:2607:f8b0:4000::/36 ip6:2a00:1450:4000::/36 -all'],
      'mailer-esp.com': [`v=spf1 ${SPELLED_ESP.map((ip) => `ip4:${ip.replace(/\.\d+$/, '.0')}/24`).join(' ')} -all`],
    },
  }
  named(
    zone,
    CABLE_BOTS.map((ip) => [ip, cableName(ip)] as const),
  )
  named(
    zone,
    TELCO_BOTS.map((ip) => [ip, telcoName(ip)] as const),
  )
  named(
    zone,
    WIDE_BOTS.map((ip) => [ip, wideName(ip)] as const),
  )
  named(zone, PBL_BOTS)
  named(zone, SES)
  named(zone, GMAIL_V6)
  named(
    zone,
    SPELLED_ESP.map((ip) => [ip, spelledName(ip)] as const),
  )
  named(
    zone,
    OPAQUE_ESP.map((ip) => [ip, opaqueName(ip)] as const),
  )
  // zen.spamhaus.org's PBL answer for the two.
  for (const [ip] of PBL_BOTS) zone.a![`${reverseName(parseIp(ip)!).replace(/\.in-addr\.arpa$/, '')}.zen.spamhaus.org`] = ['127.0.0.10']
  return zone
}

describe('smart-greylist groups no one can widen', function () {
  this.timeout(60_000)
  const stack = useStack({ zones: [world(), exchangeZone()], ini: INI })
  const line = (from: string, n: number): string => stack.haraka.linesMatching(new RegExp(`from=<${from.replace(/[.+]/g, '\\$&')}>`))[n] ?? ''

  /** One envelope: first from `ips[0]`, then after the delay from each other address; the RCPT codes. */
  async function retried(ips: readonly string[], env: Omit<Envelope, 'clientIp'>): Promise<number[]> {
    const codes = [(await deliver(stack.haraka.port, { ...env, clientIp: ips[0] })).rcpt[0].code]
    await sleep(DELAY_MS + 200)
    for (const ip of ips.slice(1)) codes.push((await deliver(stack.haraka.port, { ...env, clientIp: ip })).rcpt[0].code)
    return codes
  }

  it("four bots of an access ISP retrying one another's message are all deferred, though its SPF lists them", async () => {
    const from = 'promo@spam-sender.com'
    assert.deepEqual(await retried(CABLE_BOTS, { helo: 'localhost', from, to: ['victim1@example.com'] }), [451, 451, 451, 451])
    for (let i = 0; i < 4; i++)
      assert.match(line(from, i), /defer reason=new identity=net:73\.\d+\.\d+\.0\/24 identity_reason=spf_none,rdns_end_user,pools_off /)
  })

  it("bots whose ISP's names only spell their addresses, with no SPF, are all deferred", async () => {
    const from = 'deals@spam-sender2.com'
    assert.deepEqual(await retried(TELCO_BOTS, { from, to: ['victim2@example.com'] }), [451, 451, 451])
    assert.match(line(from, 1), /identity=net:99\.40\.7\.0\/24 identity_reason=spf_none,rdns_unvouched,pools_off /)
  })

  it('bots whose ISP vouches for a whole /8 in SPF are all deferred', async () => {
    const from = 'cheap@spam-sender4.com'
    assert.deepEqual(await retried(WIDE_BOTS, { from, to: ['victim4@example.com'] }), [451, 451, 451])
    assert.match(line(from, 2), /identity=net:101\.99\.7\.0\/24 identity_reason=spf_none,rdns_vouch_permissive,pools_off /)
  })

  it('bots a policy block list names are deferred even with names of their own', async () => {
    const from = 'win@spam-sender3.com'
    assert.deepEqual(
      await retried(
        PBL_BOTS.map(([ip]) => ip),
        { from, to: ['victim3@example.com'] },
      ),
      [451, 451],
    )
    assert.match(line(from, 1), /identity=net:81\.22\.9\.0\/24 identity_reason=spf_none,rdns_policy_listed,pools_off /)
  })

  for (const [what, ips, from, identity] of [
    [
      'six Exchange Online addresses with production names',
      EXCHANGE_IPS,
      'alice@contoso-tenant.com',
      'host:outbound.protection.outlook.com identity_reason=fcrdns_spf',
    ],
    ['six SES addresses in six networks', SES.map(([ip]) => ip), 'orders@ses-customer.com', 'host:smtp-out.us-west-2.amazonses.com identity_reason=fcrdns_spf'],
    ['a Gmail IPv6 pool in four networks', GMAIL_V6.map(([ip]) => ip), 'friend@gmail-user.com', 'host:google.com identity_reason=fcrdns_spf'],
    [
      'an unlisted ESP whose names spell their addresses (its SPF lists them)',
      SPELLED_ESP,
      'news@esp-client.com',
      'host:out.mailer-esp.com identity_reason=fcrdns_spf',
    ],
    ['an unlisted ESP with opaque names and no SPF, in six networks', OPAQUE_ESP, 'digest@esp-client2.com', 'host:bulk.opaque-esp.net identity_reason=fcrdns'],
  ] as const) {
    it(`${what}: accepted at the first retry after the delay, from every address`, async () => {
      const codes = await retried(ips, { from, to: [`rcpt-${from.split('@')[0]}@example.com`] })
      assert.deepEqual(codes, [451, ...ips.slice(1).map(() => 250)])
      assert.ok(line(from, 0).includes(`identity=${identity} `), line(from, 0))
    })
  }
})
