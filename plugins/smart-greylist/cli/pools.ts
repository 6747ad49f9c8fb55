// `smart-greylist pools list | refresh`: the shipped provider data, and rebuilding its ranges
// from the providers' published SPF records.
import { promises as dnsp } from 'node:dns'
import { parseProviders, ProviderIndex, rewriteRanges, sortRanges, type Provider } from '../providers'
import { walkSpf, type TxtResolver } from '../spf-walk'
import { COMMON_HELP, COMMON_OPTIONS, EXIT, UsageError, type Command } from './command'
import { Context, FILES } from './context'

export const poolsList: Command = {
  name: 'pools list',
  summary: 'show the providers, the action each gets, and their ranges',
  usage: '[--config DIR] [--json]',
  options: { ...COMMON_OPTIONS },
  optionHelp: COMMON_HELP,
  async run(values, _pos, io) {
    const ctx = new Context(String(values.config))
    const config = ctx.config()
    const { providers, errors } = ctx.providers()
    for (const e of errors) io.err(`${e.origin}: ${e.message}: ${e.text}`)
    const index = new ProviderIndex(providers, (p) => config.providers[p.id] ?? p.action)
    const rows = providers.map((p) => {
      const chosen = index.actionOf(p.id) ?? 'off'
      const action = chosen === 'skip' && !config.whitelist.providers ? 'group' : chosen
      return { id: p.id, name: p.name, action, ranges: p.ips.length, hosts: p.hosts, spf: p.spf, source: p.source }
    })
    if (values.json) io.out(JSON.stringify({ file: ctx.filePath(FILES.providers), providers: rows }, null, 2))
    else {
      io.out(`# ${ctx.filePath(FILES.providers)}`)
      for (const r of rows) io.out(`${r.id.padEnd(12)} ${r.action.padEnd(6)} ${String(r.ranges).padStart(4)} ranges  ${r.hosts.join(' ')}`)
    }
    return errors.length ? EXIT.finding : EXIT.ok
  },
}

export const poolsRefresh: Command = {
  name: 'pools refresh',
  summary: "rebuild each provider's ranges from its SPF record (include: chains over DNS)",
  usage: '[--config DIR] [--dns HOST[:PORT]] [--dry-run] [--json]',
  description: [
    "For every provider with an spf = line, follows the record's include: and redirect= chains and",
    'collects the ip4:/ip6: ranges. A provider whose lookup fails, or yields nothing, keeps the ranges',
    'it had. The result is written to DIR/smart-greylist.providers (every other line is kept), which a',
    'running Haraka picks up without a restart. Exit 0: all refreshed; 1: some kept their old ranges.',
  ],
  options: {
    ...COMMON_OPTIONS,
    dns: { type: 'string', multiple: true },
    'dry-run': { type: 'boolean', default: false },
    'timeout-ms': { type: 'string', default: '5000' },
  },
  optionHelp: {
    ...COMMON_HELP,
    dns: 'ask this DNS server instead of the system resolver (repeatable)',
    'dry-run': 'report the changes without writing the file',
    'timeout-ms': 'bound for each DNS query (default 5000)',
  },
  async run(values, _pos, io) {
    const ctx = new Context(String(values.config))
    const timeoutMs = Number(values['timeout-ms'])
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError('--timeout-ms takes a positive number')
    const resolver = new dnsp.Resolver({ timeout: timeoutMs, tries: 2 })
    if (Array.isArray(values.dns) && values.dns.length) resolver.setServers(values.dns as string[])
    const lines = ctx.lines(FILES.providers)
    const { providers, errors } = ctx.providers()
    if (errors.length) {
      for (const e of errors) io.err(`${e.origin}: ${e.message}: ${e.text}`)
      return EXIT.failure
    }
    const fresh = new Map<string, string[]>()
    const report: Record<string, unknown>[] = []
    let failed = 0
    for (const p of providers.filter((x) => x.spf.length)) {
      const r = await refreshOne(p, resolver, timeoutMs)
      if ('error' in r) {
        failed++
        report.push({ id: p.id, status: 'kept', error: r.error, ranges: p.ips.length })
        continue
      }
      fresh.set(p.id, r.ranges)
      const before = new Set(p.ips.map(canonical))
      const after = new Set(r.ranges)
      const added = sortRanges(r.ranges.filter((x) => !before.has(x)))
      const removed = sortRanges([...before].filter((x) => !after.has(x)))
      report.push({ id: p.id, status: added.length || removed.length ? 'changed' : 'unchanged', ranges: r.ranges.length, added, removed, ignored: r.ignored })
    }
    const text = rewriteRanges(lines, fresh).join('\n')
    const changed = report.some((r) => r.status === 'changed')
    // What is about to be written must read back cleanly with the plugin's own parser.
    const check = parseProviders(text.split('\n'), FILES.providers)
    if (check.errors.length) throw new Error(`refusing to write: ${check.errors[0].origin}: ${check.errors[0].message}`)
    let written: string | null = null
    if (changed && !values['dry-run']) written = ctx.writeAtomic(FILES.providers, text.endsWith('\n') ? text : `${text}\n`)
    if (values.json) io.out(JSON.stringify({ written, providers: report }, null, 2))
    else {
      for (const r of report) {
        if (r.status === 'kept') io.out(`${String(r.id).padEnd(12)} kept ${r.ranges} ranges: ${r.error}`)
        else {
          const a = r.added as string[]
          const d = r.removed as string[]
          io.out(`${String(r.id).padEnd(12)} ${r.status}: ${r.ranges} ranges${a.length ? ` +${a.join(' +')}` : ''}${d.length ? ` -${d.join(' -')}` : ''}`)
        }
      }
      io.out(written ? `wrote ${written}` : changed ? 'dry run: nothing written' : 'no changes')
    }
    return failed ? EXIT.finding : EXIT.ok
  },
}

function canonical(range: string): string {
  const [addr, len] = range.split('/')
  return `${addr.toLowerCase()}/${len ?? (addr.includes(':') ? '128' : '32')}`
}

async function refreshOne(p: Provider, resolver: TxtResolver, timeoutMs: number): Promise<{ ranges: string[]; ignored: string[] } | { error: string }> {
  try {
    const ranges = new Set<string>()
    const ignored: string[] = []
    for (const root of p.spf) {
      const r = await walkSpf(root, resolver, { maxLookups: 50, timeoutMs })
      r.ranges.forEach((x) => ranges.add(x))
      ignored.push(...r.ignored)
    }
    if (!ranges.size) return { error: 'the SPF records list no ip4/ip6 ranges' }
    return { ranges: [...ranges], ignored }
  } catch (err) {
    const e = err as { code?: string; message?: string }
    return { error: e.code ? `${e.code} ${e.message ?? ''}`.trim() : String(e.message ?? err) }
  }
}
