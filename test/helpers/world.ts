// The simulated senders of the end-to-end tests: realistic public addresses (presented through
// PROXY headers, never contacted) and the DNS records that describe them.
import type { Zone } from './dns-server'

/** An Exchange-Online-like pool: six addresses in six different /16s, production-style names. */
export const EXCHANGE_IPS = ['40.107.22.92', '40.92.17.41', '52.100.133.7', '52.101.4.200', '104.47.58.11', '52.102.91.65']

export function exchangeName(ip: string): string {
  const [, , c, d] = ip.split('.')
  return `mail-eopbgr${c}0${d.padStart(3, '0')}.outbound.protection.outlook.com`
}

export const EXCHANGE_HELO = 'EUR01-DB5-obe.outbound.protection.outlook.com'

export function exchangeZone(): Zone {
  const zone: Zone = { ptr: {}, a: {} }
  for (const ip of EXCHANGE_IPS) {
    zone.ptr![ip] = [exchangeName(ip)]
    zone.a![exchangeName(ip)] = [ip]
  }
  return zone
}

/** A client whose PTR claims an Exchange name that does not resolve back to it. */
export const FORGED_PTR_IP = '91.198.174.33'
export const FORGED_PTR_NAME = 'mail-eopbgr999999.outbound.protection.outlook.com'

export function forgedZone(): Zone {
  return { ptr: { [FORGED_PTR_IP]: [FORGED_PTR_NAME] }, a: { [FORGED_PTR_NAME]: ['40.107.99.99'] } }
}
