// `smart-greylist check`: what the plugin would decide now for one client and envelope, and why.
// It runs the plugin's own decision code (plan.ts, decide()) and reads Redis without writing.
import { decide, timingFrom } from '../../plugins/smart-greylist/core/decision'
import { lookupDnsbl, lookupRdns } from '../../plugins/smart-greylist/adapters/dns'
import { correspondentField, correspondentKey } from '../../plugins/smart-greylist/core/keys'
import { evidenceText, isTrusted, zoneList } from '../../plugins/smart-greylist/core/select'
import { spfFacts } from '../../plugins/smart-greylist/adapters/spf-guard'
import { domainOf, normaliseAddress, NULL_SENDER } from '../../plugins/smart-greylist/core/envelope'
import { identityText, type RdnsFacts, type SpfFacts } from '../../plugins/smart-greylist/core/identity'
import { parseIp } from '../../plugins/smart-greylist/core/ip'
import { assess } from '../../plugins/smart-greylist/core/assess'
import { COMMON_HELP, COMMON_OPTIONS, EXIT, UsageError, type Command } from '../command'
import { Context } from '../context'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const netUtils = require('haraka-net-utils') as { is_private_ip(ip: string): boolean }

export const check: Command = {
  name: 'check',
  summary: 'explain the decision the plugin would take now (changes nothing)',
  usage: '--ip IP [--helo NAME] [--rdns NAME] --from ADDR --to ADDR [--config DIR] [--dns SERVER] [--json]',
  description: [
    'Shows the identity and why, the whitelist entry or provider that matches, the tuple in Redis and',
    'the seconds left. Without --rdns it looks up the PTR and forward records as the plugin does; with',
    '--rdns the name is taken as the forward-confirmed name. SPF is evaluated as the plugin does when',
    'the spf plugin is not loaded. Use --from "" for the null sender.',
    'Without Redis the whitelist, provider and identity answers still come, with the tuple state unknown.',
    'Exit 0: the mail would be accepted; 1: it would be deferred; 2: usage error or failure;',
    '3: whether it would be deferred is unknown, because Redis is unreachable.',
  ],
  options: {
    ...COMMON_OPTIONS,
    ip: { type: 'string' },
    helo: { type: 'string' },
    rdns: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    dns: { type: 'string', multiple: true },
  },
  optionHelp: {
    ...COMMON_HELP,
    ip: 'client address',
    helo: 'HELO/EHLO name',
    rdns: 'the client\'s rDNS name, taken as forward-confirmed (skips the PTR lookup)',
    from: 'envelope sender ("" for the null sender)',
    to: 'envelope recipient',
    dns: 'ask this DNS server instead of the system resolver (repeatable)',
  },
  async run(values, _pos, io) {
    const ip = parseIp(values.ip as string | undefined)
    if (!ip) throw new UsageError('--ip takes an IPv4 or IPv6 address')
    if (values.from === undefined || !values.to) throw new UsageError('--from and --to are required')
    const ctx = new Context(String(values.config))
    return ctx.withSession({ dns: values.dns as string[] | undefined, requireRedis: false }, async ({ deps, admin, redisError, redisTarget }) => {
      const helo = (values.helo as string | undefined) ?? null
      let rdns: RdnsFacts | undefined
      let spf: SpfFacts | undefined
      const subject = {
        ip,
        helo,
        sender: String(values.from),
        recipient: String(values.to),
        relaying: false,
        isPrivate: netUtils.is_private_ip(ip.toString()),
      }
      const p = await assess(deps, subject, {
        rdns: async () =>
          (rdns = values.rdns
            ? { status: 'ok', names: [{ name: String(values.rdns).toLowerCase(), confirmed: true }] }
            : await lookupRdns(ip, deps.resolver, { timeoutMs: deps.config.dns.timeout_ms, maxNames: deps.config.dns.max_names })),
        spf: async (domain, isNull) => (spf = await spfFacts(deps, ip, domain, isNull ? null : normaliseAddress(subject.sender), helo, null)),
        // As the plugin asks when the dns-list plugin did not run: [select] zones, if any.
        dnsbl: async () => {
          const zones = zoneList(deps.config.select.zones)
          return zones.length ? lookupDnsbl(ip, zones, deps.resolver, deps.config.dns.timeout_ms) : { source: 'none', listed: [] }
        },
      })
      const report: Record<string, unknown> = {
        client: ip.toString(),
        rdns: rdns ?? null,
        spf: spf ?? null,
        sender: normaliseAddress(subject.sender),
        recipient: normaliseAddress(subject.recipient),
      }
      let exit: number = EXIT.ok
      if (p.kind === 'tuple') report.evidence = { text: evidenceText(p.evidence), trusted: isTrusted(p.evidence), policy: deps.config.select.policy }
      const correspondent =
        p.kind === 'tuple' && redisError === null && deps.config.correspondents.enabled && p.authenticatedDomain !== null && !p.evidence.dnsbl.listed.length
          ? await deps.decisions.isCorrespondent(correspondentKey(deps.config.redis.prefix, p.recipient), correspondentField(p.authenticatedDomain), deps.now())
          : false
      if (p.kind === 'skip') report.decision = { action: 'accept', why: `skipped: ${p.reason}` }
      else if (p.kind === 'whitelist') report.decision = { action: 'accept', why: `whitelist:${p.what}`, entry: p.entry, origin: p.origin }
      else if (correspondent) report.decision = { action: 'accept', why: `correspondent: <${p.recipient}> wrote to ${p.authenticatedDomain}` }
      else if (redisError !== null) {
        report.identity = { id: identityText(p.identity), reason: p.identity.reason }
        report.tuple = { unknown: `Redis unreachable at ${redisTarget}: ${redisError}` }
        const failOpen = deps.config.main.on_error === 'accept' || deps.config.main.mode === 'shadow'
        report.decision = { action: 'unknown', why: `tuple state unknown: Redis unreachable; the plugin would now ${failOpen ? 'accept (fail open)' : 'defer (on_error = defer)'}` }
        exit = EXIT.unknown
      } else {
        const now = deps.now()
        const stored = await admin.peek(p)
        const { verdict } = decide(stored, now, timingFrom(deps.config))
        if (verdict.action === 'defer' && deps.config.main.mode !== 'shadow') exit = EXIT.finding
        report.identity = { id: identityText(p.identity), reason: p.identity.reason }
        report.tuple = stored.tuple
          ? { firstSeen: new Date(stored.tuple.firstSeen).toISOString(), passedAt: stored.tuple.passedAt ? new Date(stored.tuple.passedAt).toISOString() : null, expiresInSeconds: Math.round(stored.ttlMs / 1000) }
          : null
        report.autoWhitelist = p.awlKey ? { passes: stored.awlCount, needed: deps.config.awl.passes, senderDomain: p.sender === NULL_SENDER ? null : domainOf(p.sender) } : null
        const trusted = deps.config.select.policy === 'suspicious' && isTrusted(p.evidence)
        if (trusted) exit = EXIT.ok
        report.decision = {
          action: verdict.action === 'pass' || trusted ? 'accept' : deps.config.main.mode === 'shadow' ? 'accept (shadow mode; would defer)' : 'defer',
          ...(trusted ? { trusted: 'select suspicious: accepted on its evidence' } : {}),
          why: verdict.status,
          waitedSeconds: Math.round(verdict.waitedMs / 1000),
          ...(verdict.action === 'defer' ? { retryInSeconds: Math.round(verdict.retryInMs / 1000) } : {}),
        }
      }
      if (values.json) io.out(JSON.stringify(report, null, 2))
      else for (const line of describe(report)) io.out(line)
      return exit
    })
  },
}

function describe(r: Record<string, unknown>): string[] {
  const lines: string[] = []
  const row = (k: string, v: string): number => lines.push(`${k.padEnd(12)}${v}`)
  const rdns = r.rdns as RdnsFacts | null
  row('client', String(r.client))
  if (rdns) row('rDNS', rdns.status === 'ok' ? rdns.names.map((n) => `${n.name} (${n.confirmed ? 'forward-confirmed' : 'not confirmed'})`).join(', ') : rdns.status === 'none' ? 'no PTR' : `lookup failed: ${rdns.error}`)
  const spf = r.spf as SpfFacts | null
  if (spf) row('SPF', `${spf.domain}: ${spf.result}${spf.permissive ? ` (permissive record, not trusted: ${spf.guard})` : ''}`)
  row('envelope', `<${r.sender}> -> <${r.recipient}>`)
  const id = r.identity as { id: string; reason: string } | undefined
  if (id) row('identity', `${id.id} (${id.reason})`)
  const ev = r.evidence as { text: string; trusted: boolean; policy: string } | undefined
  if (ev) row('evidence', `${ev.text} (${ev.trusted ? 'trusted' : 'not trusted'}; [select] policy = ${ev.policy})`)
  const t = r.tuple as { firstSeen: string; passedAt: string | null; expiresInSeconds: number; unknown?: string } | null | undefined
  if (t?.unknown) row('tuple', `state unknown: ${t.unknown}`)
  else if (t !== undefined) row('tuple', t ? `first seen ${t.firstSeen}${t.passedAt ? `, passed ${t.passedAt}` : ', pending'}; expires in ${t.expiresInSeconds} s` : 'not seen before')
  const awl = r.autoWhitelist as { passes: number; needed: number; senderDomain: string } | null | undefined
  if (awl) row('auto-wl', `${awl.passes} of ${awl.needed} passes for ${awl.senderDomain}`)
  const d = r.decision as Record<string, unknown>
  const extra = d.entry ? ` ${d.entry} (${d.origin})` : d.retryInSeconds !== undefined ? `; a retry is accepted in ${d.retryInSeconds} s` : d.waitedSeconds ? `; delayed ${d.waitedSeconds} s` : ''
  row('decision', `${d.action}: ${d.why}${extra}${d.trusted ? ` (${d.trusted})` : ''}`)
  return lines
}
