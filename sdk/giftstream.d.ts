// TypeScript declarations of the giftstream SDK (sdk/giftstream.js).

/** What to watch or gift: a live room, an ordinary video, or (creators) the own inbox. */
export type Target = { room: string } | { video: string } | { inbox: true };

/** A gift-able target. */
export type GiftTarget = { room: string } | { video: string };

export type State = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface GiftstreamOptions {
  /** The socket URL, e.g. `wss://host/v1/ws`. */
  url: string;
  /** Called for every connection and every refresh; returns a JWT. */
  token: () => string | Promise<string>;
  /** Wire format (default `json`). */
  format?: 'json' | 'msgpack';
  /** A WebSocket implementation (default: `globalThis.WebSocket`). */
  WebSocket?: any;
  /** Reconnect attempts in a row before giving up (default: no bound). */
  reconnectAttemptsMax?: number;
  /** Backoff base in ms (250). */
  reconnectBaseMs?: number;
  /** Backoff cap in ms (30000). */
  reconnectDelayMsMax?: number;
  /** A connection open this long resets the attempt count (60000 ms). */
  stableMs?: number;
  /** Refresh at most this long before `exp` (60000 ms; 10 % of the token's life when shorter). */
  refreshLeadMsMax?: number;
  /** Ping interval when quiet; no answer within twice this reconnects (25000 ms; 0 turns it off). */
  pingIntervalMs?: number;
  /** Resends of a gift answered `outcome_unknown` (5). */
  giftRetriesMax?: number;
}

export interface TopEntry { user: string; diamonds: number }

export interface Joined { type: 'joined' | 'resumed'; room?: string; video?: string; inbox?: boolean; seq: number; viewers?: number }

export interface GiftAck { type: 'gift_ack'; id: string; seq: number; balance: number }

export interface GiftEvent {
  type: 'gift_event';
  room?: string;
  video?: string;
  seq: number;
  id: string;
  sender: string;
  gift: string;
  count: number;
  combo: number;
  coins: number;
  diamonds: number;
  animation: string;
  message?: string;
  ts: number;
}

export interface TipEvent {
  type: 'tip_event';
  room?: string;
  video?: string;
  seq?: number;
  sender: string;
  amount_cents: number;
  currency: string;
  message: string;
  ts: number;
}

export interface ComboEnd {
  type: 'combo_end';
  room?: string;
  video?: string;
  seq?: number;
  sender: string;
  gift: string;
  count: number;
  coins: number;
  diamonds: number;
  seq_first: number;
  seq_last: number;
  /** When the streak ended, ms since the epoch. */
  ts?: number;
}

export interface RoomStats { type: 'room_stats'; room: string; viewers: number; diamonds: number; top: TopEntry[] }

export interface RoomEnded { type: 'room_ended'; room: string }

/** A streak step (`done: false`, count = the running combo) or its end (`done: true`, count from `combo_end`). */
export interface Streak {
  /** `${targetKey}/${sender}/${gift}` */
  key: string;
  /** The target's key: `room:ID`, `video:ID` or `inbox`. */
  target: string;
  sender: string;
  gift: string;
  count: number;
  done: boolean;
  coins?: number;
  diamonds?: number;
  seq_first?: number;
  seq_last?: number;
}

export interface Gap { key: string; since: number | null }

export interface EventMap {
  gift: [GiftEvent, string];
  tip: [TipEvent, string];
  combo_end: [ComboEnd, string];
  room_stats: [RoomStats, string];
  room_ended: [RoomEnded, string];
  streak: [Streak];
  gap: [Gap];
  joined: [Joined, string];
  state: [State];
  error: [Error];
  message: [Record<string, any>];
}

/** An error with the server's (or the SDK's: `closed`, `left`) code. */
export class GiftstreamError extends Error {
  constructor(code: string, message?: string, id?: string);
  code: string;
  id?: string;
}

export class Giftstream {
  constructor(opts: GiftstreamOptions);
  readonly state: State;
  /** Open the socket; resolves once open. Joins and gifts connect by themselves too. */
  connect(): Promise<void>;
  /** Close for good; pending gifts and joins reject with code `closed`. */
  close(): void;
  /** Drop the socket and connect again; joined targets resume. */
  reconnect(): void;
  join(target: Target, opts?: { coalesce?: boolean }): Promise<Joined>;
  leave(target: Target): Promise<void>;
  /** Resolves with the ack; rejects with a GiftstreamError (`code`, `id`). */
  gift(target: GiftTarget, gift: string, count?: number, opts?: { id?: string; message?: string }): Promise<GiftAck>;
  on<K extends keyof EventMap>(type: K, fn: (...args: EventMap[K]) => void): () => void;
  on(type: string, fn: (...args: any[]) => void): () => void;
  off(type: string, fn: (...args: any[]) => void): void;
}

/** `room:ID`, `video:ID`, `inbox`, or null. */
export function targetKey(t: Target | Record<string, any>): string | null;
/** A JWT's payload, unverified, or null. */
export function jwtPayload(token: string): Record<string, any> | null;
/** Full-jitter backoff: random(0, min(maxMs, baseMs * 2^attempt)). */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random?: () => number): number;
/** MessagePack encoding of plain values. */
export function encode(value: any): Uint8Array;
/** MessagePack decoding of one value. */
export function decode(bytes: Uint8Array): any;
