// `smart-greylist stuck`: (sender domain, recipient) pairs deferred again and again from different
// identities or networks without ever passing: the seed's symptom, with what would fix it.
import { STUCK_MIN_DEFERRALS, StuckFinder, type StuckPair } from '../../plugins/smart-greylist/core/stuck'
import { safeField } from '../../plugins/smart-greylist/core/text'
import { defineCommand, EXIT, UsageError, jsonText } from '../command'

export const stuck = defineCommand({
  name: 'stuck',
  summary: 'senders deferred again and again from other addresses without passing, worst first',
  usage: '[--min N] [--limit N] [--config DIR] [--json]',
  description: [
    'A (sender domain, recipient) pair is stuck when at least N of its tuples wait for a retry within',
    'retry_window, from two or more identities or /24 (/64) networks, and none of its tuples passed in',
    'that window. Each pair comes with the identities, networks and rDNS names seen (?name: not',
    'forward-confirmed) and, when one fits, the whitelist line or setting that lets it through.',
    'Scans the tuples under the prefix (SCAN). Exit status 1 when a pair is stuck.',
  ],
  options: { min: { type: 'string', default: String(STUCK_MIN_DEFERRALS) }, limit: { type: 'string', default: '20' } },
  optionHelp: { min: `deferrals a pair needs (default ${STUCK_MIN_DEFERRALS})`, limit: 'show at most this many pairs (default 20)' },
  async run({ values, io, ctx }) {
    const min = Number(values.min)
    const limit = Number(values.limit)
    if (!Number.isInteger(min) || min < 2 || min > 10_000) throw new UsageError('--min takes a whole number from 2 to 10000')
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit takes a positive whole number')
    return ctx.withSession({ requireRedis: true }, async ({ deps, admin }) => {
      const { config } = deps
      const now = deps.now()
      const finder = new StuckFinder(now, {
        minDeferrals: min,
        windowMs: config.main.retry_window * 1000,
        orgDomain: deps.orgDomain,
        netIdentityGreylist: config.main.net_identity_greylist,
      })
      // A batch at a time: only the window's pending tuples are held, not every record.
      for await (const batch of admin.tupleBatches(config.redis.prefix)) for (const t of batch) finder.add(t)
      const pairs = finder.pairs()
      const shown = pairs.slice(0, limit)
      if (values.json) {
        io.out(jsonText({ total: pairs.length, pairs: shown.map((p) => ({ ...p, firstSeen: iso(p.firstSeen), lastSeen: iso(p.lastSeen) })) }, 2))
      } else {
        for (const p of shown) for (const line of describe(p, now)) io.out(line)
        io.out(pairs.length ? `${shown.length} of ${pairs.length} stuck pairs` : 'no stuck senders')
      }
      return pairs.length ? EXIT.finding : EXIT.ok
    })
  },
})

/** A pair's lines: its domains, identities and names are what senders sent, shown through safeField. */
function describe(p: StuckPair, now: number): string[] {
  const list = (values: readonly string[]): string => values.map(safeField).join(' ')
  const mins = (ms: number): string => `${Math.round(ms / 60_000)} min`
  return [
    `${safeField(p.senderDomain)} -> ${safeField(p.recipient)}: ${p.deferrals} deferrals from ${p.identities.length} identities in ${p.networks.length} networks, first ${mins(now - p.firstSeen)} ago, last ${mins(now - p.lastSeen)} ago`,
    `  identities: ${list(p.identities)}`,
    `  networks:   ${list(p.networks) || 'not recorded'}`,
    `  rDNS:       ${list(p.names) || 'none'}`,
    ...(p.suggestion ? [`  suggest:    ${p.suggestion}`] : []),
    ...(p.note ? [`  note:       ${p.note}`] : []),
  ]
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}
