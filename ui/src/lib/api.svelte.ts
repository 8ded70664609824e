import { locale } from './i18n.svelte'

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public field: string | null,
  ) {
    super(message)
  }
}

const CSRF = 'sluicegate.csrf'
let csrf: string | null = sessionStorage.getItem(CSRF)

export const auth = $state<{ signedIn: boolean | null; expiresAt: string | null }>({ signedIn: null, expiresAt: null })
let onUnauthorized: () => void = () => {}
export function setUnauthorizedHandler(f: () => void) {
  onUnauthorized = f
}

function setCsrf(v: string | null) {
  csrf = v
  if (v) sessionStorage.setItem(CSRF, v)
  else sessionStorage.removeItem(CSRF)
}

export async function request<T>(method: string, path: string, body?: unknown, opts: { quiet401?: boolean } = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json', 'Accept-Language': locale.lang }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf
  let res: Response
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    })
  } catch (e) {
    throw new ApiError(0, 'network', String((e as Error).message ?? e), null)
  }
  if (res.status === 204) return undefined as T
  const text = await res.text()
  let data: any = null
  try {
    data = text ? JSON.parse(text) : null
  } catch {}
  if (!res.ok) {
    const err = data?.error
    const e = new ApiError(res.status, err?.code ?? String(res.status), err?.message ?? (text || res.statusText), err?.field ?? null)
    if (res.status === 401 && !opts.quiet401) {
      auth.signedIn = false
      onUnauthorized()
    }
    throw e
  }
  return data as T
}

export const api = {
  get: <T>(p: string) => request<T>('GET', p),
  post: <T>(p: string, b?: unknown) => request<T>('POST', p, b ?? {}),
  patch: <T>(p: string, b: unknown) => request<T>('PATCH', p, b),
  put: <T>(p: string, b: unknown) => request<T>('PUT', p, b),
  del: <T>(p: string) => request<T>('DELETE', p),
}

export function qs(params: Record<string, string | number | boolean | null | undefined>): string {
  const u = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) u.set(k, String(v))
  const s = u.toString()
  return s ? `?${s}` : ''
}

interface SessionInfo {
  expires_at: string
  csrf_token: string
}

export async function checkSession(): Promise<boolean> {
  try {
    const s = await request<SessionInfo>('GET', '/api/session', undefined, { quiet401: true })
    if (s?.csrf_token) setCsrf(s.csrf_token)
    auth.expiresAt = s?.expires_at ?? null
    auth.signedIn = true
  } catch {
    auth.signedIn = false
  }
  return auth.signedIn!
}

export async function signIn(token: string): Promise<void> {
  const s = await request<SessionInfo>('POST', '/api/session', { token }, { quiet401: true })
  setCsrf(s.csrf_token)
  auth.expiresAt = s.expires_at
  auth.signedIn = true
}

export async function signOut(): Promise<void> {
  try {
    await request('DELETE', '/api/session', undefined, { quiet401: true })
  } catch {}
  setCsrf(null)
  auth.signedIn = false
}

// ---- types ----
export type ChannelType = 'openai' | 'azure' | 'anthropic'
export type ChannelStatus = 'enabled' | 'disabled' | 'auto_disabled'
export interface DailyUsage {
  used: number
  limit: number
  remaining: number | null
  resets_at: string
  capped: boolean
}
export interface Channel {
  id: number
  name: string
  type: ChannelType
  base_url: string
  key: string
  key_count: number
  models: string[]
  model_mapping: Record<string, string>
  groups: string[]
  priority: number
  weight: number
  status: ChannelStatus
  auto_disabled_reason: string | null
  auto_disabled_at: string | null
  settings: Record<string, unknown>
  daily_usage: DailyUsage
  created_at: string
  updated_at: string
}
export interface List<T> {
  items: T[]
  total: number
}
export interface ChannelUsage {
  channel_id: number
  date: string
  timezone: string
  used: number
  reserved: number
  limit: number
  remaining: number | null
  resets_at: string
  history: { date: string; used: number }[]
}
export interface TestResult {
  ok: boolean
  latency_ms: number
  status: number | null
  error: string | null
}
export interface Token {
  id: number
  name: string
  key_prefix: string
  status: 'enabled' | 'disabled'
  expires_at: string | null
  group: string
  models: string[] | null
  channel_id: number | null
  created_at: string
  last_used_at: string | null
}
export interface LogRow {
  id: number
  time: string
  request_id: string
  token_id: number | null
  channel_ids: number[]
  model: string
  upstream_model: string | null
  endpoint: string
  stream: boolean
  status: number
  error_code: string | null
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  estimated: boolean
  latency_ms: number
  ttft_ms: number | null
  /** In a cluster: the node that served the request. */
  node_id?: number
}
export interface NodeAnswer {
  node_id: number
  ok: boolean
  error: string | null
}
export interface LogList extends List<LogRow> {
  nodes?: NodeAnswer[]
}
export interface Settings {
  timezone: string
  max_retries: number
  connect_timeout: string
  first_byte_timeout: string
  stream_idle_timeout: string
  auto_disable_rules: string[]
}
export interface Stats {
  requests: number
  errors: number
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  buckets: { start: string; requests: number; errors: number; total_tokens: number }[]
}
export type ClusterRole = 'leader' | 'follower' | 'candidate' | 'learner' | 'single'
export interface ClusterMember {
  node_id: number
  addr: string
  role: ClusterRole
  voter: boolean
  last_contact_ms: number | null
  applied_index: number | null
}
export interface ClusterStatus {
  enabled: boolean
  node_id: number | null
  role: ClusterRole
  leader_id: number | null
  term: number | null
  degraded: boolean
  degraded_reason: string | null
  unreplicated_tokens: number
  members: ClusterMember[]
}
