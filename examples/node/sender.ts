// Example app: send one event to ChronosHub through chronoshub-sidecar.
//
// Calls SendEvent with an idempotency key (--idempotency-key, or a new UUID),
// prints ChronosHub's event id on stdout, and handles each error class by its
// gRPC code:
//
//   INVALID_ARGUMENT     the event is wrong; fix it, retrying cannot help.
//   FAILED_PRECONDITION  an operator problem in the sidecar (ChronosHub refused
//                        its API key, or the account is inactive).
//   ALREADY_EXISTS       the idempotency key was used for a different event.
//   UNAVAILABLE,         transient; retried with exponential backoff and the
//   DEADLINE_EXCEEDED    SAME idempotency key, so that a retry of an event
//                        ChronosHub did accept is not sent twice.
//
// --addr (CHRONOSHUB_GRPC_ADDR, default 127.0.0.1:50051) is the sidecar;
// CHRONOSHUB_API_TOKEN, when set, is sent as a bearer token.
//
//   node dist/sender.js --type manuscript.submitted --payload '{"manuscriptId":"M-1"}'

import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { EventServiceClient, SendEventRequest, type SendEventResponse } from "./gen/chronoshub/sidecar/v1/sidecar";

async function main(): Promise<number> {
  const env = process.env;
  const { values } = parseArgs({
    options: {
      addr: { type: "string", default: env.CHRONOSHUB_GRPC_ADDR || "127.0.0.1:50051" },
      type: { type: "string", default: "manuscript.submitted" },
      payload: { type: "string", default: '{"manuscriptId":"M-1","title":"Example"}' },
      "idempotency-key": { type: "string", default: "" },
      attempts: { type: "string", default: "5" },
      timeout: { type: "string", default: "15" }, // seconds, per attempt
    },
  });
  const key = values["idempotency-key"] || randomUUID();
  const attempts = Number(values.attempts);
  const fail = (msg: string) => {
    process.stderr.write(`sender: ${msg}\n`);
    return 1;
  };

  const client = new EventServiceClient(values.addr, credentials.createInsecure());
  const metadata = new Metadata();
  if (env.CHRONOSHUB_API_TOKEN) metadata.set("authorization", `Bearer ${env.CHRONOSHUB_API_TOKEN}`);
  const req = SendEventRequest.fromPartial({
    type: values.type,
    payload: Buffer.from(values.payload, "utf8"),
    idempotencyKey: key,
  });
  const send = () =>
    new Promise<SendEventResponse>((resolve, reject) =>
      client.sendEvent(req, metadata, { deadline: Date.now() + Number(values.timeout) * 1000 }, (err, resp) =>
        err ? reject(err) : resolve(resp),
      ),
    );

  try {
    for (let attempt = 1; ; attempt++) {
      try {
        const resp = await send();
        process.stderr.write(`sender: ${values.type} accepted (idempotency key ${resp.idempotencyKey})\n`);
        process.stdout.write(resp.eventId + "\n");
        return 0;
      } catch (e) {
        const err = e as ServiceError;
        const detail = `${status[err.code] ?? "error"}: ${err.details ?? err.message}`;
        switch (err.code) {
          case status.INVALID_ARGUMENT:
            return fail(`the event is invalid; fix it, retrying will not help: ${detail}`);
          case status.FAILED_PRECONDITION:
            return fail(`the sidecar cannot send (an operator must fix its credentials or the ChronosHub account): ${detail}`);
          case status.ALREADY_EXISTS:
            return fail(`idempotency key "${key}" was already used for a different event: ${detail}`);
          case status.UNAVAILABLE:
          case status.DEADLINE_EXCEEDED:
            break;
          default:
            return fail(`send: ${detail}`);
        }
        if (attempt >= attempts) {
          return fail(`gave up after ${attempt} attempts (idempotency key ${key}, safe to retry later): ${detail}`);
        }
        const ceiling = Math.min(500 * 2 ** (attempt - 1), 10_000);
        const wait = ceiling / 2 + Math.random() * (ceiling / 2);
        process.stderr.write(`sender: attempt ${attempt}: ${detail}; retrying in ${Math.round(wait)}ms with the same idempotency key\n`);
        await sleep(wait);
      }
    }
  } finally {
    client.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`sender: ${String(err)}\n`);
    process.exit(1);
  },
);
