// Drive an MCP server over Streamable HTTP with the official TypeScript SDK client.
// Usage: node ts_client.mjs URL TOOL ARGS_JSON   (NODE_PATH-free: the SDK is imported by path)
// Prints JSON: the negotiated server info, the tool names, and the call's result.
const [url, tool, argsJson] = process.argv.slice(2);
const sdk = process.env.MOAT_TS_SDK; // .../node_modules/@modelcontextprotocol/sdk/dist/esm
const { Client } = await import(`${sdk}/client/index.js`);
const { StreamableHTTPClientTransport } = await import(`${sdk}/client/streamableHttp.js`);

const client = new Client({ name: "moat-e2e-ts", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);
const tools = await client.listTools();
const result = await client.callTool({ name: tool, arguments: JSON.parse(argsJson) });
const out = {
  serverVersion: client.getServerVersion(),
  protocolVersion: transport.protocolVersion ?? null,
  tools: tools.tools.map((t) => t.name),
  result,
};
await transport.terminateSession().catch(() => {});
await client.close();
process.stdout.write(JSON.stringify(out));
