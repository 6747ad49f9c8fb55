import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import harakaConfig from 'haraka-config'
import { DEFAULTS, parseSettings, problemText, RENAMED, renderIni, renderSettingsTable, SCHEMA, type KeySpec } from '../../plugins/smart-greylist/core/settings'

const ROOT = path.resolve(__dirname, '..', '..')
const text = (raw: unknown): string[] => parseSettings(raw).problems.map(problemText)

describe('renamed settings: the old name is still read, with a note', () => {
  it('[main] defer_weak_at is read as net_identity_greylist, its values mapped (rcpt -> recipient, data -> message)', () => {
    for (const [old, now] of [
      ['data', 'message'],
      ['rcpt', 'recipient'],
      ['DATA', 'message'],
    ] as const) {
      const r = parseSettings({ main: { defer_weak_at: old } })
      assert.equal(r.config.main.net_identity_greylist, now)
      assert.deepEqual(r.problems, [], 'the old name is not an unknown key')
      assert.equal(r.notes.length, 1)
      assert.match(
        r.notes[0],
        /^smart-greylist\.ini \[main\] defer_weak_at is now called net_identity_greylist: read as net_identity_greylist = (message|recipient); rename it/,
      )
    }
  })

  it('the new name is read without a note', () => {
    const r = parseSettings({ main: { net_identity_greylist: 'message' } })
    assert.equal(r.config.main.net_identity_greylist, 'message')
    assert.deepEqual(r.notes, [])
    assert.deepEqual(r.problems, [])
  })

  it("the old name wins over the new one while it is there (the package's copy always names the new key)", () => {
    const r = parseSettings({ main: { net_identity_greylist: 'recipient', defer_weak_at: 'data' } })
    assert.equal(r.config.main.net_identity_greylist, 'message')
    assert.match(r.notes[0], /wins over net_identity_greylist/)
  })

  it('a bad value under the old name is reported under the new one, and the previous value kept', () => {
    const r = parseSettings({ main: { defer_weak_at: 'helo' } })
    assert.equal(r.config.main.net_identity_greylist, 'recipient')
    assert.deepEqual(r.problems.map(problemText), [
      'smart-greylist.ini [main] net_identity_greylist: "helo" is not one of recipient, message; keeping "recipient"',
    ])
  })

  it('every renamed key names a key of the schema, and its old values map onto the new ones', () => {
    for (const r of RENAMED) {
      const spec = (SCHEMA as Record<string, { keys: Record<string, KeySpec> }>)[r.section].keys[r.to]
      assert.ok(spec, `${r.to} is not in [${r.section}]`)
      assert.ok(!(r.from in (SCHEMA as Record<string, { keys: Record<string, KeySpec> }>)[r.section].keys))
      if (spec.type === 'enum') for (const v of Object.values(r.values ?? {})) assert.ok(spec.values.includes(v), `${r.from}: ${v}`)
    }
  })
})

describe('parseSettings', () => {
  it('returns the defaults for an empty or missing file', () => {
    assert.deepEqual(parseSettings({}).config, DEFAULTS)
    assert.deepEqual(parseSettings(undefined).config, DEFAULTS)
    assert.deepEqual(parseSettings({ main: {} }).problems, [])
  })

  it('reads numbers, booleans and choices as haraka-config hands them over (strings or typed)', () => {
    const { config: c, problems } = parseSettings({
      main: { delay: '60', retry_window: 7200, defer_at: 'DATA', on_error: 'defer' },
      skip: { private: false },
      whitelist: { providers: 'no', verify_helo: 'off' },
      identity: { ipv4_prefix: '20', spf: 1 },
      redis: { prefix: 'mx1:', timeout_ms: '250', host: '10.1.1.1', db: 12 },
      providers: { AmazonSES: 'group' },
    })
    assert.deepEqual(problems, [])
    assert.equal(c.main.delay, 60)
    assert.equal(c.main.retry_window, 7200)
    assert.equal(c.main.defer_at, 'data')
    assert.equal(c.main.on_error, 'defer')
    assert.equal(c.skip.private, false)
    assert.equal(c.whitelist.providers, false)
    assert.equal(c.whitelist.verify_helo, false)
    assert.equal(c.identity.spf, true)
    assert.equal(c.identity.ipv4_prefix, 20)
    assert.equal(c.redis.prefix, 'mx1:')
    assert.equal(c.redis.timeout_ms, 250)
    assert.deepEqual(c.providers, { amazonses: 'group' })
  })

  it('reads [refresh] accept_new as CIDR ranges, and reports what is not one', () => {
    assert.deepEqual(parseSettings({ refresh: { accept_new: '52.96.0.0/14, 2603:1000::/28 192.0.2.1' } }).config.refresh.accept_new, [
      '52.96.0.0/14',
      '2603:1000::/28',
      '192.0.2.1/32',
    ])
    assert.deepEqual(text({ refresh: { accept_new: '52.96.0.0/14 52.96.0.0/33 bogus' } }), [
      'smart-greylist.ini [refresh] accept_new: not an address or network: 52.96.0.0/33, bogus; keeping ""',
    ])
  })

  it('returns a frozen object', () => {
    const c = parseSettings({}).config
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.main))
  })

  const bad: [string, Record<string, Record<string, unknown>>, RegExp][] = [
    ['a negative delay', { main: { delay: '-5' } }, /\[main\] delay: "-5" is not a whole number from 0 to 604800; keeping "300"/],
    ['a window shorter than the delay', { main: { delay: 600, retry_window: 300 } }, /\[main\] retry_window: 300 must be longer than delay \(600\)/],
    ['an unknown defer_at', { main: { defer_at: 'helo' } }, /\[main\] defer_at: "helo" is not one of rcpt, data/],
    ['a prefix with spaces', { redis: { prefix: 'a b' } }, /\[redis\] prefix: "a b" is not A-Z a-z 0-9/],
    ['a reply text with control characters', { main: { text: 'x\r\n250 ok' } }, /\[main\] text:/],
    ['a fractional prefix length', { identity: { ipv4_prefix: '24.5' } }, /\[identity\] ipv4_prefix: "24.5" is not a whole number/],
    ['a boolean that is not one', { identity: { spf: 'yes please' } }, /\[identity\] spf: "yes please" is not true or false; keeping "true"/],
    ['a misspelt key', { main: { delya: 10 } }, /\[main\] delya: unknown key, ignored \(did you mean delay\?\)/],
    ['an unknown section', { mian: { delay: 10 } }, /\[mian\]: unknown section, ignored \(did you mean \[main\]\?\)/],
    ['a bad provider action', { providers: { google: 'maybe' } }, /\[providers\] google: "maybe" is not one of skip, group, off/],
    [
      'a scraper that is no network',
      { metrics: { allow: '10.0.0.0/8 localhost' } },
      /\[metrics\] allow: not an address or network: localhost; keeping "127\.0\.0\.0\/8 ::1\/128"/,
    ],
  ]
  for (const [what, raw, message] of bad) {
    it(`reports ${what} with the file and key`, () => {
      const found = text(raw)
      assert.ok(
        found.some((p) => p.startsWith('smart-greylist.ini [') && message.test(p)),
        found.join('\n'),
      )
    })
  }

  it('reads [metrics] allow as networks: loopback by default, bare addresses as /32 and /128, mapped IPv6 as IPv4', () => {
    assert.deepEqual(parseSettings({}).config.metrics.allow, ['127.0.0.0/8', '::1/128'])
    const { config, problems } = parseSettings({ metrics: { allow: '192.0.2.7, 2001:db8::/32 ::ffff:198.51.100.0/120' } })
    assert.deepEqual(problems, [])
    assert.deepEqual(config.metrics.allow, ['192.0.2.7/32', '2001:db8::/32', '198.51.100.0/24'])
    assert.deepEqual(parseSettings({ metrics: { allow: '' } }).config.metrics.allow, [])
  })

  it('keeps the previous good value of a key whose new value is bad, and takes the good ones', () => {
    const previous = parseSettings({ main: { delay: 60 }, identity: { spf: false } }).config
    const { config } = parseSettings({ main: { delay: 'soon', pass_ttl: 86_400 }, identity: { spf: 'yes please' } }, previous)
    assert.equal(config.main.delay, 60)
    assert.equal(config.main.pass_ttl, 86_400)
    assert.equal(config.identity.spf, false)
  })
})

describe('the settings schema is the one source', () => {
  it('the shipped config/smart-greylist.ini is rendered from it (npm run settings:render)', () => {
    assert.equal(fs.readFileSync(path.join(ROOT, 'config', 'smart-greylist.ini'), 'utf8'), renderIni())
  })

  it('the settings table of docs/settings.md is rendered from it (npm run settings:render)', () => {
    assert.ok(fs.readFileSync(path.join(ROOT, 'docs', 'settings.md'), 'utf8').includes(renderSettingsTable()), 'docs/settings.md settings table is stale')
  })

  it('the shipped ini, read back, gives the defaults and no problem', () => {
    // haraka-config's reading of the shipped file, as the plugin gets it.
    const raw = harakaConfig.module_config(ROOT).get('smart-greylist.ini', 'ini')
    assert.deepEqual(parseSettings(raw), { config: DEFAULTS, problems: [], notes: [] })
  })

  it('declares a doc line, and a default inside its bounds, for every key', () => {
    for (const [sec, spec] of Object.entries(SCHEMA)) {
      for (const [key, k] of Object.entries(spec.keys) as [string, KeySpec][]) {
        assert.ok(k.doc.length > 10, `[${sec}] ${key} has no doc`)
        if (k.type === 'int') assert.ok(k.default >= k.min && k.default <= k.max, `[${sec}] ${key}`)
      }
    }
  })
})
