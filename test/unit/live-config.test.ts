// The configuration in force, loaded from files given as data (setup.ts's compile: no file read):
// a note (a renamed setting) is logged at the first load, and not again at every reload.
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
  it("logs a renamed setting's note at the first load only, and reads the old name", () => {
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
    assert.equal(notes().length, 1)
    assert.equal(live.config.main.net_identity_greylist, 'message')
    live.reload()
    live.reload()
    assert.equal(info.filter((l) => l.startsWith('loaded: ')).length, 3)
    assert.equal(notes().length, 1)
  })
})
