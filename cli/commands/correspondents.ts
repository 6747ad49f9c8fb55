// `smart-greylist correspondents list|forget`: the outside domains local mailboxes wrote to (so
// their authenticated replies skip greylisting), and forgetting them.
import { normaliseRecipient } from '../../plugins/smart-greylist/core/envelope'
import { correspondentField, correspondentKey } from '../../plugins/smart-greylist/core/keys'
import { safeField } from '../../plugins/smart-greylist/core/text'
import { defineCommand, EXIT, optionText, UsageError, jsonText } from '../command'

export const correspondentsList = defineCommand({
  name: 'correspondents list',
  summary: 'the outside domains each local mailbox wrote to, with when they are forgotten',
  usage: '[--mailbox ADDR] [--config DIR] [--json]',
  description: ['Recorded when a relayed message from a local mailbox is queued ([correspondents]).'],
  options: { mailbox: { type: 'string' } },
  optionHelp: { mailbox: 'only this local mailbox' },
  async run({ values, io, ctx }) {
    return ctx.withSession({ requireRedis: true }, async ({ deps, admin }) => {
      const now = deps.now()
      const only = values.mailbox === undefined ? null : normaliseRecipient(optionText(values.mailbox) ?? '', deps.config.envelope.recipient_strip_ext)
      const rows = (await admin.correspondents(deps.config.redis.prefix))
        .filter((c) => c.expiresAt > now && (only === null || c.mailbox === only))
        .sort((a, b) => a.mailbox.localeCompare(b.mailbox) || a.domain.localeCompare(b.domain))
        .map((c) => ({ mailbox: c.mailbox, domain: c.domain, expires: new Date(c.expiresAt).toISOString() }))
      if (values.json) io.out(jsonText({ correspondents: rows }, 2))
      else {
        for (const r of rows) io.out(`<${safeField(r.mailbox)}>  ${safeField(r.domain)}  until ${r.expires}`)
        io.out(`${rows.length} correspondent(s)`)
      }
      return EXIT.ok
    })
  },
})

export const correspondentsForget = defineCommand({
  name: 'correspondents forget',
  summary: 'forget the correspondents of a local mailbox, or one domain of them',
  usage: '--mailbox ADDR [--domain DOMAIN] [--config DIR] [--json]',
  options: { mailbox: { type: 'string' }, domain: { type: 'string' } },
  optionHelp: { mailbox: 'the local mailbox', domain: 'only this outside domain' },
  async run({ values, io, ctx }) {
    if (values.mailbox === undefined) throw new UsageError('--mailbox is required')
    return ctx.withSession({ requireRedis: true }, async ({ deps, admin }) => {
      const mailbox = normaliseRecipient(optionText(values.mailbox) ?? '', deps.config.envelope.recipient_strip_ext)
      const key = correspondentKey(deps.config.redis.prefix, mailbox)
      let removed: number
      if (values.domain === undefined) {
        // Every field but `m` (the mailbox itself) is one correspondent.
        removed = Object.keys(await admin.hash(key)).filter((f) => f !== 'm').length
        await admin.del([key])
      } else {
        removed = await admin.hdel(key, [correspondentField((optionText(values.domain) ?? '').toLowerCase().replace(/\.$/, ''))])
      }
      if (values.json) io.out(jsonText({ removed }))
      else io.out(`forgot ${removed} correspondent(s) of <${safeField(mailbox)}>`)
      return EXIT.ok
    })
  },
})
