// Preloaded into the Haraka process under test (NODE_OPTIONS=--require): every resolver,
// including those that plugins construct themselves, asks the test's DNS server on loopback.
'use strict'
const dns = require('node:dns')
const server = process.env.SMART_GREYLIST_TEST_DNS
if (!server) throw new Error('dns-preload: SMART_GREYLIST_TEST_DNS is not set')

dns.setServers([server])
dns.promises.setServers([server])

for (const holder of [dns, dns.promises]) {
  const Original = holder.Resolver
  holder.Resolver = class TestResolver extends Original {
    constructor(...args) {
      super(...args)
      this.setServers([server])
    }
  }
}
