// `smart-greylist config check`: what the plugin would log when it loads this directory.
import { defineCommand, EXIT, jsonText } from '../command'
import { FILES } from '../context'
import { providerData } from '../provider-data'
import { redisTarget } from '../../plugins/smart-greylist/adapters/redis-client'

export const configCheck = defineCommand({
  name: 'config check',
  summary: 'report unknown or bad settings and list lines, as the plugin would log them',
  usage: '[--config DIR] [--json]',
  description: [
    `Reads ${FILES.ini}, ${FILES.redis}, ${FILES.whitelist}, ${FILES.providers} and ${FILES.providersLocal}`,
    "exactly as the plugin does, and the providers' shared ranges in Redis as every MX checks them.",
    'Exit 0: no problems (notes may be printed); 1: problems (each with its file and key or line, or a shared record that is ignored).',
  ],
  async run({ values, io, ctx }) {
    const loaded = await ctx.load()
    // How old the shared provider data is: Redis is asked, but it is not needed for the check.
    const shared = await ctx.withSession({ requireRedis: false }, ({ deps, refresh }) => Promise.resolve(providerData(refresh, deps.now())))
    const summary = {
      config: ctx.dir,
      whitelistEntries: loaded.admin.entries.length,
      providers: loaded.providerList.length,
      providerRanges: loaded.providers.ranges,
      redis: { target: redisTarget(loaded.redis), topology: loaded.redis.topology, ...loaded.redis.client },
      problems: loaded.problems,
      notes: loaded.notes,
      providerData: shared.json,
    }
    if (values.json) io.out(jsonText(summary, 2, (k, v) => (k === 'password' ? '***' : v)))
    else {
      for (const p of loaded.problems) io.out(p)
      for (const n of loaded.notes) io.out(`note: ${n}`)
      for (const l of shared.lines) io.out(l)
      io.out(
        `${loaded.problems.length ? `${loaded.problems.length} problem(s)` : 'no problems'}; whitelist ${summary.whitelistEntries} entries, ` +
          `providers ${summary.providers} (${summary.providerRanges} ranges); redis ${summary.redis.target}`,
      )
    }
    // A shared record in Redis that every MX ignores is a finding too.
    return loaded.problems.length || shared.refused ? EXIT.finding : EXIT.ok
  },
})
