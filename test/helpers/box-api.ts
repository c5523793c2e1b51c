/**
 * The box part of the GraphQL API, for tests that go through a server.
 */
import type { GraphQLResponse, TestServer } from "./server.ts";

export interface CommandRow {
  rowId: string;
  status: string;
  commandType: string;
  errorCode: string | null;
  error: string | null;
  exitCode: number | null;
  response: unknown;
  stdout: string | null;
  stderr: string | null;
  deliveryCount: number;
}

export const COMMAND_FIELDS = "rowId status commandType errorCode error exitCode response stdout stderr deliveryCount";

export async function sendBoxCommand(
  server: TestServer,
  token: string,
  boxId: string,
  commandType: string,
  payload: Record<string, unknown> = {},
  timeoutMs?: number,
): Promise<GraphQLResponse<{ sendBoxCommand: { result: CommandRow } | null }>> {
  return server.graphql(
    `mutation ($boxId: UUID!, $commandType: String!, $payload: JSON, $timeoutMs: Int) {
       sendBoxCommand(input: { boxId: $boxId, commandType: $commandType, payload: $payload, timeoutMs: $timeoutMs }) {
         result { ${COMMAND_FIELDS} }
       }
     }`,
    { boxId, commandType, payload, timeoutMs: timeoutMs ?? null },
    { token },
  );
}

/** Sends a command and returns its id (fails the test on an error). */
export async function sendOk(...args: Parameters<typeof sendBoxCommand>): Promise<string> {
  const response = await sendBoxCommand(...args);
  const id = response.data?.sendBoxCommand?.result.rowId;
  if (id === undefined) throw new Error(`sendBoxCommand failed: ${JSON.stringify(response.errors)}`);
  return id;
}

export async function getCommand(server: TestServer, token: string, id: string): Promise<CommandRow | null> {
  const response = await server.graphql<{ boxCommand: CommandRow | null }>(
    `query ($id: UUID!) { boxCommand(rowId: $id) { ${COMMAND_FIELDS} } }`,
    { id },
    { token },
  );
  return response.data?.boxCommand ?? null;
}

export async function cancelCommand(server: TestServer, token: string, id: string) {
  return server.graphql<{ cancelBoxCommand: { result: CommandRow } | null }>(
    `mutation ($id: UUID!) { cancelBoxCommand(input: { id: $id }) { result { ${COMMAND_FIELDS} } } }`,
    { id },
    { token },
  );
}
