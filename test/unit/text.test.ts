// Text an attacker cannot shape: the one escaping of outside values (core/text.ts), and the lines
// and header that render them. Haraka accepts MAIL FROM:<"x> pass reason=retry\u0085accept <z"@…>;
// none of that may become a field, a line break or a header fold of ours.
import assert from 'node:assert/strict'
import { headerValue } from '../../plugins/smart-greylist/core/header'
import { messageRecord } from '../../plugins/smart-greylist/core/message'
import { decisionRecord, type RecipientDecision } from '../../plugins/smart-greylist/core/recipient'
import { evidenceText } from '../../plugins/smart-greylist/core/select'
import { stuckPairs } from '../../plugins/smart-greylist/core/stuck'
import { readField, safeExcerpt, safeField } from '../../plugins/smart-greylist/core/text'
import type { Verdict } from '../../plugins/smart-greylist/core/decision'

/** What a reader may take for a line break: ASCII's and Unicode's. */
const LINE_BREAK = /[\n\v\f\r\u0085\u2028\u2029]/

/** The key=value fields of a line, as a reader splitting on spaces sees them. */
function keysOf(line: string): string[] {
  return line
    .split(' ')
    .filter((t) => t.includes('='))
    .map((t) => t.slice(0, t.indexOf('=')))
}

describe('safeField', () => {
  const cases: [string, string, string][] = [
    ['plain address', 'alice@contoso.example', 'alice@contoso.example'],
    ['empty', '', ''],
    ['space', 'a b', 'a\\x20b'],
    ['<', 'a<b', 'a\\x3cb'],
    ['>', 'a>b', 'a\\x3eb'],
    ['=', 'a=b', 'a\\x3db'],
    ['"', 'a"b', 'a\\x22b'],
    [',', 'a,b', 'a\\x2cb'],
    ['backslash', 'a\\b', 'a\\\\b'],
    ['a backslash before x', '\\x41', '\\\\x41'],
    ['NUL', 'a\0b', 'a\\x00b'],
    ['TAB', 'a\tb', 'a\\x09b'],
    ['LF', 'a\nb', 'a\\x0ab'],
    ['CR', 'a\rb', 'a\\x0db'],
    ['CRLF', 'a\r\nb', 'a\\x0d\\x0ab'],
    ['ESC', 'a\x1bb', 'a\\x1bb'],
    ['DEL', 'a\x7fb', 'a\\x7fb'],
    ['U+0085 NEL', 'a\u0085b', 'a\\x85b'],
    ['U+00A0 no-break space', 'a\u00a0b', 'a\\xa0b'],
    ['U+2028 line separator', 'a\u2028b', 'a\\u{2028}b'],
    ['U+2029 paragraph separator', 'a\u2029b', 'a\\u{2029}b'],
    ['U+200B zero width space', 'a\u200bb', 'a\\u{200b}b'],
    ['U+202E right-to-left override', 'a\u202eb', 'a\\u{202e}b'],
    ['Latin-1 letter', 'jörg', 'j\\xf6rg'],
    ['BMP letter', 'δ€', '\\u{3b4}\\u{20ac}'],
    ['astral character (one code point, not two halves)', 'a😀', 'a\\u{1f600}'],
    ['unpaired surrogate', 'a\ud800b', 'a\\u{d800}b'],
    ['printable ASCII kept', "!#$%&'()*+-./:;?@[]^_`{|}~", "!#$%&'()*+-./:;?@[]^_`{|}~"],
    ['a forged decision', '"x> pass reason=retry', '\\x22x\\x3e\\x20pass\\x20reason\\x3dretry'],
  ]
  for (const [name, input, expected] of cases) {
    it(`${name}: ${JSON.stringify(input)} -> ${expected}`, () => {
      assert.equal(safeField(input), expected)
    })
  }

  it('gives printable ASCII only, with none of the delimiters <>=", and a backslash only to start an escape', () => {
    for (let cp = 0; cp <= 0x3000; cp++) {
      const out = safeField(`a${String.fromCodePoint(cp)}b`)
      assert.match(out, /^[\x21-\x7e]*$/, `U+${cp.toString(16)}`)
      assert.doesNotMatch(out, /[<>=",]/, `U+${cp.toString(16)}`)
      assert.doesNotMatch(out.replace(/\\(?:\\|x[0-9a-f]{2}|u\{[0-9a-f]+\})/g, ''), /\\/, `U+${cp.toString(16)}`)
    }
  })

  it('is reversible: readField gives every value back, so no two values share a rendering', () => {
    // Every code point class, mixed at random: letters, delimiters, escapes' own characters, controls, surrogates.
    const alphabet = [
      'a',
      'x',
      'u',
      '{',
      '}',
      '0',
      'f',
      '\\',
      ' ',
      '<',
      '>',
      '=',
      '"',
      ',',
      '\0',
      '\r',
      '\n',
      '\u0085',
      '\u2028',
      'ö',
      '€',
      '😀',
      '\ud800',
      '\udc00',
    ]
    let seed = 7
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    const seen = new Map<string, string>()
    for (let i = 0; i < 5000; i++) {
      const value = Array.from({ length: random(8) }, () => alphabet[random(alphabet.length)]).join('')
      const text = safeField(value)
      assert.equal(readField(text), value, JSON.stringify(value))
      const other = seen.get(text)
      if (other !== undefined) assert.equal(other, value, `${JSON.stringify(other)} and ${JSON.stringify(value)} both render as ${text}`)
      seen.set(text, value)
    }
  })

  it('reads back only what it renders: a stray backslash, a raw delimiter or a non-canonical escape is refused', () => {
    for (const text of ['a\\', 'a\\q', 'a b', 'a=b', 'a\\x41', 'a\\X0a', 'a\\u{41}', 'a\\u{0085}', 'a\\u{110000}', 'a\\x0A']) {
      assert.equal(readField(text), null, text)
    }
    assert.equal(readField('a\\x0ab\\u{2028}\\\\'), 'a\nb\u2028\\')
  })
})

describe('safeExcerpt', () => {
  it('cuts a long value before it escapes it, and says it cut', () => {
    assert.equal(safeExcerpt('short', 10), 'short')
    assert.equal(safeExcerpt(`a b${'x'.repeat(50)}`, 5), 'a\\x20bxx\\u{2026}')
  })
})

describe('the lines and the header that show outside values', () => {
  // The sender Haraka accepts (test/e2e/escaping.test.ts), with the U+2028 it refuses added.
  const forged = '"x> pass reason=retry identity=spf:bank.example\u0085accept\u2028to=<z\r\nX-Injected: 1"@evil.example'
  const hostile = 'bank.example accept reason=retry\u2028x=y\r\nX-Injected: 1'
  const identity = { kind: 'spf', value: hostile, reason: 'spf_pass' } as const
  const evidence = { fcrdns: `mail.${hostile}`, spf: hostile, dnsbl: { source: 'none', listed: [] } } as const
  const verdict = (action: Verdict['action'], status: Verdict['status']): Verdict => ({ action, status, waitedMs: 312_000, retryInMs: 300_000 })

  const decisions: [string, RecipientDecision, string[]][] = [
    [
      'a deferral',
      { kind: 'tuple', identity, verdict: verdict('defer', 'new'), wouldTrust: true, evidence, shadow: false },
      ['reason', 'identity', 'identity_reason', 'from', 'to', 'waited', 'retry_in', 'suspicious_would', 'evidence'],
    ],
    [
      'a trusted first contact',
      { kind: 'trusted', identity, verdict: verdict('defer', 'new'), evidence },
      ['reason', 'evidence', 'identity', 'tuple', 'from', 'to'],
    ],
    ['a correspondent', { kind: 'correspondent', identity, domain: hostile }, ['reason', 'domain', 'identity', 'from', 'to']],
    ['a whitelist entry', { kind: 'whitelist', what: 'from', entry: 'from:a b=c@x.example', origin: 'w:1' }, ['reason', 'entry', 'from', 'to']],
    ['a failure', { kind: 'failed', identity, cause: 'redis_timeout', message: 'timed out', shadow: false }, ['on_error', 'identity', 'from', 'to']],
  ]
  for (const [name, d, keys] of decisions) {
    it(`decisionRecord, ${name}: one line, our fields only, the values read back`, () => {
      const { line } = decisionRecord(d, { from: forged, to: `bob${hostile}@example.com` }, 'accept')
      assert.doesNotMatch(line, LINE_BREAK)
      assert.match(line, /^[\x20-\x7e]*$/)
      assert.deepEqual(keysOf(line), keys, line)
      const from = /from=<([^>]*)>/.exec(line)?.[1] ?? ''
      assert.equal(readField(from), forged)
    })
  }

  it('messageRecord: one line, our fields only', () => {
    const { line } = messageRecord({ verdict: verdict('defer', 'new'), digest: 'f'.repeat(64), identity, recipients: 1 }, forged)
    assert.doesNotMatch(line, LINE_BREAK)
    assert.deepEqual(keysOf(line), ['reason', 'message', 'identity', 'from', 'recipients', 'waited', 'retry_in'])
  })

  it('evidenceText: a PTR name cannot add a part to the list', () => {
    const text = evidenceText({ fcrdns: 'a,spf:bank.example,dnsbl:clean(own).evil.example', spf: null, dnsbl: { source: 'own', listed: [] } })
    assert.equal(text.split(',').length, 3)
    assert.match(text, /,spf:none,dnsbl:clean\(own\)$/)
  })

  const headers: [string, RecipientDecision[]][] = [
    ['a delayed tuple', [{ kind: 'tuple', identity, verdict: verdict('pass', 'retry'), wouldTrust: false, evidence, shadow: false }]],
    ['a trusted first contact', [{ kind: 'trusted', identity, verdict: verdict('pass', 'new'), evidence }]],
    ['a correspondent', [{ kind: 'correspondent', identity, domain: hostile }]],
    ['a known sender', [{ kind: 'tuple', identity, verdict: verdict('pass', 'known'), wouldTrust: false, evidence, shadow: false }]],
  ]
  for (const [name, passed] of headers) {
    it(`headerValue, ${name}: printable ASCII, no fold, no field of the client's`, () => {
      const value = headerValue(passed) ?? ''
      assert.match(value, /^[\x20-\x7e]+$/, value)
      assert.doesNotMatch(value, /X-Injected: |accept reason=|x=y/, value)
    })
  }

  it("stuckPairs: a suggestion made of the senders' names shows them escaped", () => {
    const spaced = stuckPairs(
      [1, 2, 3].map((i) => ({
        firstSeen: 1000 + i,
        passedAt: null,
        identity: `net:85.214.${i}.0/24`,
        sender: 'a@evil.example',
        recipient: 'b@example.com',
        client: `85.214.${i}.7`,
        rdns: `m${i}.a b=c.evil.example`,
      })),
      2000,
      { minDeferrals: 3, windowMs: 10_000, orgDomain: (n) => (n.endsWith('evil.example') ? 'evil.example' : null), netIdentityGreylist: 'recipient' },
    )
    assert.equal(spaced[0]?.suggestion, 'host:*.a\\x20b\\x3dc.evil.example')
  })
})
