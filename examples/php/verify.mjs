// verify.mjs JOURNAL: checks every push signature that chronoshub.php recorded
// in JOURNAL with the Standard Webhooks reference library for Node
// (standardwebhooks), independently of the sidecar's Go code and of the PHP
// verification, and checks that the library refuses a tampered body. The
// secret is CHRONOSHUB_PUSH_SECRET. Exits 1 on the first failure.
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const [journal] = process.argv.slice(2);
const secret = process.env.CHRONOSHUB_PUSH_SECRET;
if (!journal || !secret) {
  console.error("usage: CHRONOSHUB_PUSH_SECRET=whsec_... node verify.mjs JOURNAL");
  process.exit(2);
}
const wh = new Webhook(secret);
const lines = readFileSync(journal, "utf8").split("\n").filter(Boolean);
if (lines.length === 0) {
  console.error(`${journal} records no event`);
  process.exit(1);
}
for (const line of lines) {
  const rec = JSON.parse(line);
  const body = Buffer.from(rec.webhook.body_base64, "base64").toString("utf8");
  const headers = {
    "webhook-id": rec.webhook.id,
    "webhook-timestamp": rec.webhook.timestamp,
    "webhook-signature": rec.webhook.signature,
  };
  try {
    wh.verify(body, headers);
  } catch (err) {
    console.error(`event ${rec.event_id}: standardwebhooks refuses the sidecar's signature: ${err.message}`);
    process.exit(1);
  }
  let refused = false;
  try {
    wh.verify(body + " ", headers);
  } catch {
    refused = true;
  }
  if (!refused) {
    console.error(`event ${rec.event_id}: standardwebhooks accepts a tampered body`);
    process.exit(1);
  }
}
console.log(`standardwebhooks verified ${lines.length} signature(s) and refused their tampered copies`);
