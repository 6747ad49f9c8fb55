// One test drives both: for every state of the decision table and the select/correspondent
// cases, `smart-greylist check --json` predicts the decision, and then a real Haraka makes it for
// the same client and envelope against the same Redis, DNS and config. The line check says the
// plugin would log must be the line it logs (timings aside), and the answers must agree.
import assert from 'node:assert/strict'
import type { CheckReport } from '../../cli/commands/check'
import { correspondentField, correspondentKey, identityKeys } from '../../plugins/smart-greylist/core/keys'
import { runCli } from '../helpers/cli'
import { connectRedis, type TestRedis } from '../../scripts/harness/redis'
import { deliver } from '../../scripts/harness/smtp'
import { useStack } from '../helpers/stack'

// The old name of [main] net_identity_greylist on purpose: it is still read, over the package's
// copy (which names the new key with its default), by the plugin and by `check` alike.
const INI = (policy: 'all' | 'suspicious', weakAt: 'rcpt' | 'data' = 'rcpt'): string =>
  `[main]\ndelay=30\nretry_window=3600\ndefer_weak_at=${weakAt}\n[whitelist]\nproviders=false\n[awl]\npasses=3\n[limits]\npending_per_identity=10\n[select]\npolicy=${policy}\nzones=bl.test\n`

/** A client with a confirmed name and a bounded SPF record: trusted evidence unless listed. */
const TRUSTED = { ip: '81.169.146.10', name: 'mx1.trusted.example', from: 'news@trusted.example' }
/** The same evidence, but listed by the DNSBL. */
const LISTED = { ip: '89.248.165.20', name: 'mx.listed.example', from: 'promo@listed.example' }
/** An authenticated partner that a local mailbox wrote to. */
const PARTNER = { ip: '81.169.147.5', from: 'dan@partner.example' }

interface Case {
  name: string
  ip: string
  from: string
  to: string
  /** Puts Redis in the state the case is about, just before check and the delivery. */
  seed?: (db: TestRedis) => Promise<void>
  /** The decision both must come to (kind, and the tuple's status where there is one). */
  expect: string
}

/** Net identities of their own per case (85.214.<n>.0/24), so the cases cannot disturb each other. */
function netCase(n: number, status: string, seed?: (k: ReturnType<typeof identityKeys>, tuple: string, db: TestRedis) => Promise<void>): Case {
  const from = `s${n}@sender${n}.example`
  const to = `r${n}@example.com`
  const k = identityKeys('sgl:', `net:85.214.${n}.0/24`)
  return { name: status, ip: `85.214.${n}.9`, from, to, expect: `tuple:${status}`, ...(seed ? { seed: (db) => seed(k, k.tuple(from, to), db) } : {}) }
}

async function hset(db: TestRedis, key: string, fields: Record<string, string>): Promise<void> {
  await db.sendCommand(['HSET', key, ...Object.entries(fields).flat()])
}

const TABLE: Case[] = [
  netCase(201, 'new'),
  netCase(202, 'early', (_k, t, db) => hset(db, t, { f: String(Date.now() - 2000) })),
  netCase(203, 'retry', (_k, t, db) => hset(db, t, { f: String(Date.now() - 60_000) })),
  netCase(204, 'known', (_k, t, db) => hset(db, t, { f: String(Date.now() - 900_000), p: String(Date.now() - 800_000) })),
  netCase(205, 'expired', (_k, t, db) => hset(db, t, { f: String(Date.now() - 7_200_000) })),
  netCase(206, 'awl', (k, _t, db) => hset(db, k.awl('sender206.example', 'net:85.214.0.0/16'), { n: '3' })),
  netCase(207, 'capped', async (k, _t, db) => void (await db.set(k.started, '10'))),
  { name: 'skip (a private client)', ip: '10.20.30.40', from: 'a@local.example', to: 'r1@example.com', expect: 'skip' },
  { name: 'whitelist (ip: entry)', ip: '85.214.132.10', from: 'a@wl.example', to: 'r2@example.com', expect: 'whitelist' },
  {
    name: 'correspondent',
    ip: PARTNER.ip,
    from: PARTNER.from,
    to: 'alice@example.com',
    seed: (db) =>
      hset(db, correspondentKey('sgl:', 'alice@example.com'), {
        m: 'alice@example.com',
        [correspondentField('partner.example')]: `${Date.now() + 86_400_000}|partner.example`,
      }),
    expect: 'correspondent',
  },
  { name: 'would_trust (trusted evidence under policy all)', ip: TRUSTED.ip, from: TRUSTED.from, to: 'r3@example.com', expect: 'tuple:new' },
  { name: 'listed (under policy all)', ip: LISTED.ip, from: LISTED.from, to: 'r4@example.com', expect: 'tuple:new' },
  { name: 'a domain rule: off', ip: '85.214.208.9', from: 'x@sender208.example', to: 'r7@off.example', expect: 'skip' },
  { name: 'a domain rule: shadow mode and a delay of its own', ip: '85.214.209.9', from: 'x@sender209.example', to: 'r8@trial.example', expect: 'tuple:new' },
  { name: 'a domain rule: policy=suspicious for a trusted client', ip: TRUSTED.ip, from: TRUSTED.from, to: 'r9@picky.example', expect: 'trusted:new' },
]

/** Weak identities (only a network) under net_identity_greylist = message: postponed at RCPT. */
const WEAK_AT_DATA: Case[] = [
  netCase(211, 'new'),
  netCase(212, 'early', (_k, t, db) => hset(db, t, { f: String(Date.now() - 2000) })),
  netCase(213, 'retry', (_k, t, db) => hset(db, t, { f: String(Date.now() - 60_000) })),
  { name: 'a host identity is still deferred at RCPT', ip: LISTED.ip, from: LISTED.from, to: 'r10@example.com', expect: 'tuple:new' },
]

const SUSPICIOUS: Case[] = [
  { name: 'trusted (accepted on evidence)', ip: TRUSTED.ip, from: TRUSTED.from, to: 'r5@example.com', expect: 'trusted:new' },
  { name: 'listed (deferred under suspicious)', ip: LISTED.ip, from: LISTED.from, to: 'r6@example.com', expect: 'tuple:new' },
]

describe('smart-greylist check agrees with the running plugin', function () {
  this.timeout(120_000)
  let db: TestRedis
  after(() => db?.quit().catch(() => undefined))
  const stack = useStack({
    ini: INI('all'),
    whitelist: 'ip:85.214.132.0/24\n',
    files: {
      host_list: 'example.com\noff.example\ntrial.example\npicky.example\n',
      'smart-greylist.domains': 'off.example off\ntrial.example mode=shadow delay=5\npicky.example policy=suspicious\n',
    },
    zones: [
      {
        ptr: { [TRUSTED.ip]: [TRUSTED.name], [LISTED.ip]: [LISTED.name] },
        a: { [TRUSTED.name]: [TRUSTED.ip], [LISTED.name]: [LISTED.ip], '20.165.248.89.bl.test': ['127.0.0.2'] },
        txt: {
          'trusted.example': ['v=spf1 ip4:81.169.146.0/24 -all'],
          'listed.example': ['v=spf1 ip4:89.248.165.0/24 -all'],
          'partner.example': ['v=spf1 ip4:81.169.147.0/24 -all'],
        },
      },
    ],
  })
  before(async () => {
    db = await connectRedis(stack.redis.port)
  })

  /** Without its timings (a second may pass between the two). */
  const untimed = (line: string): string => line.replace(/ waited=-?\d+s| retry_in=-?\d+s/g, '')

  async function agree(c: Case): Promise<void> {
    await c.seed?.(db)
    const r = await runCli([
      'check',
      '--ip',
      c.ip,
      '--from',
      c.from,
      '--to',
      c.to,
      '--json',
      '--config',
      stack.haraka.configDir,
      '--dns',
      `127.0.0.1:${stack.dns.port}`,
    ])
    assert.ok(r.code === 0 || r.code === 1, `check exit ${r.code}: ${r.stdout}${r.stderr}`)
    const predicted = JSON.parse(r.stdout) as CheckReport
    assert.equal(
      predicted.kind === 'tuple' || predicted.kind === 'trusted' ? `${predicted.kind}:${predicted.verdict.status}` : predicted.kind,
      c.expect,
      predicted.line,
    )
    assert.equal(r.code, predicted.answer === 'accept' ? 0 : 1)

    const mark = stack.haraka.log.length
    const t = await deliver(stack.haraka.port, { clientIp: c.ip, from: c.from, to: [c.to] })
    const logged = await stack.haraka.waitFor(new RegExp(`\\[smart-greylist\\] .*to=<${c.to.replace(/[.+]/g, '\\$&')}>`), 10_000, mark)
    const actual = logged.slice(logged.indexOf('[smart-greylist] ') + '[smart-greylist] '.length)
    assert.equal(untimed(actual), untimed(predicted.line))
    assert.equal(t.rcpt[0]?.code, predicted.answer === 'defer' ? 451 : 250, `${c.name}: ${actual}`)
  }

  for (const c of TABLE) it(`policy all, ${c.name}: the same decision, identity and reason`, () => agree(c))

  describe('after a switch to [select] policy = suspicious (no restart)', () => {
    before(async () => {
      const mark = stack.haraka.log.length
      stack.haraka.writeConfig('smart-greylist.ini', INI('suspicious'))
      await stack.haraka.waitFor(/\[smart-greylist\] loaded: /, 10_000, mark)
    })
    for (const c of SUSPICIOUS) it(`${c.name}: the same decision, identity and reason`, () => agree(c))
  })

  describe('after a switch to [main] net_identity_greylist = message, by its old name defer_weak_at = data (no restart)', () => {
    before(async () => {
      const mark = stack.haraka.log.length
      stack.haraka.writeConfig('smart-greylist.ini', INI('all', 'data'))
      await stack.haraka.waitFor(/\[smart-greylist\] loaded: /, 10_000, mark)
    })
    for (const c of WEAK_AT_DATA) it(`${c.name}: the same decision, identity and reason`, () => agree(c))
  })
})
