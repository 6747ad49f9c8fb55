// Unit: the simulator's pure parts: the mix file's bounds, the in-memory DNS answers the plugin's
// lookups get, and a population that a seed replays exactly.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { keyingConfigDir, parseVariant } from '../../cli/sim/engine'
import { load, sourcesForDir } from '../../plugins/smart-greylist/setup'
import { CLASS_IDS, defaultMixPath, parseMix, readMix } from '../../cli/sim/mix'
import { buildPopulation } from '../../cli/sim/population'
import { ZoneResolver } from '../../cli/sim/zone'
import { lookupRdns } from '../../plugins/smart-greylist/adapters/dns'
import { checkSpf } from '../../plugins/smart-greylist/adapters/spf'
import { parseIp } from '../../plugins/smart-greylist/core/ip'

const ONE = { recipients: 10, messages: 100, classes: { gmail: { share: 1, messages_per_sender: 2 } } }

describe('simulate: the mix file', () => {
  it('reads the shipped default, every class named', () => {
    const mix = readMix(defaultMixPath())
    assert.deepEqual(Object.keys(mix.classes).sort(), [...CLASS_IDS].sort())
    assert.ok(CLASS_IDS.every((id) => mix.classes[id].share > 0))
  })

  it('gives unnamed classes no share', () => {
    const mix = parseMix(ONE, 'x')
    assert.equal(mix.classes.exchange_online.share, 0)
    assert.equal(mix.classes.gmail.messages_per_sender, 2)
  })

  it('names what is wrong: an unknown class or key, a number out of bounds, no share at all', () => {
    assert.throws(() => parseMix({ ...ONE, classes: { gmial: { share: 1, messages_per_sender: 1 } } }, 'f'), /f: unknown class "gmial"/)
    assert.throws(() => parseMix({ ...ONE, classes: { gmail: { share: 1, messages_per_sender: 1, shar: 2 } } }, 'f'), /unknown key "shar"/)
    assert.throws(() => parseMix({ ...ONE, recipients: 0 }, 'f'), /recipients: a number from 1/)
    assert.throws(() => parseMix({ ...ONE, messages: 1e12 }, 'f'), /messages: a number from 1 to 5000000/)
    assert.throws(() => parseMix({ ...ONE, classes: { gmail: { share: 0, messages_per_sender: 1 } } }, 'f'), /every share is 0/)
    assert.throws(() => parseMix({ ...ONE, extra: 1 }, 'f'), /unknown key "extra"/)
  })

  it('refuses a file too large to be a mix, or not JSON', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-mix-'))
    try {
      fs.writeFileSync(path.join(dir, 'big.json'), ' '.repeat(70_000))
      assert.throws(() => readMix(path.join(dir, 'big.json')), /larger than/)
      fs.writeFileSync(path.join(dir, 'bad.json'), '{')
      assert.throws(() => readMix(path.join(dir, 'bad.json')), /not JSON/)
      assert.throws(() => readMix(path.join(dir, 'none.json')), /no such file/)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('reads a variant, and refuses one that is not NAME:section.key=value', () => {
    assert.deepEqual(parseVariant('message:main.net_identity_greylist=message,select.policy=all').overlay, {
      main: { net_identity_greylist: 'message' },
      select: { policy: 'all' },
    })
    assert.throws(() => parseVariant('data'), /NAME:section.key=value/)
    assert.throws(() => parseVariant('data:main.delay'), /is not section.key=value/)
  })
})

describe('simulate: DNS from memory', () => {
  const zone = new ZoneResolver()
  zone.add({
    ptr: { '40.107.22.92': ['mail-eopbgr220092.outbound.protection.outlook.com'] },
    a: { 'mail-eopbgr220092.outbound.protection.outlook.com': ['40.107.22.92'], '*.wild.example.com': ['192.0.2.7'] },
    txt: { 'sender.example.com': ['v=spf1 ip4:40.107.0.0/16 -all'] },
  })

  it('answers as a DNS server would: NXDOMAIN, NODATA, wildcards', async () => {
    await assert.rejects(zone.resolveTxt('nothing.example.com'), { code: 'ENOTFOUND' })
    await assert.rejects(zone.resolveTxt('mail-eopbgr220092.outbound.protection.outlook.com'), { code: 'ENODATA' })
    assert.deepEqual(await zone.resolve4('a.b.wild.example.com'), ['192.0.2.7'])
    assert.deepEqual(await zone.resolveTxt('sender.example.com'), [['v=spf1 ip4:40.107.0.0/16 -all']])
  })

  it("serves the plugin's own rDNS and SPF code", async () => {
    const rdns = await lookupRdns(parseIp('40.107.22.92')!, zone, { timeoutMs: 1000, maxNames: 5 })
    assert.deepEqual(rdns, { status: 'ok', names: [{ name: 'mail-eopbgr220092.outbound.protection.outlook.com', confirmed: true }] })
    assert.deepEqual(await lookupRdns(parseIp('40.107.22.93')!, zone, { timeoutMs: 1000, maxNames: 5 }), { status: 'none' })
    assert.equal(await checkSpf('40.107.22.92', 'sender.example.com', 'a@sender.example.com', { resolver: zone, timeoutMs: 1000 }), 'pass')
    assert.equal(await checkSpf('52.100.1.1', 'sender.example.com', 'a@sender.example.com', { resolver: zone, timeoutMs: 1000 }), 'fail')
  })
})

describe('simulate: the population', () => {
  const mix = readMix(defaultMixPath())

  it('is the same for the same seed, attempt by attempt, and another for another seed', () => {
    const trace = (seed: number): string[] => {
      const pop = buildPopulation(mix, { seed, messages: 300 })
      const out: string[] = []
      for (let m = 0; m < pop.count; m++) {
        let t: number | null = 0
        for (let k = 0; k < 4 && t !== null; k++) {
          out.push(`${m} ${k} ${t} ${pop.attempt(m, k).ip} ${pop.sender_address(m)} ${pop.recipient_address(m)}`)
          t = pop.nextAfter(m, k, t)
        }
      }
      return out
    }
    assert.deepEqual(trace(5), trace(5))
    assert.notDeepEqual(trace(5), trace(6))
  })

  it('has the shares of the mix, arrivals in order within the day, and DNS for every address it sends from', () => {
    const pop = buildPopulation(mix, { seed: 1, messages: 1000 })
    assert.equal(pop.count, 1000)
    assert.deepEqual(pop.perClass, [180, 120, 50, 100, 60, 10, 300, 50, 80, 50])
    for (let m = 1; m < pop.count; m++) assert.ok(pop.arrival[m] >= pop.arrival[m - 1] && pop.arrival[m] < 86_400_000)
    // Single-address MTAs and snowshoe senders always have a forward-confirmed name.
    for (let m = 0; m < pop.count; m++) {
      if (pop.cls[m] !== CLASS_IDS.indexOf('company_mta') && pop.cls[m] !== CLASS_IDS.indexOf('snowshoe')) continue
      const ip = pop.attempt(m, 0).ip
      const name = pop.zone.ptr?.[ip]?.[0]
      assert.ok(name && pop.zone.a?.[name]?.includes(ip), `${ip} has no confirmed name`)
    }
  })
})

describe('simulate: a variant over the admin settings', () => {
  it("names the new key and wins over the admin's old name for it", () => {
    const admin = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-simadmin-'))
    const dirs: string[] = [admin]
    try {
      fs.writeFileSync(path.join(admin, 'smart-greylist.ini'), '[main]\ndefer_weak_at = rcpt\ndelay = 120\n')
      const dirOf = (text: string): string => {
        const d = keyingConfigDir(parseVariant(text), { configDir: admin, redis: { host: '127.0.0.1', port: 6379 } })
        dirs.push(d)
        return d
      }
      const main = (d: string) => load(sourcesForDir(d), undefined, undefined, 'daemon').config.main
      const changed = main(dirOf('message:main.net_identity_greylist=message'))
      assert.equal(changed.net_identity_greylist, 'message')
      assert.equal(changed.delay, 120)
      // Without the variant the admin's old name is read as before.
      assert.equal(main(dirOf('same:main.delay=120')).net_identity_greylist, 'recipient')
    } finally {
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
    }
  })
})
