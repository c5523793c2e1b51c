/**
 * Presence across bridge instances, with Redis (REDIS_URL):
 *
 *   <prefix>box:<box id>         "<instance id> <connection number>", with a TTL
 *                                (refreshed by every presence flush): where a box is connected
 *   <prefix>bridge:<instance id> the instance's own channel: messages for the
 *                                connections it holds
 *
 * When a box connects to one instance while an older connection of it is held
 * by another, the new instance finds the old one in the box's key and tells it
 * on its channel to close that connection at once ("kick"). Without Redis the
 * old instance learns it from its next presence flush instead.
 */
import { Redis } from "ioredis";
import type { Logger } from "../logger.ts";

export interface RemoteMessage {
  t: "kick";
  /** The box. */
  b: string;
  /** The newer connection's number: close any older one. */
  s: string;
}

/** Deletes the key only while it still names this connection. */
const RELEASE_SCRIPT = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;

export class RedisPresence {
  private readonly commands: Redis;
  private readonly subscriber: Redis;
  private readonly prefix: string;
  private readonly instanceId: string;
  private readonly ttlMs: number;
  private readonly logger: Logger;

  private constructor(options: { url: string; prefix: string; instanceId: string; ttlMs: number; logger: Logger }) {
    this.prefix = options.prefix;
    this.instanceId = options.instanceId;
    this.ttlMs = options.ttlMs;
    this.logger = options.logger;
    const redisOptions = { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true };
    this.commands = new Redis(options.url, redisOptions);
    this.subscriber = new Redis(options.url, redisOptions);
    for (const client of [this.commands, this.subscriber]) {
      client.on("error", (error: Error) => this.logger.warn({ err: error }, "redis"));
    }
  }

  static async start(options: {
    url: string;
    prefix: string;
    instanceId: string;
    ttlMs: number;
    logger: Logger;
    onMessage: (message: RemoteMessage) => void;
  }): Promise<RedisPresence> {
    const presence = new RedisPresence(options);
    await Promise.all([presence.commands.connect(), presence.subscriber.connect()]);
    presence.subscriber.on("message", (_channel: string, text: string) => {
      try {
        options.onMessage(JSON.parse(text) as RemoteMessage);
      } catch (error) {
        presence.logger.warn({ err: error, text }, "unreadable message on the instance channel");
      }
    });
    await presence.subscriber.subscribe(presence.channelOf(options.instanceId));
    return presence;
  }

  private keyOf(boxId: string): string {
    return `${this.prefix}box:${boxId}`;
  }

  private channelOf(instanceId: string): string {
    return `${this.prefix}bridge:${instanceId}`;
  }

  private valueOf(seq: string): string {
    return `${this.instanceId} ${seq}`;
  }

  /** This instance now holds the box: record it, and tell the instance that held it before, if another. */
  async claim(boxId: string, seq: string): Promise<void> {
    const previous = await this.commands.set(this.keyOf(boxId), this.valueOf(seq), "PX", this.ttlMs, "GET");
    const [instance] = (previous ?? "").split(" ");
    if (instance !== undefined && instance !== "" && instance !== this.instanceId) {
      const message: RemoteMessage = { t: "kick", b: boxId, s: seq };
      await this.commands.publish(this.channelOf(instance), JSON.stringify(message));
    }
  }

  /** The connection closed: forget it, unless a newer one already took the key. */
  async release(boxId: string, seq: string): Promise<void> {
    await this.commands.eval(RELEASE_SCRIPT, 1, this.keyOf(boxId), this.valueOf(seq));
  }

  /** Extends the TTL of every box this instance holds (one pipeline). */
  async refresh(held: Array<{ boxId: string; seq: string }>): Promise<void> {
    if (held.length === 0) return;
    const pipeline = this.commands.pipeline();
    for (const { boxId, seq } of held) pipeline.set(this.keyOf(boxId), this.valueOf(seq), "PX", this.ttlMs);
    await pipeline.exec();
  }

  /** Where a box is connected, if anywhere: its instance and connection number. */
  async locate(boxId: string): Promise<{ instanceId: string; seq: string } | null> {
    const value = await this.commands.get(this.keyOf(boxId));
    const [instanceId, seq] = (value ?? "").split(" ");
    return instanceId && seq ? { instanceId, seq } : null;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.subscriber.quit(), this.commands.quit()]);
  }
}
