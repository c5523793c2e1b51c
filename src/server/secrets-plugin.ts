/**
 * Mutations that need the encryption key, which only the server holds:
 *
 *   setNotificationChannelSecrets(input: { notificationChannelId, secrets })
 *   rotateWebhookSigningSecret(input: { organizationId }) -> { secret }
 *
 * Each calls an `app_hidden` function as the visitor (row-level security and
 * the function's own checks apply) and hands it ENCRYPTION_KEY as a query
 * parameter: never a setting that SQL run by a visitor could read, and never
 * stored. pgcrypto encrypts inside that one statement.
 */
import type { PgClient } from "postgraphile/@dataplan/pg";
import { sideEffectWithPgClientTransaction } from "postgraphile/@dataplan/pg";
import { object, type Step } from "postgraphile/grafast";
import { extendSchema, gql } from "postgraphile/utils";

interface SetSecretsInput {
  notificationChannelId: string;
  secrets: unknown;
}

interface RotateInput {
  organizationId: string;
}

async function queryOne<T>(client: PgClient, text: string, values: unknown[]): Promise<T> {
  const { rows } = await client.query<Record<string, T>>({ text, values });
  return rows[0]?.result as T;
}

export function makeSecretsPlugin(encryptionKey: string): GraphileConfig.Plugin {
  return extendSchema((build) => {
    const executor = build.input.pgRegistry.pgExecutors.main;
    const channels = build.input.pgRegistry.pgResources.notification_channels;
    // A database migrated without the schedules tables (yet) gets no such mutations.
    if (executor === undefined || channels === undefined) return { typeDefs: [] };
    return {
      typeDefs: gql`
        input SetNotificationChannelSecretsInput {
          "The channel."
          notificationChannelId: UUID!
          "Secrets to set, by name: \`signing_secret\` (webhook), \`webhook_url\` (slack), \`bot_token\` (telegram), \`smtp_password\` (email); null removes one."
          secrets: JSON!
        }
        "The channel, whose \`secretFields\` now name the secrets it has."
        type SetNotificationChannelSecretsPayload {
          notificationChannel: NotificationChannel
        }
        input RotateWebhookSigningSecretInput {
          "The organization (you must be an owner or admin)."
          organizationId: UUID!
        }
        type RotateWebhookSigningSecretPayload {
          "The new secret (\`whsec_...\`): shown only now. The previous one keeps signing beside it for 24 hours."
          secret: String!
        }
        extend type Mutation {
          "Sets a notification channel's secrets (members and up). They are stored encrypted and can never be read back."
          setNotificationChannelSecrets(input: SetNotificationChannelSecretsInput!): SetNotificationChannelSecretsPayload
          "Makes a new webhook signing secret for an organization and returns it once. Receivers verify \`agentplane-signature\` with it (see docs/schedules.md)."
          rotateWebhookSigningSecret(input: RotateWebhookSigningSecretInput!): RotateWebhookSigningSecretPayload
        }
      `,
      objects: {
        Mutation: {
          plans: {
            setNotificationChannelSecrets(_$root: Step, fieldArgs) {
              const $input = fieldArgs.getRaw("input") as Step<SetSecretsInput>;
              const $id = sideEffectWithPgClientTransaction(executor, $input, (client, input) =>
                queryOne<string>(
                  client,
                  "select (app_hidden.set_notification_channel_secrets($1, $2::jsonb, $3)).id as result",
                  [input.notificationChannelId, JSON.stringify(input.secrets), encryptionKey],
                ),
              );
              return object({ id: $id });
            },
            rotateWebhookSigningSecret(_$root: Step, fieldArgs) {
              const $input = fieldArgs.getRaw("input") as Step<RotateInput>;
              const $secret = sideEffectWithPgClientTransaction(executor, $input, (client, input) =>
                queryOne<string>(client, "select app_hidden.rotate_webhook_signing_secret($1, $2) as result", [
                  input.organizationId,
                  encryptionKey,
                ]),
              );
              return object({ secret: $secret });
            },
          },
        },
        SetNotificationChannelSecretsPayload: {
          plans: {
            notificationChannel($payload: Step) {
              const $id = ($payload as ReturnType<typeof object<{ id: Step<string> }>>).get("id");
              return channels.get({ id: $id });
            },
          },
        },
      },
    };
  }, "SecretsPlugin");
}
