// `npm run simulate`: a simulated day of a site's mail through the plugin's own decision path
// (cli/sim), on a private redis-server (or a private Redis Cluster with --cluster) started here
// and stopped at the end. docs/simulation.md explains the classes, the mix and the table.
import fs from 'node:fs'
import { parseArgs } from 'node:util'
import { chooseKeyings, KEYINGS, wholeOption } from '../cli/sim/engine'
import { defaultMixPath, MAX_MESSAGES, readMix } from '../cli/sim/mix'
import { reportLines } from '../cli/sim/report'
import { simulate } from '../cli/sim/simulate'
import { startPrivateRedis } from './harness/redis-server'
import { startPrivateCluster } from './harness/redis-topologies'

// haraka-tld announces its lists on stdout, which carries the report (--json).
process.env.HARAKA_LOGS_SUPPRESS ??= 'true'

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string' },
    seed: { type: 'string', default: '1' },
    mix: { type: 'string' },
    config: { type: 'string' },
    keyings: { type: 'string', default: KEYINGS.map((k) => k.name).join(',') },
    variant: { type: 'string', multiple: true, default: [] },
    cluster: { type: 'boolean', default: false },
    'in-flight': { type: 'string', default: '256' },
    chart: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (args.help) {
  console.log(
    [
      'usage: npm run simulate -- [--messages N] [--seed N] [--mix FILE] [--config DIR] [--keyings plugin,exact,net24]',
      '                           [--variant NAME:section.key=value,...]... [--cluster] [--in-flight N] [--chart] [--json]',
      `keyings: ${KEYINGS.map((k) => `${k.name} (${k.about})`).join('; ')}`,
    ].join('\n'),
  )
  process.exit(0)
}

async function main(): Promise<void> {
  const mixFile = args.mix ?? defaultMixPath()
  const mix = readMix(mixFile)
  if (args.config && !fs.existsSync(args.config)) throw new Error(`--config ${args.config}: no such directory`)
  const chosen = chooseKeyings(args.keyings, args.variant)
  const messages = wholeOption('messages', args.messages, MAX_MESSAGES)
  const seed = wholeOption('seed', args.seed, 2 ** 31) ?? 1
  const inFlight = wholeOption('in-flight', args['in-flight'], 10_000) ?? 256
  const cluster = args.cluster ? await startPrivateCluster() : null
  const single = cluster ? null : await startPrivateRedis()
  try {
    const redis = cluster ? { cluster: cluster.masters().map((p) => `127.0.0.1:${p}`) } : { host: '127.0.0.1', port: single!.port }
    const report = await simulate({
      mix,
      mixName: args.mix ?? 'docs/simulation-mix.json',
      seed,
      ...(messages ? { messages } : {}),
      keyings: chosen,
      redis,
      inFlight,
      ...(args.config ? { configDir: args.config } : {}),
      warn: (line) => console.error(`warning: ${line}`),
      progress: (done, total) => process.stderr.write(`\r  ${done}/${total} messages arrived`),
    })
    process.stderr.write('\n')
    if (args.json) console.log(JSON.stringify(report, null, 2))
    else for (const line of reportLines(report, { chart: args.chart })) console.log(line)
  } finally {
    await cluster?.stop()
    await single?.stop()
  }
}

main().catch((err: Error) => {
  console.error(err.message)
  process.exit(2)
})
