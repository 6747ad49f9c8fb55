// The parts an end-to-end suite runs against: a private redis-server, a DNS server on loopback
// holding the suite's zone, and a Haraka with the plugin; started before the suite, stopped after.
import { startPrivateRedis, type PrivateRedis } from '../../scripts/harness/redis-server'
import { DnsServer, type Zone } from '../../scripts/harness/dns-server'
import { HarakaInstance, type HarakaOptions } from '../../scripts/harness/haraka'

export interface Stack {
  redis: PrivateRedis
  dns: DnsServer
  haraka: HarakaInstance
}

export function useStack(opts: Omit<HarakaOptions, 'redisPort' | 'dnsPort'> & { zones?: Zone[] }): Stack {
  const stack = {} as Stack
  before(async function () {
    this.timeout(60_000)
    stack.redis = await startPrivateRedis()
    stack.dns = await DnsServer.start()
    for (const z of opts.zones ?? []) stack.dns.add(z)
    stack.haraka = await HarakaInstance.start({ ...opts, redisPort: stack.redis.port, dnsPort: stack.dns.port })
    await stack.haraka.waitFor(/\[smart-greylist\] connected to redis/)
  })
  after(async () => {
    await stack.haraka?.stop()
    await stack.dns?.close()
    await stack.redis?.stop()
  })
  return stack
}
