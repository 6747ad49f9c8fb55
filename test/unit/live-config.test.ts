// The configuration in force, loaded from files given as data (setup.ts's compile: no file read):
// the load at register is quiet (the start's logged load is the one once the public-suffix list is
// in), and a note (a renamed setting) is logged at the first logged load, not again at every reload.
import assert from 'node:assert/strict'
import { LiveConfig } from '../../plugins/smart-greylist/adapters/live-config'
import { Telemetry } from '../../plugins/smart-greylist/adapters/telemetry'
import { compile, type ConfigFiles } from '../../plugins/smart-greylist/setup'

const FILES: ConfigFiles = {
  ini: { main: { defer_weak_at: 'data' } },
  redisIni: null,
  whitelist: [],
  providers: [],
  providersLocal: [],
  domains: [],
  hostList: [],
  hostListRegex: [],
  staleProviders: null,
}

describe('LiveConfig', () => {
  it("logs nothing at register, a renamed setting's note at the first logged load only, and reads the old name", () => {
    const info: string[] = []
    const host = {
      config: { get: () => null },
      sg_load: () => undefined,
      loginfo: (m: string) => info.push(m),
      logwarn: () => undefined,
      logerror: () => undefined,
    }
    const live = new LiveConfig(host, (previous, _onChange, shared) => compile(FILES, previous, 'daemon', shared), {
      client: () => undefined,
      telemetry: new Telemetry(),
    })
    const notes = (): string[] => info.filter((l) => l.includes('defer_weak_at is now called net_identity_greylist'))
    const loadedLines = (): number => info.filter((l) => l.startsWith('loaded: ')).length
    assert.deepEqual(info, [])
    assert.equal(live.config.main.net_identity_greylist, 'message')
    live.reload()
    assert.equal(notes().length, 1)
    assert.equal(loadedLines(), 1)
    live.reload()
    assert.equal(loadedLines(), 2)
    assert.equal(notes().length, 1)
  })
})
