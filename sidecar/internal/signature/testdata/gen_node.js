#!/usr/bin/env node
// Adds csharp_signature to vectors.json (written by gen_python.py): a faithful
// port of ChronosHub's "Example (C#)". JavaScript strings, like .NET strings,
// are UTF-16, so payload.length counts UTF-16 code units exactly as C#
// string.Length does. This file deliberately shares no code with the Go
// package under test. See README.md.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

// C#: var message = $"{payload.Length}:{payload}|{eventType}|{eventId}|{timestamp}";
//     HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(message))
//     Convert.ToHexString(hash).ToLowerInvariant()
function csharpReference(payload, secret, eventType, eventId, timestamp) {
  const message = `${payload.length}:${payload}|${eventType}|${eventId}|${timestamp}`;
  const keyBytes = Buffer.from(secret, 'utf8');
  const messageBytes = Buffer.from(message, 'utf8');
  const hash = crypto.createHmac('sha256', keyBytes).update(messageBytes).digest();
  return hash.toString('hex').toLowerCase(); // ToLowerInvariant
}

const file = path.join(__dirname, 'vectors.json');
const vectors = JSON.parse(fs.readFileSync(file, 'ascii'));
for (const v of vectors) {
  const bytes = Buffer.from(v.payload, 'base64');
  // Like Encoding.UTF8.GetString: decode the raw body (the BOM is kept).
  const payload = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  v.csharp_length = payload.length;
  v.csharp_signature = 'sha256=' + csharpReference(payload, v.secret, v.event_type, v.event_id, v.timestamp);
}
fs.writeFileSync(file, JSON.stringify(vectors, null, 2).replace(/[\u007f-\uffff]/g,
  (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')) + '\n', 'ascii');
