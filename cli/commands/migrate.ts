// `smart-greylist migrate`: moves 0.4's records into 0.5's sharded key layout, so an upgrade does
// not greylist every known correspondent once more. Run it once all MXs run 0.5 (a 0.4 MX still
// running would keep writing the old layout).
import { LEGACY_PATTERNS, migratedKey } from '../../plugins/smart-greylist/core/keys'
import { defineCommand, EXIT, jsonText } from '../command'

export const migrate = defineCommand({
  name: 'migrate',
  summary: 'move tuples, auto-whitelist entries and statistics of 0.4 into the sharded layout of 0.5',
  usage: '[--dry-run] [--config DIR] [--json]',
  description: [
    "Run once, after every MX runs 0.5. Each record keeps its name inside its identity's shard; a",
    'record whose identity was cut to [limits] stored_chars cannot be placed and is left (it expires).',
    "Where 0.5 already wrote the same record, the newer one is kept (a day's old counters are then left",
    'to expire). Safe to run again.',
  ],
  options: { 'dry-run': { type: 'boolean', default: false } },
  optionHelp: { 'dry-run': 'count what would move, move nothing' },
  async run({ values, io, ctx }) {
    return ctx.withSession({ requireRedis: true }, async ({ deps, admin }) => {
      const prefix = deps.config.redis.prefix
      const cut = deps.config.limits.stored_chars
      const counts = { moved: 0, kept_newer: 0, identity_cut: 0 }
      for (const pattern of Object.values(LEGACY_PATTERNS)) {
        for await (const keys of admin.scan(pattern(prefix))) {
          for (const key of keys) {
            const stats = /^(st|si):/.test(key.slice(prefix.length))
            const identity = stats ? null : ((await admin.hash(key)).i ?? '')
            // A stored identity as long as the cut may have been cut: its shard is unknown.
            const target = identity !== null && identity.length >= cut ? null : migratedKey(prefix, key, identity)
            if (!target) {
              counts.identity_cut++
              continue
            }
            if (values['dry-run']) counts.moved++
            else if (await admin.renameIfAbsent(key, target)) counts.moved++
            else {
              counts.kept_newer++
              // A newer tuple or entry wins; a day's old counters are left to expire rather than lost.
              if (!stats) await admin.del([key])
            }
          }
        }
      }
      if (values.json) io.out(jsonText({ dryRun: values['dry-run'], ...counts }))
      else {
        io.out(`${values['dry-run'] ? 'would move' : 'moved'} ${counts.moved} record(s)`)
        if (counts.kept_newer) io.out(`${counts.kept_newer} already written by 0.5: the newer kept, the old removed`)
        if (counts.identity_cut) io.out(`${counts.identity_cut} left in place: identity cut to ${cut} characters, shard unknown (they expire)`)
      }
      return EXIT.ok
    })
  },
})
