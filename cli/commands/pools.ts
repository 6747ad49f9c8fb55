// `smart-greylist pools list | refresh`: the shipped provider data, and rebuilding its ranges
// from the providers' published SPF records.
import { canonicalRange, implausible, refreshBounds } from '../../plugins/smart-greylist/core/refresh'
import { parseProviders, sortRanges, writeRanges } from '../../plugins/smart-greylist/core/providers'
import { makeResolver } from '../../plugins/smart-greylist/adapters/dns'
import { rangesFromSpf } from '../../plugins/smart-greylist/adapters/provider-refresh'
import { defineCommand, EXIT, UsageError, jsonText } from '../command'
import { FILES } from '../context'

export const poolsList = defineCommand({
  name: 'pools list',
  summary: 'show the providers, the action each gets, and their ranges',
  usage: '[--config DIR] [--json]',
  async run({ values, io, ctx }) {
    const { config, providers, providerList, problems } = await ctx.load()
    const listProblems = problems.filter((p) => p.includes(FILES.providers))
    for (const p of listProblems) io.err(p)
    const rows = providerList.map((p) => {
      const chosen = providers.actionOf(p.id) ?? 'off'
      const action = chosen === 'skip' && !config.whitelist.providers ? 'group' : chosen
      return {
        id: p.id,
        name: p.name,
        action,
        ranges: p.ips.length,
        updated: p.updated,
        from: p.origin.replace(/:\d+$/, ''),
        hosts: p.hosts,
        spf: p.spf,
        source: p.source,
      }
    })
    if (values.json) io.out(jsonText({ providers: rows }, 2))
    else {
      for (const r of rows)
        io.out(`${r.id.padEnd(12)} ${r.action.padEnd(6)} ${String(r.ranges).padStart(4)} ranges (${r.from}, ${r.updated ?? 'by hand'})  ${r.hosts.join(' ')}`)
    }
    return listProblems.length ? EXIT.finding : EXIT.ok
  },
})

export const poolsRefresh = defineCommand({
  name: 'pools refresh',
  summary: "rebuild each provider's ranges from its SPF record (include: chains over DNS)",
  usage: '[--config DIR] [--dns SERVER] [--timeout-ms MS] [--dry-run] [--force] [--json]',
  description: [
    "For every provider with an spf = line, follows the record's include: and redirect= chains and",
    'collects the ip4:/ip6: ranges. A provider whose lookup fails, or yields nothing, keeps the ranges',
    'it had. Changed ranges are written to DIR/smart-greylist.providers.local with the day (every other',
    'line of that file is kept), which a running Haraka picks up without a restart; the shipped',
    'smart-greylist.providers is never written, and an upgrade whose data is newer wins over a refresh.',
    'A provider keeps its ranges too unless --force when its record now holds a range wider than /12',
    '(IPv4) or /24 (IPv6), a new range (touching none of its shipped or local ranges) wider than /20 or',
    "/40 that [refresh] accept_new does not cover, more than 4x its files' address space plus one",
    "[identity] spf_widest_* network, or too many ranges: an include chain is the provider's to change.",
    'A record under the chain that passes for any client (+all, client macros) is refused, even with --force.',
    'Exit 0: all refreshed; 1: some kept their old ranges.',
  ],
  options: {
    dns: { type: 'string', multiple: true },
    'dry-run': { type: 'boolean', default: false },
    force: { type: 'boolean', default: false },
    'timeout-ms': { type: 'string', default: '5000' },
  },
  optionHelp: {
    dns: 'ask this DNS server instead of the system resolver (repeatable)',
    'dry-run': 'report the changes without writing the file',
    force: "write ranges the bounds refuse (too wide, new and wide, past 4x the files' space, too many)",
    'timeout-ms': 'bound for each DNS query (default 5000)',
  },
  async run({ values, io, ctx }) {
    const timeoutMs = Number(values['timeout-ms'])
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError('--timeout-ms takes a positive number')
    const resolver = makeResolver(2 * timeoutMs, values.dns as string[] | undefined)
    const { providerList: providers, problems, anchors, config } = await ctx.load()
    const listProblems = problems.filter((p) => p.includes(FILES.providers) && p.includes('ignoring'))
    if (listProblems.length) {
      for (const p of listProblems) io.err(p)
      return EXIT.failure
    }
    const fresh = new Map<string, string[]>()
    const report: RefreshRow[] = []
    let failed = 0
    for (const p of providers.filter((x) => x.spf.length)) {
      const found = await rangesFromSpf(p, resolver, timeoutMs)
      // Bounded by the files' ranges (shipped and local), as the scheduled refresh is.
      const refusal = 'error' in found || values.force ? null : implausible(anchors.get(p.id) ?? [], found.ranges, refreshBounds(config))
      const r = refusal ? { error: `refused (--force writes it): ${refusal}` } : found
      if ('error' in r) {
        failed++
        report.push({ id: p.id, status: 'kept', error: r.error, ranges: p.ips.length })
        continue
      }
      const before = new Set(p.ips.map(canonicalRange))
      const after = new Set(r.ranges)
      const added = sortRanges(r.ranges.filter((x) => !before.has(x)))
      const removed = sortRanges([...before].filter((x) => !after.has(x)))
      if (added.length || removed.length) fresh.set(p.id, r.ranges)
      report.push({ id: p.id, status: added.length || removed.length ? 'changed' : 'unchanged', ranges: r.ranges.length, added, removed, ignored: r.ignored })
    }
    const changed = report.some((r) => r.status === 'changed')
    const { file: written } = await ctx.edit(FILES.providersLocal, (lines) => {
      const text = writeRanges(lines, fresh, new Date().toISOString().slice(0, 10)).join('\n')
      // What is about to be written must read back cleanly with the plugin's own parser.
      const check = parseProviders(text.split('\n'), FILES.providersLocal)
      const [bad] = check.errors
      if (bad) throw new Error(`refusing to write: ${bad.origin}: ${bad.message}`)
      return { text: changed && !values['dry-run'] ? (text.endsWith('\n') ? text : `${text}\n`) : null, result: null }
    })
    if (values.json) io.out(jsonText({ written, providers: report }, 2))
    else {
      for (const r of report) {
        if (r.status === 'kept') io.out(`${r.id.padEnd(12)} kept ${r.ranges} ranges: ${r.error}`)
        else {
          const { added: a, removed: d } = r
          io.out(`${r.id.padEnd(12)} ${r.status}: ${r.ranges} ranges${a.length ? ` +${a.join(' +')}` : ''}${d.length ? ` -${d.join(' -')}` : ''}`)
        }
      }
      io.out(written ? `wrote ${written}` : changed ? 'dry run: nothing written' : 'no changes')
    }
    return failed ? EXIT.finding : EXIT.ok
  },
})

/** One provider's line of the refresh report (and of its JSON). */
type RefreshRow =
  | { readonly id: string; readonly status: 'kept'; readonly error: string; readonly ranges: number }
  | {
      readonly id: string
      readonly status: 'changed' | 'unchanged'
      readonly ranges: number
      readonly added: string[]
      readonly removed: string[]
      readonly ignored: string[]
    }
