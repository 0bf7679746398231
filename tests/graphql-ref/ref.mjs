// The GraphQL reference implementation (graphql-js 16, pinned in package.json) as an oracle for
// tally's end-to-end tests. tests/e2e/test_graphql_ref.py runs `node ref.mjs` with one JSON
// request on stdin and reads one JSON answer on stdout. Requests:
//
//   {"cmd": "introspectionQuery", "options": {...}}
//       -> {"query": getIntrospectionQuery(options)}: the standard query clients send.
//   {"cmd": "schema", "introspection": <data of an introspection result>, "sdl": "<SDL>"}
//       -> {"ok", "error", "printed", "printedSdl", "equal"}: buildClientSchema() and
//          assertValidSchema() on the introspection; printSchema() of it and of the SDL, both
//          after lexicographicSortSchema(), so that only order may differ between the two.
//   {"cmd": "classify", "introspection" | "sdl", "requests": [{query, variables, operationName}]}
//       -> {"results": [{"accepted", "phase", "errors"}]}: what a GraphQL server built on the
//          reference implementation answers each request: "accepted" is true when the response
//          would carry a `data` key (it parses, validates, and the operation and variable values
//          can be chosen and coerced, and the schema has a root type for it: execute() runs with
//          no resolvers, so every field is null),
//          false when it is a request error; "phase" says where it was refused ("parse",
//          "validate", "execute") and "errors" gives the reference implementation's messages.
import {
  assertValidSchema,
  buildClientSchema,
  buildSchema,
  execute,
  getIntrospectionQuery,
  lexicographicSortSchema,
  parse,
  printSchema,
  validate,
} from "graphql";

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on("data", (c) => chunks.push(c));
    process.stdin.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    process.stdin.on("error", reject);
  });
}

function schemaOf(req) {
  if (req.introspection) return buildClientSchema(req.introspection);
  return buildSchema(req.sdl);
}

function printed(schema) {
  return printSchema(lexicographicSortSchema(schema));
}

function classify(schema, r) {
  let doc;
  try {
    doc = parse(r.query);
  } catch (e) {
    return { accepted: false, phase: "parse", errors: [e.message] };
  }
  const errors = validate(schema, doc);
  if (errors.length) return { accepted: false, phase: "validate", errors: errors.map((e) => e.message) };
  const result = execute({
    schema,
    document: doc,
    rootValue: {},
    variableValues: r.variables || undefined,
    operationName: r.operationName || undefined,
  });
  if (result && typeof result.then === "function") throw new Error("execution went async");
  // A request error has no `data`; graphql-js 16 also answers `data: null` with an error without
  // a path when the schema has no root type for the operation (a subscription here): that is a
  // request error too (no field was executed), and a server may refuse it before execution.
  const requestError = (result.errors || []).some((e) => !e.path);
  if (!("data" in result) || result.data === undefined || (result.data === null && requestError))
    return { accepted: false, phase: "execute", errors: (result.errors || []).map((e) => e.message) };
  return { accepted: true, phase: null, errors: (result.errors || []).map((e) => e.message) };
}

async function main() {
  const req = JSON.parse(await readStdin());
  let out;
  switch (req.cmd) {
    case "introspectionQuery":
      out = { query: getIntrospectionQuery(req.options || {}) };
      break;
    case "schema": {
      out = { ok: false, error: null, printed: null, printedSdl: null, equal: false };
      try {
        const client = buildClientSchema(req.introspection);
        assertValidSchema(client);
        out.printed = printed(client);
        out.ok = true;
      } catch (e) {
        out.error = String(e && e.stack ? e.stack : e);
      }
      if (req.sdl) {
        out.printedSdl = printed(buildSchema(req.sdl));
        out.equal = out.ok && out.printed === out.printedSdl;
      }
      break;
    }
    case "classify": {
      const schema = schemaOf(req);
      assertValidSchema(schema);
      out = { results: req.requests.map((r) => classify(schema, r)) };
      break;
    }
    default:
      throw new Error(`unknown cmd ${req.cmd}`);
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(2);
});
