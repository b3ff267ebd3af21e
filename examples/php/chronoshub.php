<?php
// chronoshub.php: a journal system's endpoint for ChronosHub events pushed by
// chronoshub-sidecar (push delivery, docs/push.md). Run it with PHP's built-in
// server, or behind PHP-FPM like any other page:
//
//   php -S 127.0.0.1:8000 -t examples/php
//
// Each request is one event: the body is the payload exactly as ChronosHub
// signed it, the headers carry its id, type and attempt, and a Standard
// Webhooks signature made with CHRONOSHUB_PUSH_SECRET proves that it comes
// from the sidecar. On manuscript.submitted the journal records the
// manuscript and tells ChronosHub it was received (SendEvent over the
// sidecar's REST API, with an idempotency key so that a redelivered event
// does not send twice). 2xx acknowledges the event; any other answer makes
// the sidecar retry it (see docs/push.md for the outcome table).
//
// Settings (environment): CHRONOSHUB_PUSH_SECRET (whsec_...; required),
// CHRONOSHUB_HTTP_ADDR (the sidecar's REST API, default 127.0.0.1:50052),
// CHRONOSHUB_API_TOKEN (when the API requires one), JOURNAL_FILE (where
// received manuscripts are recorded, default the temp dir's journal.ndjson).

declare(strict_types=1);

const TOLERANCE_SECONDS = 300;

function answer(int $status, string $message): never
{
    http_response_code($status);
    header('Content-Type: text/plain');
    echo $message, "\n";
    exit;
}

/**
 * Verifies a Standard Webhooks signature (https://www.standardwebhooks.com/):
 * webhook-signature holds space-separated "v1,<base64>" signatures, each an
 * HMAC-SHA256 keyed with the secret's base64-decoded bytes over
 * "<webhook-id>.<webhook-timestamp>.<body>". The timestamp must be within
 * TOLERANCE_SECONDS of now. Returns an error message, or null when valid.
 */
function verify_standard_webhook(string $secret, string $id, string $timestamp, string $signatures, string $body): ?string
{
    if (!str_starts_with($secret, 'whsec_')) {
        return 'the secret does not start with whsec_';
    }
    $key = base64_decode(substr($secret, strlen('whsec_')), true);
    if ($key === false || $key === '') {
        return 'the secret is not base64';
    }
    if ($id === '' || !ctype_digit($timestamp)) {
        return 'missing webhook-id or webhook-timestamp';
    }
    if (abs(time() - (int) $timestamp) > TOLERANCE_SECONDS) {
        return 'webhook-timestamp too far from now';
    }
    $expected = base64_encode(hash_hmac('sha256', "$id.$timestamp.$body", $key, true));
    foreach (explode(' ', $signatures) as $candidate) {
        [$version, $signature] = array_pad(explode(',', $candidate, 2), 2, '');
        if ($version === 'v1' && hash_equals($expected, $signature)) {
            return null;
        }
    }
    return 'no valid signature';
}

/** Sends an event to ChronosHub through the sidecar's REST SendEvent. */
function send_event(string $type, array $payload, string $idempotencyKey): string
{
    $addr = getenv('CHRONOSHUB_HTTP_ADDR') ?: '127.0.0.1:50052';
    $headers = ['Content-Type: application/json'];
    if ($token = getenv('CHRONOSHUB_API_TOKEN')) {
        $headers[] = "Authorization: Bearer $token";
    }
    $context = stream_context_create(['http' => [
        'method' => 'POST',
        'header' => implode("\r\n", $headers),
        'content' => json_encode(['type' => $type, 'payload' => $payload, 'idempotencyKey' => $idempotencyKey], JSON_THROW_ON_ERROR),
        'timeout' => 20,
        'ignore_errors' => true, // read the error body instead of a warning
    ]]);
    $response = @file_get_contents("http://$addr/v1/events:send", false, $context);
    $status = isset($http_response_header[0]) ? (int) explode(' ', $http_response_header[0])[1] : 0;
    if ($response === false || $status !== 200) {
        throw new RuntimeException("SendEvent answered $status: " . ($response ?: 'no response'));
    }
    return json_decode($response, true, 512, JSON_THROW_ON_ERROR)['eventId'];
}

if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    answer(405, 'POST events here');
}
$secret = getenv('CHRONOSHUB_PUSH_SECRET');
if (!$secret) {
    answer(500, 'CHRONOSHUB_PUSH_SECRET is not set');
}
$body = file_get_contents('php://input');
$problem = verify_standard_webhook(
    $secret,
    $_SERVER['HTTP_WEBHOOK_ID'] ?? '',
    $_SERVER['HTTP_WEBHOOK_TIMESTAMP'] ?? '',
    $_SERVER['HTTP_WEBHOOK_SIGNATURE'] ?? '',
    $body,
);
if ($problem !== null) {
    // A 4xx: the sidecar dead-letters the event at once (it would never verify).
    answer(401, "signature: $problem");
}

$id = $_SERVER['HTTP_CHRONOSHUB_EVENT_ID'] ?? '';
$type = $_SERVER['HTTP_CHRONOSHUB_EVENT_TYPE'] ?? '';
$attempt = (int) ($_SERVER['HTTP_CHRONOSHUB_ATTEMPT'] ?? '0');
if ($type !== 'manuscript.submitted') {
    answer(204, ''); // not ours: acknowledged, nothing to do
}
$manuscript = json_decode($body, true);
if (!is_array($manuscript) || !isset($manuscript['manuscriptId'])) {
    answer(422, 'manuscript.submitted without a manuscriptId'); // refused: dead-lettered
}
try {
    $sent = send_event('manuscript.status.updated', [
        'manuscriptId' => $manuscript['manuscriptId'],
        'status' => 'received',
    ], "received-$id");
} catch (Throwable $e) {
    error_log("event $id: " . $e->getMessage());
    answer(503, 'could not tell ChronosHub yet; retry'); // retried by the sidecar
}
$journal = getenv('JOURNAL_FILE') ?: sys_get_temp_dir() . '/journal.ndjson';
file_put_contents($journal, json_encode([
    'event_id' => $id,
    'attempt' => $attempt,
    'manuscript_id' => $manuscript['manuscriptId'],
    'title' => $manuscript['title'] ?? null,
    'status_event_id' => $sent,
    // Kept so that examples/php/verify.mjs can check the signature with
    // the reference library.
    'webhook' => [
        'id' => $_SERVER['HTTP_WEBHOOK_ID'],
        'timestamp' => $_SERVER['HTTP_WEBHOOK_TIMESTAMP'],
        'signature' => $_SERVER['HTTP_WEBHOOK_SIGNATURE'],
        'body_base64' => base64_encode($body),
    ],
], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR) . "\n", FILE_APPEND | LOCK_EX);
answer(200, "recorded manuscript {$manuscript['manuscriptId']}");
