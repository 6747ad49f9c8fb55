// `smart-greylist simulate`: what the plugin, with this instance's settings and lists, would do to
// a day of a site's mail, beside the classic keyings; cli/sim replays it through the plugin's own
// decision path. Never on the production Redis: it empties the Redis it runs on, so it starts a
// private redis-server (Debian's redis-server package) unless given a scratch one that is empty.
import fs from 'node:fs'
import { chooseKeyings, KEYINGS, wholeOption, type RedisTarget } from '../sim/engine'
import { defaultMixPath, MAX_MESSAGES, readMix } from '../sim/mix'
import { reportLines } from '../sim/report'
import { simulate as runSimulation } from '../sim/simulate'
import { hasRedisServer, pingRedis, startPrivateRedis, type PrivateRedis } from '../../scripts/harness/redis-server'
import { defineCommand, EXIT, UsageError, optionText, jsonText } from '../command'

export const simulate = defineCommand({
  name: 'simulate',
  summary: 'replay a simulated day of senders through these settings, beside the classic keyings',
  usage: '[--messages N] [--seed N] [--mix FILE] [--keyings LIST] [--variant NAME:S.K=V,...] [--redis HOST:PORT] [--chart] [--config DIR] [--json]',
  description: [
    'A seeded population of senders (Exchange Online, Gmail, Amazon SES, ESPs, single-address MTAs, pools without PTR, and',
    "four kinds of spam), each with its DNS facts and retry habits, sends a day of mail through the plugin's own decision",
    "path with this config directory's settings and lists, under a simulated clock. Per keying and sender class: delivered,",
    'lost, the delay paid, attempts, spam accepted; Redis commands, memory and keys. docs/simulation.md explains the classes',
    'and the mix (docs/simulation-mix.json, the default of --mix). Keyings: plugin (these settings), exact (the exact client',
    'address), net24 (its /24 with the providers list); --variant adds these settings with some changed, e.g.',
    'message:main.net_identity_greylist=message. Redis: a private redis-server is started and stopped, unless --redis names a scratch',
    'Redis, which must be empty: the simulation empties it between keyings.',
  ],
  options: {
    messages: { type: 'string' },
    seed: { type: 'string', default: '1' },
    mix: { type: 'string' },
    keyings: { type: 'string', default: KEYINGS.map((k) => k.name).join(',') },
    variant: { type: 'string', multiple: true, default: [] },
    redis: { type: 'string' },
    chart: { type: 'boolean', default: false },
  },
  optionHelp: {
    messages: "messages in the day (default: the mix's, 20000)",
    seed: 'the population and its trace (default 1): the same seed, the same day',
    mix: "the mix file (default: the package's docs/simulation-mix.json)",
    keyings: `comma-separated, of ${KEYINGS.map((k) => k.name).join(', ')} (default all)`,
    variant: 'NAME:section.key=value,... these settings with those changed (repeatable)',
    redis: 'a scratch, empty Redis to run on, instead of a private redis-server',
    chart: 'the delay paid per class as a bar chart',
  },
  async run({ values, io, ctx }) {
    const config = ctx.dir
    if (!fs.existsSync(config) || !fs.statSync(config).isDirectory()) throw new UsageError(`--config ${config}: no such directory`)
    const mixFile = optionText(values.mix) ?? defaultMixPath()
    const mix = readMix(mixFile)
    // The simulator's own option errors are usage errors here (exit 2, with the usage line).
    const { keyings, messages, seed } = usage(() => ({
      keyings: chooseKeyings(String(values.keyings), (values.variant as string[] | undefined) ?? []),
      messages: wholeOption('messages', optionText(values.messages), MAX_MESSAGES),
      seed: wholeOption('seed', optionText(values.seed), 2 ** 31) ?? 1,
    }))
    let target: RedisTarget
    let own: PrivateRedis | null = null
    const given = optionText(values.redis)
    if (given) {
      const m = /^([\w.-]+|\[[0-9a-f:]+\]):(\d{1,5})$/i.exec(given)
      if (!m?.[1] || !m[2]) throw new UsageError('--redis takes HOST:PORT')
      const host = m[1].replace(/^\[|\]$/g, '')
      if (!(await pingRedis(host, Number(m[2])))) throw new Error(`--redis ${given}: no Redis answers there`)
      target = { host, port: Number(m[2]) }
    } else {
      if (!hasRedisServer())
        throw new Error('redis-server is not installed here: install it (Debian: redis-server) or give --redis HOST:PORT of a scratch Redis')
      own = await startPrivateRedis()
      target = { host: '127.0.0.1', port: own.port }
    }
    try {
      const report = await runSimulation({
        mix,
        mixName: mixFile,
        seed,
        ...(messages ? { messages } : {}),
        keyings,
        redis: target,
        configDir: config,
        requireEmpty: !own,
        warn: (line) => io.err(`warning: ${line}`),
      })
      if (values.json) io.out(jsonText(report, 2))
      else for (const line of reportLines(report, { chart: values.chart === true })) io.out(line)
      return EXIT.ok
    } finally {
      await own?.stop()
    }
  },
})

function usage<T>(read: () => T): T {
  try {
    return read()
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}
