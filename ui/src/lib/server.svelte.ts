import { api, type Settings } from './api.svelte'

/** The gateway's global settings, loaded once (for the default time zone). */
export const server = $state<{ settings: Settings | null }>({ settings: null })
let pending: Promise<void> | null = null
export function loadServerSettings(force = false): Promise<void> {
  if (!pending || force)
    pending = api
      .get<Settings>('/api/settings')
      .then((s) => {
        server.settings = s
      })
      .catch(() => {
        pending = null
      })
  return pending
}
/** The zone a channel's day resets in. */
export function channelZone(settings: Record<string, unknown> | undefined): string {
  const z = settings?.daily_reset_timezone
  if (typeof z === 'string' && z) return z
  return server.settings?.timezone ?? ''
}
