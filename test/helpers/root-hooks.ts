// Mocha root hooks: before any test, this process's DNS goes to a server on loopback (NXDOMAIN
// for anything a test has not declared), so no test ever asks the machine's resolver.
import { DnsServer, useDnsServer } from '../../scripts/harness/dns-server'

let server: DnsServer | undefined

/** The process-wide loopback DNS server; tests add the records they need. */
export function processDns(): DnsServer {
  if (!server) throw new Error('root hooks did not start the loopback DNS server')
  return server
}

export const mochaHooks = {
  async beforeAll(): Promise<void> {
    if (server) return
    server = await DnsServer.start()
    useDnsServer(`127.0.0.1:${server.port}`)
  },
  async afterAll(): Promise<void> {
    await server?.close()
    server = undefined
  },
}
