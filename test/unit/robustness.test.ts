// Hostile or broken input to the pure parsers: a clear error or a safe answer, never a throw.
import assert from 'node:assert/strict'
import { normaliseAddress } from '../../plugins/smart-greylist/core/envelope'
import { parseIp } from '../../plugins/smart-greylist/core/ip'
import { normaliseHost } from '../../plugins/smart-greylist/core/names'
import { parseProviders } from '../../plugins/smart-greylist/core/providers'
import { parseWhitelist } from '../../plugins/smart-greylist/core/whitelist'
import { tupleKey } from '../../plugins/smart-greylist/core/keys'

// A fixed-seed generator, so a failure can be replayed.
function rng(seed: number): () => number {
  let x = seed
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    return x / 0x7fffffff
  }
}

const ALPHABET = 'aZ09.-_+=@:/*[]<>"\\ \t\r\n\u0000\u00e9\u4e2d#!%'

function junk(next: () => number, max = 80): string {
  const n = Math.floor(next() * max)
  let s = ''
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(next() * ALPHABET.length)]
  return s
}

describe('parsers on random input', () => {
  const next = rng(20261128)
  const samples = Array.from({ length: 3000 }, () => junk(next))

  it('normaliseAddress, normaliseHost and parseIp never throw', () => {
    for (const s of samples) {
      assert.equal(typeof normaliseAddress(s), 'string')
      const h = normaliseHost(s)
      assert.ok(h === null || /^[a-z0-9_.-]+$/.test(h), s)
      parseIp(s)
    }
  })

  it('the list parsers report bad lines instead of throwing', () => {
    const lines = samples.map((s) => `host:${s.replace(/[\r\n]/g, '')}`)
    const wl = parseWhitelist(lines, 'fuzz')
    const meaningful = lines.filter((l) => l.replace(/(^|\s)#.*$/, '').trim()).length
    assert.equal(wl.entries.length + wl.errors.length, meaningful, 'every line is either loaded or reported')
    assert.ok(wl.errors.length > 0)
    for (const e of wl.errors) assert.match(e.origin, /^fuzz:\d+$/)
    const pv = parseProviders(['[x]', ...samples.map((s) => `ip = ${s}`)], 'fuzz')
    for (const e of pv.errors) assert.match(e.origin, /^fuzz:\d+$/)
  })

  it('keys stay short and plain whatever the input', () => {
    for (const s of samples) assert.match(tupleKey('sgl:', s, s, s), /^sgl:\{\d{1,3}\}t:[A-Za-z0-9_-]{22}$/)
  })
})
