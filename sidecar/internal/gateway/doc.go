// Package gateway is the REST/JSON face of the sidecar's gRPC EventService.
//
// New returns an http.Handler that serves the HTTP rules of
// proto/chronoshub/sidecar/v1/sidecar_http.yaml through grpc-gateway and
// forwards every call over a real gRPC client connection, so REST calls pass
// the same interceptors (bearer token, logging, metrics) as gRPC calls and
// StreamEvents can stream:
//
//	GET  /v1/events:stream                                 StreamEvents (NDJSON)
//	POST /v1/events:ack                                    AckEvents
//	POST /v1/events:send                                   SendEvent
//	GET  /v1/sent-events/{idempotency_key=**}              GetSentEvent
//	GET  /v1/subscriptions/{subscription}/dead-letters     ListDeadLetters
//	POST /v1/subscriptions/{subscription}/dead-letters:replay ReplayDeadLetters
//
// The idempotency key of GetSentEvent is the rest of the path, unescaped
// once, so a key may contain "/", written as "/" or "%2F": both
// /v1/sent-events/order/7 and /v1/sent-events/order%2F7 read "order/7".
//
// # JSON
//
// Messages use standard protojson: camelCase field names (the proto names are
// accepted in requests too), enums by name, Timestamps in RFC 3339, Durations
// as "1.5s", 64-bit integers as strings, unset fields omitted. Unknown fields
// in a request body are refused with 400, as is anything after the body's
// single JSON value.
//
// The payload rule: the bytes field payload of Event (in StreamEventsResponse
// and in ListDeadLettersResponse's dead letters) and of SendEventRequest holds
// a JSON document, and over REST it is that JSON value itself, never base64.
// In responses the payload is compacted with json.Compact, so that an NDJSON
// line never contains a newline. Bytes that are not valid UTF-8 JSON, which
// the service never produces, appear as a JSON string of the bytes (invalid
// UTF-8 replaced by U+FFFD) rather than failing the response. In a SendEvent
// body, the payload bytes passed to gRPC are the raw text of the JSON value as
// the client wrote it, byte for byte (whitespace, key order and number
// spelling are kept): {"type":"t","payload":{"a":1}} sends {"a":1}, and a JSON
// string such as "abc" sends the five bytes "abc" including the quotes. A
// missing or null payload sends empty bytes, which the service refuses.
//
// # Streaming
//
// GET /v1/events:stream answers 200 with Content-Type application/x-ndjson
// as soon as the service has attached the stream to its subscription (it
// then sends its gRPC headers, passed on as HTTP headers: see Headers), before
// any event. Then comes one line per event, each grpc-gateway's envelope
// {"result":{"event":{...}}}, flushed as it arrives, and, whenever nothing
// was written for Options.HeartbeatInterval (15 s), a heartbeat line
// {"result":{}} that clients skip, so that proxies and read timeouts see a
// live connection. An error from the service after that ends the stream with
// a final line {"error":{"code":...,"message":"...","details":[...]}}. A
// stream the service refuses before attaching it (an invalid request, a
// filter conflict, a missing token) gets an ordinary error response: the
// error's HTTP status and the google.rpc.Status as the body, as every other
// call. When the HTTP client goes away, the gRPC stream is cancelled.
//
// The request is given in query parameters, each under its JSON (camelCase)
// or its proto (snake_case) name, but not both at once (400):
//
//	subscription
//	eventTypes     or event_types     repeat the parameter for several types
//	startPosition  or start_position  enum name (START_POSITION_NOW) or number
//	startTime      or start_time      RFC 3339
//	maxInFlight    or max_in_flight
//	maxEvents      or max_events
//
// for example
// /v1/events:stream?subscription=s&eventTypes=manuscript.*&startPosition=START_POSITION_NOW&maxInFlight=10.
// ListDeadLetters likewise takes pageSize or page_size and pageToken or
// page_token. Unknown query parameters are ignored.
//
// # Errors
//
// A gRPC status becomes grpc-gateway's standard HTTP status (InvalidArgument
// 400, NotFound 404, Unauthenticated 401, Unavailable 503, ...) with the
// google.rpc.Status as the JSON body: {"code":3,"message":"...","details":[...]},
// each detail (google.rpc.BadRequest, google.rpc.ErrorInfo, ...) with its
// "@type". A body larger than Options.MaxBodyBytes is refused with 413 before
// anything is forwarded; an unknown path is 404 and a known path with the
// wrong method 405, both with the same JSON body.
//
// # Web pages
//
// A web page cannot use the API, on any route and with any method: a request
// whose Sec-Fetch-Site is present and not "same-origin" or "none", or whose
// Origin is present and not the origin the request was sent to, is refused
// with 403 (PermissionDenied) before anything is forwarded. That covers an
// <img> or EventSource on the stream, which needs no CORS preflight and would
// otherwise consume events. With Options.LoopbackHostOnly a Host that is not
// loopback is refused too (DNS rebinding), and any body must be declared
// application/json (415 otherwise), so a form or text/plain POST is refused
// even by a browser that sends neither header. Programs (curl, SDKs) send
// neither header and are not affected.
//
// # Headers
//
// grpc-gateway's default header forwarding applies: Authorization is passed
// to gRPC as the metadata "authorization" (for the bearer-token interceptor),
// the IANA permanent headers as "grpcgateway-<name>", and the client address
// as "x-forwarded-for"/"x-forwarded-host". Other headers, including
// Grpc-Metadata-*, are not forwarded. In responses, the service's metadata
// named chronoshub-* (such as chronoshub-subscription-created on the stream)
// become HTTP headers of the same names, other metadata
// Grpc-Metadata-<name>.
//
// # Durations
//
// A Duration field (AckEvents' redeliverDelay) is protojson's string of
// seconds ("90s", "1.5s") or a Go duration ("1m30s", "500ms", "2h"), as the
// client command accepts.
package gateway
