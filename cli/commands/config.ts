// `smart-greylist config check`: what the plugin would log when it loads this directory.
import { defineCommand, EXIT, jsonText } from '../command'
import { FILES } from '../context'
import { providerData } from '../provider-data'
import { redisTarget } from '../../plugins/smart-greylist/adapters/redis-client'

export const configCheck = defineCommand({
  name: 'config check',
  summary: 'report unknown or bad settings and list lines, as the plugin would log them',
  usage: '[--config DIR] [--offline] [--json]',
  description: [
    `Reads ${FILES.ini}, ${FILES.redis}, ${FILES.whitelist}, ${FILES.providers} and ${FILES.providersLocal}`,
    "exactly as the plugin does, connects to Redis as the plugin would, and reads the providers' shared",
    'ranges there as every MX checks them. A Redis that cannot be reached is a problem: the plugin then',
    'greylists nothing (it fails open, or defers all mail with [main] on_error = defer). With --offline',
    'only the files are checked.',
    'Exit 0: no problems (notes may be printed); 1: problems (each with its file and key or line, a shared',
    'record that is ignored, or Redis unreachable).',
  ],
  options: { offline: { type: 'boolean', default: false } },
  optionHelp: { offline: 'check the files alone: do not connect to Redis' },
  async run({ values, io, ctx }) {
    const loaded = await ctx.load()
    // The shared provider data, and whether the plugin could reach Redis at all (bounded connect).
    const shared = values.offline
      ? { json: null, lines: ['provider data: not read (--offline)'], refused: 0, redisError: null }
      : await ctx.withSession({ requireRedis: false }, ({ deps, refresh, redisError }) => Promise.resolve({ ...providerData(refresh, deps.now()), redisError }))
    const redisProblem =
      shared.redisError === null
        ? null
        : `Redis at ${redisTarget(loaded.redis)} is unreachable (${shared.redisError}); while it is, the plugin greylists nothing: ` +
          (loaded.config.main.on_error === 'accept' ? 'mail is accepted (fail open, [main] on_error = accept)' : 'mail is deferred ([main] on_error = defer)') +
          '. Start Redis or fix the address; --offline checks the files alone'
    const problems = redisProblem ? [...loaded.problems, redisProblem] : loaded.problems
    const summary = {
      config: ctx.dir,
      whitelistEntries: loaded.admin.entries.length,
      providers: loaded.providerList.length,
      providerRanges: loaded.providers.ranges,
      redis: { target: redisTarget(loaded.redis), topology: loaded.redis.topology, ...loaded.redis.client },
      problems,
      notes: loaded.notes,
      providerData: shared.json,
    }
    if (values.json) io.out(jsonText(summary, 2, (k, v) => (k === 'password' ? '***' : v)))
    else {
      for (const p of problems) io.out(p)
      for (const n of loaded.notes) io.out(`note: ${n}`)
      for (const l of shared.lines) io.out(l)
      io.out(
        `${problems.length ? `${problems.length} problem(s)` : 'no problems'}; whitelist ${summary.whitelistEntries} entries, ` +
          `providers ${summary.providers} (${summary.providerRanges} ranges); redis ${summary.redis.target}`,
      )
    }
    // A shared record in Redis that every MX ignores is a finding too.
    return problems.length || shared.refused ? EXIT.finding : EXIT.ok
  },
})
