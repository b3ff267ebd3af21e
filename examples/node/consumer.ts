// Example app: receive ChronosHub events from chronoshub-sidecar over gRPC.
//
// Opens StreamEvents on a named subscription with an event-type filter,
// prints one JSON line per event on stdout ({"id","type","attempt","payload",
// "action"}) and settles each event with AckEvents while the stream is open:
// it acknowledges what it handled and rejects, with a redelivery delay, what
// it cannot handle (a payload that is not a JSON object, or a type named by
// --reject-type), so that the sidecar offers it again later. When the stream
// breaks or ends (the sidecar restarting, for example) it reconnects with
// exponential backoff and full jitter. SIGINT or SIGTERM stops it cleanly.
//
// Flags win over the environment: --addr (CHRONOSHUB_GRPC_ADDR, default
// 127.0.0.1:50051), --subscription (CHRONOSHUB_SUBSCRIPTION, default
// "example-node"), --types (CHRONOSHUB_EVENT_TYPES, comma-separated, default
// "manuscript.>"). CHRONOSHUB_API_TOKEN, when set, is sent as a bearer token.
//
// Tracing: each event carries its W3C trace context (ev.traceparent: the
// sidecar's span that delivered it, or ChronosHub's when the sidecar exports
// no spans; empty when there is none). The consumer prints it, and sends it
// on as the traceparent metadata of the calls it makes for that event
// (AckEvents here; sendEvent in a real app), so that the sidecar's spans of
// those calls join the event's trace. An app that uses the OpenTelemetry SDK
// would instead start its span with the extracted context as the parent
// (propagation.extract(ROOT_CONTEXT, { traceparent })) and let its gRPC
// instrumentation send the span's own traceparent.
//
//   node dist/consumer.js --subscription my-app --types 'manuscript.>'

import { parseArgs } from "node:util";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import {
  AckEventsRequest,
  type AckEventsResponse,
  type Event,
  EventServiceClient,
  StreamEventsRequest,
} from "./gen/chronoshub/sidecar/v1/sidecar";

// Codes that reconnecting cannot fix. FAILED_PRECONDITION (another stream
// holds different filters on the subscription) clears when that stream ends.
const PERMANENT = new Set<number>([
  status.INVALID_ARGUMENT,
  status.UNAUTHENTICATED,
  status.PERMISSION_DENIED,
  status.UNIMPLEMENTED,
]);

class Done extends Error {}

// TRACEPARENT is a W3C traceparent of version 00: trace id, parent id, flags.
const TRACEPARENT = /^00-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-([0-9a-f]{2})$/;

// traceMetadata returns base plus the metadata that continues ev's trace
// (unchanged when ev carries no valid traceparent).
function traceMetadata(base: Metadata, ev: Event): Metadata {
  if (!TRACEPARENT.test(ev.traceparent)) return base;
  const md = base.clone();
  md.set("traceparent", ev.traceparent);
  if (ev.tracestate) md.set("tracestate", ev.tracestate);
  return md;
}

const log = (msg: string) => process.stderr.write(`consumer: ${msg}\n`);

/** The wait before reconnect attempt n (0-based): 250 ms doubling to 30 s, jittered. */
function backoffMs(n: number): number {
  const ceiling = Math.min(250 * 2 ** Math.min(n, 7), 30_000);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** The app's business logic. Throws for an event it cannot handle. */
function processEvent(ev: Event, rejectType: string): void {
  if (rejectType && ev.type === rejectType) {
    throw new Error(`type ${ev.type} is rejected by --reject-type`);
  }
  const payload: unknown = JSON.parse(ev.payload.toString("utf8"));
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    throw new Error("payload is not a JSON object");
  }
}

function main(): void {
  const env = process.env;
  const { values } = parseArgs({
    options: {
      addr: { type: "string", default: env.CHRONOSHUB_GRPC_ADDR || "127.0.0.1:50051" },
      subscription: { type: "string", default: env.CHRONOSHUB_SUBSCRIPTION || "example-node" },
      types: { type: "string", default: env.CHRONOSHUB_EVENT_TYPES ?? "manuscript.>" },
      "reject-type": { type: "string", default: "" },
      "redeliver-delay": { type: "string", default: "10" }, // seconds
      "max-events": { type: "string", default: "0" },
    },
  });
  const subscription = values.subscription;
  const eventTypes = values.types.split(",").map((t) => t.trim()).filter((t) => t !== "");
  const redeliverDelay = Number(values["redeliver-delay"]);
  const maxEvents = Number(values["max-events"]);

  const client = new EventServiceClient(values.addr, credentials.createInsecure());
  const metadata = new Metadata();
  if (env.CHRONOSHUB_API_TOKEN) metadata.set("authorization", `Bearer ${env.CHRONOSHUB_API_TOKEN}`);

  const stopper = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      log("stopping");
      stopper.abort();
    });
  }

  const ack = (req: AckEventsRequest, md: Metadata) =>
    new Promise<AckEventsResponse>((resolve, reject) =>
      client.ackEvents(req, md, { deadline: Date.now() + 10_000 }, (err, resp) =>
        err ? reject(err) : resolve(resp),
      ),
    );

  let handled = 0;

  async function handle(ev: Event): Promise<void> {
    // The sidecar delivers at least once: a real app de-duplicates on ev.id.
    let action = "ack";
    try {
      processEvent(ev, values["reject-type"]);
    } catch (err) {
      action = "reject";
      log(`rejecting ${ev.id} (${ev.type}, attempt ${ev.attempt}): ${(err as Error).message}`);
    }
    let payload: unknown;
    try {
      payload = JSON.parse(ev.payload.toString("utf8"));
    } catch {
      payload = ev.payload.toString("utf8");
    }
    process.stdout.write(JSON.stringify({ id: ev.id, type: ev.type, attempt: ev.attempt, payload, action, traceparent: ev.traceparent }) + "\n");
    const resp = await ack(
      AckEventsRequest.fromPartial({
        subscription,
        eventIds: [ev.id],
        reject: action === "reject",
        redeliverDelay: action === "reject" ? { seconds: String(redeliverDelay), nanos: 0 } : undefined,
      }),
      traceMetadata(metadata, ev),
    );
    if (resp.unknownEventIds.length > 0) log(`${ev.id} was no longer held by this stream; it will come again`);
  }

  // streamOnce reads one stream until it breaks; it resolves to how many
  // events it received and the error that ended it (null: the sidecar ended it).
  async function streamOnce(): Promise<[number, ServiceError | null]> {
    const call = client.streamEvents(StreamEventsRequest.fromPartial({ subscription, eventTypes }), metadata);
    const onAbort = () => call.cancel();
    stopper.signal.addEventListener("abort", onAbort);
    log(`streaming subscription "${subscription}", types ${JSON.stringify(eventTypes)}`);
    let received = 0;
    try {
      // Async iteration reads one event at a time: the next is not read
      // until this one is handled and settled.
      for await (const resp of call) {
        received++;
        await handle(resp.event as Event);
        if (maxEvents > 0 && ++handled >= maxEvents) throw new Done();
      }
      return [received, null];
    } catch (err) {
      if (err instanceof Done) throw err;
      return [received, err as ServiceError];
    } finally {
      stopper.signal.removeEventListener("abort", onAbort);
      call.cancel(); // ends the stream; the sidecar offers unsettled events again
    }
  }

  async function loop(): Promise<number> {
    let failures = 0;
    try {
      while (!stopper.signal.aborted) {
        const [received, err] = await streamOnce();
        if (stopper.signal.aborted) break;
        if (err && PERMANENT.has(err.code)) {
          log(`stream "${subscription}": ${status[err.code]}: ${err.details}`);
          return 1;
        }
        if (received > 0) failures = 0;
        const wait = backoffMs(failures++);
        log(`${err ? `${status[err.code] ?? "error"}: ${err.details ?? err.message}` : "stream ended"}; reconnecting in ${Math.round(wait)}ms`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, wait);
          stopper.signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
        });
      }
      return 0;
    } catch (err) {
      if (err instanceof Done) return 0;
      throw err;
    } finally {
      client.close();
    }
  }

  loop().then(
    (code) => process.exit(code),
    (err) => {
      log(String(err));
      process.exit(1);
    },
  );
}

main();
