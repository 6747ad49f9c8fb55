// `smart-greylist check`: what the plugin would decide now for one client and envelope, and why.
// It runs the plugin's own decider (adapters/recipient.ts) with a tuple store that reads Redis
// and writes nothing, and renders the decision the plugin would record, log line included.
import { TuplePeek } from '../../plugins/smart-greylist/adapters/redis-admin'
import { decideRecipient, type FactCache } from '../../plugins/smart-greylist/adapters/recipient'
import { domainOf, normaliseAddress, normaliseRecipient, NULL_SENDER } from '../../plugins/smart-greylist/core/envelope'
import { identityField, spfResultFrom, type RdnsFacts, type SpfFacts } from '../../plugins/smart-greylist/core/identity'
import { ruleText } from '../../plugins/smart-greylist/core/domains'
import { parseIp } from '../../plugins/smart-greylist/core/ip'
import { answer, decisionRecord, secs, type RecipientDecision } from '../../plugins/smart-greylist/core/recipient'
import { evidenceText, isTrusted } from '../../plugins/smart-greylist/core/select'
import { safeField } from '../../plugins/smart-greylist/core/text'
import netUtils from 'haraka-net-utils'
import type { Config } from '../../plugins/smart-greylist/core/settings'
import { defineCommand, EXIT, optionText, UsageError, jsonText } from '../command'

/** What `check --json` prints: the decision the plugin would take (the union itself), and why. */
export type CheckReport = RecipientDecision & {
  /**
   * What the client would be answered, `unknown` when Redis is unreachable; `postpone`: accepted
   * at RCPT, its message deferred at the end of data unless the message's own record passes it.
   */
  readonly answer: 'accept' | 'defer' | 'postpone' | 'unknown'
  /** The line the plugin would log for it. */
  readonly line: string
  readonly facts: {
    readonly client: string
    readonly rdns: RdnsFacts | null
    readonly spf: SpfFacts | null
    readonly sender: string
    readonly recipient: string
  }
  /** The tuple's state in Redis, as read, when it was read. */
  readonly stored: {
    readonly tuple: { readonly firstSeen: string; readonly passedAt: string | null; readonly expiresInSeconds: number } | null
    readonly autoWhitelist: { readonly passes: number; readonly needed: number; readonly senderDomain: string | null } | null
  } | null
  readonly redis: { readonly target: string; readonly error: string | null }
}

export const check = defineCommand({
  name: 'check',
  summary: 'explain the decision the plugin would take now (changes nothing)',
  usage: '--ip IP [--helo NAME] [--rdns NAME] [--spf RESULT] --from ADDR --to ADDR [--config DIR] [--dns SERVER] [--json]',
  description: [
    "Runs the plugin's own decision: the identity and why, the whitelist entry or provider that matches,",
    'the tuple in Redis and the seconds left, and the line the plugin would log. Without --rdns it looks up',
    'the PTR and forward records as the plugin does; with --rdns the name is taken as forward-confirmed',
    "(as the fcrdns plugin's result is). Without --spf SPF is evaluated as the plugin does when the spf",
    'plugin is not loaded; with it, the result is taken as the spf plugin\'s. Use --from "" for the null sender.',
    'Without Redis the whitelist, provider and identity answers still come, with the tuple state unknown.',
    'Exit 0: the mail would be accepted; 1: it would be deferred (at RCPT, or its message at the end of data);',
    '2: usage error or failure;',
    '3: whether it would be deferred is unknown, because Redis is unreachable.',
  ],
  options: {
    ip: { type: 'string' },
    helo: { type: 'string' },
    rdns: { type: 'string' },
    spf: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    dns: { type: 'string', multiple: true },
  },
  optionHelp: {
    ip: 'client address',
    helo: 'HELO/EHLO name',
    rdns: "the client's rDNS name, taken as forward-confirmed (skips the PTR lookup)",
    spf: 'the SPF result for the sender (pass, fail, softfail, neutral, none, temperror, permerror), as the spf plugin would give it',
    from: 'envelope sender ("" for the null sender)',
    to: 'envelope recipient',
    dns: 'ask this DNS server instead of the system resolver (repeatable)',
  },
  async run({ values, io, ctx }) {
    const ip = parseIp(values.ip as string | undefined)
    if (!ip) throw new UsageError('--ip takes an IPv4 or IPv6 address')
    if (values.from === undefined || !values.to) throw new UsageError('--from and --to are required')
    const spfGiven = values.spf === undefined ? null : spfResultFrom(values.spf)
    if (values.spf !== undefined && !spfGiven) throw new UsageError('--spf takes pass, fail, softfail, neutral, none, temperror or permerror')
    const rdnsName = optionText(values.rdns)
    const rdnsGiven: RdnsFacts | null = rdnsName ? { status: 'ok', names: [{ name: rdnsName.toLowerCase(), confirmed: true }] } : null
    return ctx.withSession({ dns: values.dns as string[] | undefined, requireRedis: false }, async ({ deps, admin, redisError, redisTarget }) => {
      const { config } = deps
      const subject = {
        ip,
        helo: (values.helo as string | undefined) ?? null,
        sender: String(values.from),
        recipient: String(values.to),
        relaying: false,
        isPrivate: netUtils.is_private_ip(ip.toString()),
      }
      const cache: FactCache = {}
      const peek = new TuplePeek(admin, deps.decisions)
      const decision = await decideRecipient(
        deps,
        { subject, given: { rdns: () => rdnsGiven, spf: () => spfGiven }, connection: cache, transaction: cache },
        peek,
      )
      const report: CheckReport = {
        ...decision,
        answer: decision.kind === 'failed' ? 'unknown' : decision.kind === 'tuple' && decision.postponed ? 'postpone' : answer(decision, config),
        line: decisionRecord(decision, { from: subject.sender, to: subject.recipient }, config.main.on_error).line,
        facts: {
          client: ip.toString(),
          rdns: (await cache.rdns) ?? null,
          spf: (await cache.spf) ?? null,
          sender: normaliseAddress(subject.sender),
          recipient: normaliseRecipient(subject.recipient, config.envelope.recipient_strip_ext),
        },
        stored: peek.read && {
          tuple: peek.read.tuple && {
            firstSeen: new Date(peek.read.tuple.firstSeen).toISOString(),
            passedAt: peek.read.tuple.passedAt === null ? null : new Date(peek.read.tuple.passedAt).toISOString(),
            expiresInSeconds: secs(peek.read.ttlMs),
          },
          autoWhitelist:
            peek.read.awlCount === null
              ? null
              : { passes: peek.read.awlCount, needed: config.awl.passes, senderDomain: domainOrNull(normaliseAddress(subject.sender)) },
        },
        redis: { target: redisTarget, error: redisError },
      }
      if (values.json) io.out(jsonText(report, 2))
      else for (const line of describe(report, config)) io.out(line)
      return report.answer === 'unknown' ? EXIT.unknown : report.answer === 'accept' ? EXIT.ok : EXIT.finding
    })
  },
})

function domainOrNull(sender: string): string | null {
  return sender === NULL_SENDER ? null : domainOf(sender)
}

/** The text report; every name and address in it (from the options, DNS or Redis) through safeField. */
function describe(r: CheckReport, config: Config): string[] {
  const lines: string[] = []
  const row = (k: string, v: string): void => {
    lines.push(`${k.padEnd(12)}${v}`)
  }
  const { rdns, spf } = r.facts
  row('client', r.facts.client)
  if (rdns)
    row(
      'rDNS',
      rdns.status === 'ok'
        ? rdns.names.map((n) => `${safeField(n.name)} (${n.confirmed ? 'forward-confirmed' : 'not confirmed'})`).join(', ')
        : rdns.status === 'none'
          ? 'no PTR'
          : `lookup failed: ${rdns.error}`,
    )
  if (spf)
    row(
      'SPF',
      `${spf.domain === null ? 'none' : safeField(spf.domain)}: ${spf.result}${spf.permissive ? ` (permissive record, not trusted: ${spf.guard ?? ''})` : ''}`,
    )
  row('envelope', `<${safeField(r.facts.sender)}> -> <${safeField(r.facts.recipient)}>`)
  if ('identity' in r) row('identity', `${identityField(r.identity)} (${r.identity.reason})`)
  const rule = 'rule' in r ? r.rule : undefined
  if (rule) row('rule', `${ruleText(rule)} (${rule.origin})`)
  const policy = rule?.settings.policy ?? config.select.policy
  if ('evidence' in r) row('evidence', `${evidenceText(r.evidence)} (${isTrusted(r.evidence) ? 'trusted' : 'not trusted'}; [select] policy = ${policy})`)
  const t = r.stored?.tuple
  if (r.kind === 'failed') row('tuple', `state unknown: Redis unreachable at ${r.redis.target}: ${r.redis.error ?? r.message}`)
  else if (r.stored)
    row('tuple', t ? `first seen ${t.firstSeen}${t.passedAt ? `, passed ${t.passedAt}` : ', pending'}; expires in ${t.expiresInSeconds} s` : 'not seen before')
  const awl = r.stored?.autoWhitelist
  if (awl) row('auto-wl', `${awl.passes} of ${awl.needed} passes for ${awl.senderDomain === null ? 'the null sender' : safeField(awl.senderDomain)}`)
  row('decision', decisionText(r, config))
  row('log', r.line)
  return lines
}

function decisionText(r: CheckReport, config: Config): string {
  switch (r.kind) {
    case 'skip':
      return `accept: skipped: ${r.reason}`
    case 'whitelist':
      return `accept: whitelist:${r.what} ${safeField(r.entry)} (${r.origin})`
    case 'correspondent':
      return `accept: correspondent: <${safeField(r.facts.recipient)}> wrote to ${safeField(r.domain)}`
    case 'failed':
      return `unknown: tuple state unknown: Redis ${r.redis.error ? 'unreachable' : `failed (${r.cause})`}; the plugin would now ${answer(r, config) === 'accept' ? 'accept (fail open)' : 'defer (on_error = defer)'}`
    case 'trusted':
      return `accept: ${r.verdict.status} (select suspicious: accepted on its evidence)`
    case 'tuple': {
      const v = r.verdict
      const head =
        v.action === 'pass'
          ? 'accept'
          : r.answer === 'postpone'
            ? 'postpone (accepted at RCPT; the message is deferred at the end of data unless its retry passes)'
            : r.answer === 'accept'
              ? 'accept (shadow mode; would defer)'
              : 'defer'
      const extra = v.action === 'defer' ? `; a retry is accepted in ${secs(v.retryInMs)} s` : v.waitedMs ? `; delayed ${secs(v.waitedMs)} s` : ''
      return `${head}: ${v.status}${extra}`
    }
  }
}
