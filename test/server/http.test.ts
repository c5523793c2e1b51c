import { request } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import express from "express";
import pg from "pg";
import WebSocket from "ws";
import { withDatabase } from "../../src/config.ts";
import { readyz } from "../../src/server/health.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { testDatabase } from "../setup/test-database.ts";

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(async () => {
  await server.close();
});

/** Asks for a WebSocket upgrade and returns the plain HTTP answer, if the server refuses it. */
function refusedUpgrade(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}${path}`);
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on("open", () => reject(new Error(`${path} was upgraded`)));
    ws.on("error", () => undefined);
  });
}

describe("HTTP server", () => {
  test("/healthz answers while the process is alive", async () => {
    const response = await fetch(`${server.url}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
  });

  test("/readyz is ready: the database answers and its migrations are current", async () => {
    const response = await fetch(`${server.url}/readyz`);
    expect(await response.json()).toEqual({ status: "ready" });
    expect(response.status).toBe(200);
  });

  test("GraphQL answers over HTTP", async () => {
    const response = await server.graphql("{ __typename }");
    expect(response).toEqual({ status: 200, data: { __typename: "Query" } });
  });

  test("a body over MAX_REQUEST_BYTES is refused before it is parsed", async () => {
    const padding = "x".repeat(server.config.maxRequestBytes + 1);
    const response = await server.graphql(`{ __typename } # ${padding}`);
    expect(response.status).toBe(413);
  });

  test("malformed JSON gets a client error, not a crash", async () => {
    const response = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{ not json",
    });
    expect(response.status).toBe(400);
    const after = await server.graphql("{ __typename }");
    expect(after.data).toEqual({ __typename: "Query" });
  });

  test("GraphQL subscriptions share the HTTP port (graphql-transport-ws)", async () => {
    const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}/graphql`, "graphql-transport-ws");
    const ack = await new Promise<unknown>((resolve, reject) => {
      ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init" })));
      ws.on("message", (data: Buffer) => resolve(JSON.parse(data.toString())));
      ws.on("error", reject);
    });
    expect(ack).toEqual({ type: "connection_ack" });
    ws.close();
  });

  test("an upgrade to an unknown path gets 404 without an upgrade", async () => {
    const answer = await refusedUpgrade("/nowhere");
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.body)).toMatchObject({ error: "NOT_FOUND" });
  });

  test("plain HTTP keeps working after refused upgrades", async () => {
    await refusedUpgrade("/nowhere");
    const status = await new Promise<number>((resolve, reject) => {
      request(`${server.url}/healthz`, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on("error", reject)
        .end();
    });
    expect(status).toBe(200);
  });
});

describe("readiness and production mode", () => {
  test("/readyz is 503 on a database whose migrations have not run", async () => {
    const { rootDatabaseUrl } = testDatabase();
    const empty = `agentplane_empty_${process.pid}`;
    const root = new pg.Client({ connectionString: rootDatabaseUrl });
    await root.connect();
    await root.query(`create database ${empty}`);
    const emptyPool = new pg.Pool({ connectionString: withDatabase(rootDatabaseUrl, empty) });
    try {
      const app = express().get("/readyz", readyz(emptyPool, "sha1:expected"));
      const listener = app.listen(0);
      const { port } = listener.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${port}/readyz`);
      listener.close();
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({ status: "migrations pending", expected: "sha1:expected", applied: null });
    } finally {
      await emptyPool.end();
      await root.query(`drop database ${empty}`);
      await root.end();
    }
  });

  test("production serves no GraphiQL and refuses introspection", async () => {
    const production = await startTestServer({ env: { NODE_ENV: "production" } });
    try {
      expect((await fetch(`${production.url}/graphiql`)).status).toBe(404);
      const introspection = await production.graphql("{ __schema { queryType { name } } }");
      expect(introspection.errors?.[0]?.message).toMatch(/introspection/i);
      expect(await production.graphql("{ __typename }")).toMatchObject({ data: { __typename: "Query" } });
    } finally {
      await production.close();
    }
  });

  test("development serves GraphiQL and answers introspection", async () => {
    expect((await fetch(`${server.url}/graphiql`)).status).toBe(200);
    const introspection = await server.graphql("{ __schema { queryType { name } } }");
    expect(introspection.data).toEqual({ __schema: { queryType: { name: "Query" } } });
  });
});
