// A private redis-server for one suite: started before it, a client connected, flushed before
// every test, and both closed after it, so every test starts from an empty Redis and no handle
// outlives the suite.
import { connectRedis, type TestRedis } from '../../scripts/harness/redis'
import { startPrivateRedis, type PrivateRedis } from '../../scripts/harness/redis-server'

export interface PrivateRedisHandle {
  readonly server: PrivateRedis
  readonly db: TestRedis
}

export function usePrivateRedis(opts: { flushEach?: boolean } = {}): PrivateRedisHandle {
  const handle = {} as { server: PrivateRedis; db: TestRedis }
  before(async function () {
    this.timeout(20_000)
    handle.server = await startPrivateRedis()
    handle.db = await connectRedis(handle.server.port)
  })
  if (opts.flushEach ?? true) beforeEach(() => handle.db.flushDb())
  after(async () => {
    await handle.db?.quit().catch(() => undefined)
    await handle.server?.stop()
  })
  return handle
}
