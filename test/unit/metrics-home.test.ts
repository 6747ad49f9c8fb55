// Where the metrics are served, and that a plugin shut down serves none: a reload, or the timer
// that waits for Haraka's HTTP server, must not reopen the listener or the admin connection.
import assert from 'node:assert/strict'
import { MetricsHome } from '../../plugins/smart-greylist/adapters/metrics-home'
import type { MetricsEndpoint } from '../../plugins/smart-greylist/adapters/metrics'
import type { RedisConnection } from '../../plugins/smart-greylist/adapters/redis-connection'
import { DEFAULTS, type Config } from '../../plugins/smart-greylist/core/settings'

function home(awaitHttpMs = 20_000) {
  const calls = { listen: 0, opened: 0 }
  const config: Config = { ...DEFAULTS, metrics: { ...DEFAULTS.metrics, enabled: true } }
  const endpoint = { listen: () => (calls.listen++, Promise.resolve()), close: () => undefined, handle: () => undefined } as unknown as MetricsEndpoint
  const admin = { open: () => void calls.opened++, close: () => undefined } as unknown as RedisConnection
  const log = { loginfo: () => undefined, logwarn: () => undefined, logerror: () => undefined }
  return { calls, home: new MetricsHome({ config: () => config, endpoint, admin, log, awaitHttpMs }) }
}

describe('MetricsHome', () => {
  it('serves on its own listener when Haraka has no HTTP server, and on nothing once closed', () => {
    const { calls, home: h } = home()
    h.place(undefined, 'child')
    assert.equal(h.where, 'own')
    assert.deepEqual(calls, { listen: 1, opened: 1 })
    h.close()
    h.sync() // a reload after shutdown
    assert.equal(h.where, undefined)
    assert.deepEqual(calls, { listen: 1, opened: 1 })
  })

  it('does not take over after shutdown when the wait for HTTP ends', async () => {
    const { calls, home: h } = home(10)
    h.place({ http: { cfg: { listen: '127.0.0.1:0' } } }, 'child')
    assert.equal(h.where, 'awaiting_http')
    h.close()
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(h.where, undefined)
    assert.deepEqual(calls, { listen: 0, opened: 0 })
  })
})
