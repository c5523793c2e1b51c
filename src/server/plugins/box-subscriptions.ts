/**
 * GraphQL subscriptions for boxes, on PostgreSQL LISTEN/NOTIFY (the
 * pgSubscriber PostGraphile puts in the context):
 *
 *   boxEvents(boxId)          a box going online/offline, and every change of its commands
 *   boxCommandUpdated(id)     one command: its current state at once, then each change,
 *                             ending after its terminal state
 *
 * Triggers (migrations/committed/000003-boxes-and-the-bridge.sql) notify `agentplane:box:<box id>`
 * with ids only; every event is read again under the subscriber's row-level
 * security, and subscribing to a box or command the subscriber cannot see is
 * refused. Nobody receives another organization's events.
 */
import { jsonParse } from "postgraphile/@dataplan/json";
import { context, lambda, listen, SafeError, type GrafastSubscriber } from "postgraphile/grafast";
import { extendSchema, gql } from "postgraphile/utils";

export interface BoxNotification {
  event: "command" | "presence";
  box_id: string;
  command_id?: string;
  status: string;
}

const TERMINAL = new Set(["succeeded", "failed", "timed_out", "expired", "canceled"]);

export function boxTopic(boxId: string): string {
  return `agentplane:box:${boxId}`;
}

/**
 * The box's stream narrowed to one command: first its current state (as a
 * notification), then its own changes, ending after a terminal one.
 */
export function commandStream(subscriber: GrafastSubscriber, commandId: string, boxId: string, status: string): GrafastSubscriber {
  const initial = JSON.stringify({ event: "command", box_id: boxId, command_id: commandId, status } satisfies BoxNotification);
  return {
    async subscribe(topic) {
      const source = (await subscriber.subscribe(topic)) as AsyncIterableIterator<string>;
      let first = true;
      let done = TERMINAL.has(status);
      const finish = async (): Promise<IteratorResult<string>> => {
        done = true;
        await source.return?.();
        return { done: true, value: undefined };
      };
      const iterator: AsyncIterableIterator<string> = {
        [Symbol.asyncIterator]: () => iterator,
        async next() {
          if (first) {
            first = false;
            return { done: false, value: initial };
          }
          while (!done) {
            const item = await source.next();
            if (item.done) return finish();
            const notification = JSON.parse(item.value) as BoxNotification;
            if (notification.command_id !== commandId) continue;
            if (TERMINAL.has(notification.status)) done = true;
            return { done: false, value: item.value };
          }
          return finish();
        },
        return: finish,
        async throw(error: unknown) {
          await finish();
          throw error;
        },
      };
      return iterator;
    },
  };
}

export const BoxSubscriptionsPlugin = extendSchema((build) => {
  const { boxes, box_commands: boxCommands } = build.input.pgRegistry.pgResources;
  if (boxes === undefined || boxCommands === undefined) return { typeDefs: gql`scalar _BoxSubscriptionsUnavailable` };
  return {
    typeDefs: gql`
      """
      Something happened to a box: it went online or offline (\`presence\`), or
      one of its commands changed (\`command\`: queued, sent, acked, output,
      result).
      """
      type BoxEvent {
        """\`presence\` or \`command\`."""
        event: String!
        """The box, as it is now."""
        box: Box
        """The command that changed, as it is now (command events)."""
        boxCommand: BoxCommand
      }

      """A command changed (or, first, how it is when the subscription starts)."""
      type BoxCommandUpdate {
        """The command, as it is now."""
        boxCommand: BoxCommand
      }

      extend type Subscription {
        """
        A box's presence changes and the changes of its commands. Refused for a
        box you cannot see.
        """
        boxEvents(boxId: UUID!): BoxEvent
        """
        One command: its current state at once, then every change (output
        included) until its terminal state, after which the subscription ends.
        Refused for a command you cannot see.
        """
        boxCommandUpdated(id: UUID!): BoxCommandUpdate
      }
    `,
    objects: {
      Subscription: {
        plans: {
          boxEvents: {
            subscribePlan(_$root, fieldArgs) {
              const $box = boxes.get({ id: fieldArgs.getRaw("boxId") });
              const $topic = lambda($box.get("id"), (id: string | null) => {
                if (id === null) throw new SafeError("box not found");
                return boxTopic(id);
              });
              return listen(context().get("pgSubscriber"), $topic, jsonParse);
            },
            plan($event) {
              return $event;
            },
          },
          boxCommandUpdated: {
            subscribePlan(_$root, fieldArgs) {
              const $command = boxCommands.get({ id: fieldArgs.getRaw("id") });
              const $subscriber = lambda(
                [context().get("pgSubscriber"), $command.get("id"), $command.get("box_id"), $command.get("status")],
                ([subscriber, id, boxId, status]: readonly [GrafastSubscriber | null, string | null, string, string]) => {
                  if (id === null || subscriber === null) throw new SafeError("box command not found");
                  return commandStream(subscriber, id, boxId, status);
                },
              );
              const $topic = lambda($command.get("box_id"), (boxId: string | null) => boxTopic(boxId ?? "none"));
              return listen($subscriber, $topic, jsonParse);
            },
            plan($event) {
              return $event;
            },
          },
        },
      },
      BoxEvent: {
        plans: {
          event($event) {
            return $event.get("event");
          },
          box($event) {
            return boxes.get({ id: $event.get("box_id") });
          },
          boxCommand($event) {
            return boxCommands.get({ id: $event.get("command_id") });
          },
        },
      },
      BoxCommandUpdate: {
        plans: {
          boxCommand($event) {
            return boxCommands.get({ id: $event.get("command_id") });
          },
        },
      },
    },
  };
}, "BoxSubscriptionsPlugin");
