// Points every resolver of this process, including those that plugins construct themselves, at
// one DNS server on loopback. Preloaded into the Haraka processes under test
// (NODE_OPTIONS=--require, server from SMART_GREYLIST_TEST_DNS) and used by the mocha process.
'use strict'
const dns = require('node:dns')

function useDnsServer(server) {
  dns.setServers([server])
  dns.promises.setServers([server])
  for (const holder of [dns, dns.promises]) {
    const Original = holder.__smartGreylistOriginal ?? holder.Resolver
    holder.__smartGreylistOriginal = Original
    holder.Resolver = class TestResolver extends Original {
      constructor(...args) {
        super(...args)
        this.setServers([server])
      }
    }
  }
}

module.exports = { useDnsServer }

if (process.env.SMART_GREYLIST_TEST_DNS) useDnsServer(process.env.SMART_GREYLIST_TEST_DNS)
