// `smart-greylist list` and `smart-greylist flush`: the tuples in Redis, and removing them.
import { normaliseAddress } from '../../plugins/smart-greylist/core/envelope'
import { KEY_PATTERNS } from '../../plugins/smart-greylist/core/keys'
import { safeField } from '../../plugins/smart-greylist/core/text'
import { defineCommand, EXIT, optionText, UsageError, jsonText } from '../command'

export const list = defineCommand({
  name: 'list',
  summary: 'list pending or passed tuples, newest first',
  usage: '--pending|--passed [--limit N] [--config DIR] [--json]',
  description: ['Scans the keys under the configured prefix (SCAN: Redis is never blocked, but a large database takes a while).'],
  options: {
    pending: { type: 'boolean', default: false },
    passed: { type: 'boolean', default: false },
    limit: { type: 'string', default: '20' },
  },
  optionHelp: { pending: 'tuples waiting for their retry', passed: 'tuples whose retry was accepted', limit: 'at most this many (default 20)' },
  async run({ values, io, ctx }) {
    if (values.pending === values.passed) throw new UsageError('give one of --pending or --passed')
    const limit = Number(values.limit)
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit takes a positive whole number')
    return ctx.withSession({ requireRedis: true }, async ({ deps, admin }) => {
      const now = deps.now()
      const delay = deps.config.main.delay * 1000
      const all = (await admin.tuples(deps.config.redis.prefix)).filter((t) => (values.pending ? t.passedAt === null : t.passedAt !== null))
      const rows = all
        .sort((a, b) => b.firstSeen - a.firstSeen)
        .slice(0, limit)
        .map((t) => ({
          firstSeen: new Date(t.firstSeen).toISOString(),
          ...(t.passedAt !== null
            ? { passedAt: new Date(t.passedAt).toISOString(), delayedSeconds: Math.round((t.passedAt - t.firstSeen) / 1000) }
            : { retryAcceptedInSeconds: Math.max(0, Math.round((t.firstSeen + delay - now) / 1000)) }),
          identity: t.identity,
          sender: t.sender,
          recipient: t.recipient,
        }))
      if (values.json) io.out(jsonText({ total: all.length, tuples: rows }, 2))
      else {
        for (const r of rows) {
          const state =
            'passedAt' in r ? `passed after ${r.delayedSeconds} s` : r.retryAcceptedInSeconds ? `retry in ${r.retryAcceptedInSeconds} s` : 'retry accepted now'
          // The records hold what clients sent; the JSON keeps it raw, the table shows it escaped.
          io.out(`${r.firstSeen}  ${state.padEnd(20)} ${safeField(r.identity)}  <${safeField(r.sender)}> -> <${safeField(r.recipient)}>`)
        }
        io.out(`${rows.length} of ${all.length} ${values.pending ? 'pending' : 'passed'} tuples`)
      }
      return EXIT.ok
    })
  },
})

export const flush = defineCommand({
  name: 'flush',
  summary: 'forget tuples (and auto-whitelist entries) of an identity, a sender, or everything',
  usage: '--identity ID | --sender ADDR | --all --yes [--config DIR] [--json]',
  description: [
    '--identity forgets its tuples and its auto-whitelist entries (ID as in the log, e.g.',
    'host:outbound.protection.outlook.com); --sender forgets the tuples of that sender (normalised as',
    'the plugin does); --all --yes forgets all tuples, auto-whitelist entries, pending counts, correspondents and SPF verdicts under the',
    'prefix. Statistics are kept.',
  ],
  options: {
    identity: { type: 'string' },
    sender: { type: 'string' },
    all: { type: 'boolean', default: false },
    yes: { type: 'boolean', default: false },
  },
  optionHelp: {
    identity: 'an identity, e.g. spf:contoso.com',
    sender: 'an envelope sender',
    all: 'everything (needs --yes)',
    yes: 'confirm --all',
  },
  async run({ values, io, ctx }) {
    const chosen = [values.identity !== undefined, values.sender !== undefined, values.all === true].filter(Boolean).length
    if (chosen !== 1) throw new UsageError('give exactly one of --identity, --sender, --all')
    if (values.all && !values.yes) throw new UsageError('--all forgets every tuple: add --yes to confirm')
    return ctx.withSession({ requireRedis: true }, async ({ deps, admin }) => {
      const prefix = deps.config.redis.prefix
      const store = admin
      let keys: string[] = []
      if (values.all) {
        for (const pattern of Object.values(KEY_PATTERNS)) for await (const batch of store.scan(pattern(prefix))) keys.push(...batch)
      } else if (values.identity !== undefined) {
        const id = (optionText(values.identity) ?? '').toLowerCase()
        keys = (await store.tuples(prefix)).filter((t) => t.identity === id).map((t) => t.key)
        keys.push(...(await store.awlEntries(prefix)).filter((a) => a.identity === id).map((a) => a.key))
      } else {
        const sender = normaliseAddress(String(values.sender))
        keys = (await store.tuples(prefix)).filter((t) => t.sender === sender).map((t) => t.key)
      }
      const removed = await store.del(keys)
      if (values.json) io.out(jsonText({ removed }))
      else io.out(`removed ${removed} key${removed === 1 ? '' : 's'}`)
      return EXIT.ok
    })
  },
})
