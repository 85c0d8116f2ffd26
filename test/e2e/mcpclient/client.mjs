// An independent MCP client for skiff's e2e tests: the official TypeScript
// SDK over streamable HTTP and TLS, presenting a client certificate.
//
// Usage: node client.mjs URL CA_PEM_FILE CERT_PEM_FILE KEY_PEM_FILE
//
// On success it prints one JSON line to stdout,
// {"protocolVersion": ..., "tools": N, "ok": true}, and exits 0; on failure
// it prints the failure to stderr and exits 1.

import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Agent, fetch as undiciFetch } from "undici";

const WORKLOAD = "ts-client";

function fail(message) {
  throw new Error(message);
}

// textOf joins a tool result's text content.
function textOf(result) {
  return (result.content ?? [])
    .filter((c) => c.type === "text")
    .map((c) => c.text)
    .join("\n");
}

// call runs a tool and fails unless its result is (or is not) an error.
async function call(client, name, args, { wantError = false } = {}) {
  const result = await client.callTool({ name, arguments: args });
  const isError = result.isError === true;
  if (isError !== wantError) {
    fail(`${name} ${JSON.stringify(args)}: isError=${isError}, want ${wantError}: ${textOf(result)}`);
  }
  return result;
}

async function main(argv) {
  if (argv.length !== 4) {
    fail("usage: node client.mjs URL CA_PEM_FILE CERT_PEM_FILE KEY_PEM_FILE");
  }
  const [url, caFile, certFile, keyFile] = argv;
  const ca = readFileSync(caFile);
  const cert = readFileSync(certFile);
  const key = readFileSync(keyFile);

  // Without a client certificate the server must refuse: 401.
  const anonymous = new Agent({ connect: { ca } });
  try {
    const resp = await undiciFetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
      dispatcher: anonymous,
    });
    await resp.arrayBuffer();
    if (resp.status !== 401) {
      fail(`request without a client certificate: status ${resp.status}, want 401`);
    }
  } finally {
    await anonymous.close();
  }

  // Every request of the transport goes through undici's fetch with a
  // dispatcher that trusts the serving certificate and presents ours.
  const agent = new Agent({ connect: { ca, cert, key } });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: (input, init) => undiciFetch(input, { ...init, dispatcher: agent }),
  });
  // No capabilities: in particular no elicitation.
  const client = new Client({ name: "skiff-e2e-ts-client", version: "0.0.0" }, { capabilities: {} });
  try {
    await client.connect(transport);
    const protocolVersion = transport.protocolVersion;
    if (!protocolVersion) {
      fail("no protocol version negotiated");
    }

    const tools = [];
    let cursor;
    do {
      const page = await client.listTools(cursor ? { cursor } : {});
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor);
    if (tools.length === 0) {
      fail("tools/list returned no tools");
    }
    for (const tool of tools) {
      if (tool.inputSchema?.type !== "object") {
        fail(`tool ${tool.name}: inputSchema type ${JSON.stringify(tool.inputSchema?.type)}, want "object"`);
      }
      if (tool.outputSchema !== undefined && tool.outputSchema?.type !== "object") {
        fail(`tool ${tool.name}: outputSchema type ${JSON.stringify(tool.outputSchema?.type)}, want "object"`);
      }
    }
    const names = new Set(tools.map((t) => t.name));
    for (const want of ["get_cluster_status", "create_workload", "list_workloads", "delete_workload"]) {
      if (!names.has(want)) {
        fail(`tools/list lacks ${want}: ${[...names].join(", ")}`);
      }
    }

    // The SDK validates structuredContent against each outputSchema.
    await call(client, "get_cluster_status", {});
    await call(client, "create_workload", { name: WORKLOAD, image: "skiff.local/busybox:latest", replicas: 1 });

    const listed = await call(client, "list_workloads", {});
    const items = listed.structuredContent?.items;
    if (!Array.isArray(items)) {
      fail(`list_workloads: structuredContent.items is not an array: ${JSON.stringify(listed.structuredContent)}`);
    }
    if (!items.some((w) => w?.name === WORKLOAD)) {
      fail(`list_workloads: ${WORKLOAD} not in ${JSON.stringify(items.map((w) => w?.name))}`);
    }

    // Without elicitation, deleting needs confirm: true.
    const refused = await call(client, "delete_workload", { name: WORKLOAD }, { wantError: true });
    if (!textOf(refused).includes("confirm")) {
      fail(`delete_workload without confirm: text does not mention "confirm": ${textOf(refused)}`);
    }
    await call(client, "delete_workload", { name: WORKLOAD, confirm: true });

    await transport.terminateSession();
    process.stdout.write(JSON.stringify({ protocolVersion, tools: tools.length, ok: true }) + "\n");
  } finally {
    await client.close();
    await agent.close();
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err) => {
    let message = `mcpclient: ${err?.stack ?? err}`;
    // fetch failures carry the reason (TLS, connection) as their cause.
    for (let cause = err?.cause; cause; cause = cause.cause) {
      message += `\ncaused by: ${cause?.stack ?? cause}`;
    }
    process.stderr.write(message + "\n");
    process.exit(1);
  },
);
