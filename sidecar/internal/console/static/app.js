// The chronoshub-sidecar console. Its only backend is the sidecar's REST
// API on the same origin; it refreshes every two seconds. Every value from
// the API is put into the page as text (textContent), never as markup.
'use strict';

const refreshMs = 2000;
// eventSeq is the shown event's position, once known: later refreshes read
// it there instead of searching the log for its id.
const state = { token: sessionStorage.getItem('chronoshub-token') || '', needToken: false, subs: [], eventId: '', eventInFlight: '', eventSeq: '', deadSub: '', confirmDelete: '' };

const $ = (id) => document.getElementById(id);

class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// api calls the REST API and returns the decoded JSON answer.
async function api(method, path, body) {
  const headers = { 'Accept': 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (state.token) headers['Authorization'] = 'Bearer ' + state.token;
  const resp = await fetch(path, {
    method, headers, credentials: 'omit', cache: 'no-store', redirect: 'error',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = {};
  try { data = await resp.json(); } catch (e) { data = {}; }
  if (!resp.ok) {
    if (resp.status === 401) {
      // Wait for the token before calling again.
      state.needToken = true;
      $('token-form').hidden = false;
    }
    throw new APIError(resp.status, (data && data.message) || resp.statusText);
  }
  return data;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells, attrs) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    if (c instanceof Node) { const td = el('td'); td.appendChild(c); tr.appendChild(td); } else tr.appendChild(el('td', c));
  }
  for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
  return tr;
}

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren(...rows);
  if (rows.length === 0) {
    const td = el('td', empty, 'hint');
    td.colSpan = columns;
    const tr = document.createElement('tr');
    tr.appendChild(td);
    tbody.appendChild(tr);
  }
}

const num = (v) => Number(v || 0);

function age(ts) {
  if (!ts) return '—';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
}

const time = (ts) => ts ? new Date(ts).toLocaleString() : '—';
const enumName = (v, prefix) => (v || '').replace(prefix, '').toLowerCase().replace(/_/g, ' ');

function eventLink(id) {
  if (!id) return el('span', '—', 'hint');
  const b = el('button', id, 'link');
  b.type = 'button';
  b.dataset.eventId = id;
  b.addEventListener('click', () => showEvent(id));
  return b;
}

// pushState describes a push subscription's delivery (Subscription.push:
// url, paused, inFlight, lastStatus, lastError); a streaming subscription
// shows "—".
function pushState(sub) {
  const p = sub.push;
  if (!p) return '—';
  const parts = [p.url || 'push', p.paused ? 'paused: app unreachable' : 'delivering'];
  if (p.inFlight) parts.push(p.inFlight + ' in flight');
  if (p.lastStatus) parts.push('last status ' + p.lastStatus);
  if (p.lastError) parts.push('last error: ' + p.lastError);
  return parts.join(' · ');
}

// deleteButton deletes a subscription (its position and dead letters) on a
// second click, within five seconds of the first.
function deleteButton(name) {
  const b = el('button', 'Delete');
  b.type = 'button';
  b.dataset.delete = name;
  b.addEventListener('click', async () => {
    if (state.confirmDelete !== name) {
      state.confirmDelete = name;
      b.textContent = 'Confirm delete';
      setTimeout(() => { if (state.confirmDelete === name) { state.confirmDelete = ''; refresh(); } }, 5000);
      return;
    }
    state.confirmDelete = '';
    try {
      await api('DELETE', '/v1/subscriptions/' + encodeURIComponent(name));
    } catch (e) {
      $('status').className = 'status error';
      $('status').textContent = 'Delete ' + name + ' failed: ' + e.message;
    }
    refresh();
  });
  if (state.confirmDelete === name) b.textContent = 'Confirm delete';
  return b;
}

function renderSubs(subs) {
  state.subs = subs;
  fill($('subs'), subs.map((s) => row([
    el('span', s.name, 'mono'),
    (s.eventTypes || []).join(', ') || 'every type',
    num(s.pendingCount),
    num(s.unackedCount),
    s.oldestUnackedTime ? age(s.oldestUnackedTime) : '—',
    num(s.openStreams),
    pushState(s),
    num(s.deadLetterCount),
    deleteButton(s.name),
  ], { 'data-subscription': s.name })), 'No subscription yet: one is created when an app first streams.', 9);
  for (const id of ['dead-sub', 'replay-sub']) {
    const sel = $(id);
    const current = sel.value;
    const names = subs.map((s) => s.name);
    if (sel.options.length !== names.length || [...sel.options].some((o, i) => o.value !== names[i])) {
      sel.replaceChildren(...names.map((n) => { const o = el('option', n); o.value = n; return o; }));
      if (names.includes(current)) sel.value = current;
    }
  }
}

function outcomeClass(o) {
  return o === 'stored' ? 'ok' : o === 'duplicate' ? 'warn' : 'bad';
}

function renderWebhooks(list) {
  fill($('webhooks'), list.map((w) => row([
    time(w.receivedAt),
    (w.outcome === 'stored' || w.outcome === 'duplicate') ? eventLink(w.eventId) : el('span', w.eventId || '—', 'mono'),
    w.eventType || '—',
    el('span', w.outcome, outcomeClass(w.outcome)),
    w.reason || '',
    w.httpStatus || '',
  ], { 'data-event-id': w.eventId || '', 'data-outcome': w.outcome })), 'No webhook since this sidecar started.', 6);
}

function renderSent(list) {
  fill($('sent'), list.map((s) => {
    const st = enumName(s.state, /^SENT_EVENT_STATE_/);
    return row([
      el('span', s.idempotencyKey, 'mono'),
      s.type,
      el('span', st, st === 'accepted' ? 'ok' : st === 'failed' ? 'bad' : 'warn'),
      el('span', s.eventId || '—', 'mono'),
      num(s.attempts),
      s.error || '',
      time(s.updatedAt),
    ], { 'data-key': s.idempotencyKey, 'data-state': st });
  }), 'No event sent within the idempotency window.', 7);
}

async function refreshDead() {
  const sub = $('dead-sub').value;
  if (!sub) { fill($('dead'), [], 'No subscription.', 6); return; }
  const data = await api('GET', '/v1/subscriptions/' + encodeURIComponent(sub) + '/dead-letters?pageSize=100');
  if ($('dead-sub').value !== sub) return;
  fill($('dead'), (data.deadLetters || []).map((d) => {
    const b = el('button', 'Replay');
    b.type = 'button';
    b.dataset.replay = d.event.id;
    b.addEventListener('click', () => replayDead(sub, [d.event.id], false));
    return row([eventLink(d.event.id), d.event.type, num(d.event.attempt), d.reason, time(d.deadAt), b],
      { 'data-event-id': d.event.id });
  }), 'No dead letter.', 6);
}

async function replayDead(sub, ids, all) {
  const out = $('dead-result');
  try {
    const r = await api('POST', '/v1/subscriptions/' + encodeURIComponent(sub) + '/dead-letters:replay', all ? { all: true } : { eventIds: ids });
    const n = (r.eventIds || []).length;
    out.className = 'result ok';
    out.textContent = 'Offered ' + n + ' dead letter' + (n === 1 ? '' : 's') + ' to ' + sub + ' again.' +
      ((r.unknownEventIds || []).length ? ' Not dead letters: ' + r.unknownEventIds.join(', ') : '');
  } catch (e) {
    out.className = 'result error';
    out.textContent = 'Replay failed: ' + e.message;
  }
  refresh();
}

async function showEvent(id) {
  state.eventId = id;
  state.eventSeq = '';
  $('event-id').value = id;
  await refreshEvent();
  $('event').scrollIntoView({ block: 'nearest' });
}

async function refreshEvent() {
  const id = state.eventId;
  if (!id || state.eventInFlight === id) return; // one call for it at a time
  state.eventInFlight = id;
  try {
    const seq = state.eventSeq ? '?sequence=' + encodeURIComponent(state.eventSeq) : '';
    const r = await api('GET', '/v1/events/' + encodeURIComponent(id) + seq);
    if (state.eventId !== id) return;
    const e = r.event;
    state.eventSeq = e.sequence || '';
    $('event-error').hidden = true;
    $('event-detail').hidden = false;
    $('event-detail').dataset.eventId = e.id;
    $('event-summary').textContent = e.type + ' · id ' + e.id + ' · position ' + num(e.sequence) +
      ' · received ' + time(e.receivedAt) + ' · signed ' + time(e.signedAt);
    $('event-payload').textContent = JSON.stringify(e.payload, null, 2);
    fill($('event-deliveries'), (r.deliveries || []).map((d) => {
      const st = enumName(d.state, /^DELIVERY_STATE_/);
      return row([d.subscription, el('span', st, st === 'acked' ? 'ok' : st === 'dead lettered' ? 'bad' : ''),
        d.attempts ? num(d.attempts) : '—', d.deadLetterReason || ''], { 'data-subscription': d.subscription, 'data-state': st });
    }), 'No subscription.', 4);
  } catch (e) {
    $('event-detail').hidden = true;
    $('event-error').hidden = false;
    $('event-error').textContent = e.message;
    // Not asked again every refresh (each refused call is a line in the
    // sidecar's log); Show asks again.
    if (state.eventId === id) state.eventId = '';
  } finally {
    if (state.eventInFlight === id) state.eventInFlight = '';
  }
}

// replay runs a replay to its end: a time range is replayed page by page,
// each page one call, with the progress shown.
async function replay(ev) {
  ev.preventDefault();
  const out = $('replay-result');
  const sub = $('replay-sub').value;
  if (!sub) { out.className = 'result error'; out.textContent = 'Choose a subscription.'; return; }
  const types = $('replay-types').value.split(/[\s,]+/).filter(Boolean);
  const body = { eventTypes: types };
  const mode = document.querySelector('input[name="replay-mode"]:checked').value;
  if (mode === 'ids') {
    body.eventIds = $('replay-ids').value.split(/[\s,]+/).filter(Boolean);
  } else {
    const start = $('replay-start').value, end = $('replay-end').value;
    if (start) body.startTime = new Date(start).toISOString();
    if (end) body.endTime = new Date(end).toISOString();
  }
  const button = $('replay-start-button');
  button.disabled = true;
  let replayed = 0;
  const unknown = [];
  let expired = '';
  try {
    for (;;) {
      const r = await api('POST', '/v1/subscriptions/' + encodeURIComponent(sub) + '/events:replay', body);
      replayed += (r.eventIds || []).length;
      unknown.push(...(r.unknownEventIds || []));
      if (r.startExpired) expired = ' Events before ' + time(r.oldestRetainedTime) + ' have left the log (retention): the replay starts there.';
      out.className = 'result';
      out.textContent = 'Replaying to ' + sub + ': ' + replayed + ' event' + (replayed === 1 ? '' : 's') + ' offered so far…';
      if (!r.nextPageToken) break;
      body.pageToken = r.nextPageToken;
    }
    out.className = 'result ' + (unknown.length || expired ? 'warn' : 'ok');
    out.textContent = 'Replay done: ' + replayed + ' event' + (replayed === 1 ? '' : 's') + ' offered to ' + sub + ' again.' +
      (unknown.length ? ' Not in the log (never received, past retention, or not of this subscription): ' + unknown.join(', ') + '.' : '') + expired;
    out.dataset.replayed = String(replayed);
  } catch (e) {
    out.className = 'result error';
    out.textContent = 'Replay failed after ' + replayed + ' event' + (replayed === 1 ? '' : 's') + ': ' + e.message;
  } finally {
    button.disabled = false;
  }
  refresh();
}

let refreshing = false;
async function refresh() {
  if (refreshing || state.needToken) return;
  refreshing = true;
  const status = $('status');
  try {
    const [subs, hooks, sent] = await Promise.all([
      api('GET', '/v1/subscriptions'),
      api('GET', '/v1/webhooks'),
      api('GET', '/v1/sent-events?pageSize=50'),
    ]);
    renderSubs(subs.subscriptions || []);
    renderWebhooks(hooks.webhooks || []);
    renderSent(sent.sentEvents || []);
    await refreshDead();
    await refreshEvent();
    status.className = 'status';
    status.textContent = 'Updated ' + new Date().toLocaleTimeString() + ' · refreshes every ' + (refreshMs / 1000) + ' s';
    document.body.dataset.updated = String(Date.now());
  } catch (e) {
    status.className = 'status error';
    status.textContent = 'API error: ' + e.message;
  } finally {
    refreshing = false;
  }
}

function start() {
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.token = $('token').value.trim();
    sessionStorage.setItem('chronoshub-token', state.token);
    state.needToken = false;
    $('token-form').hidden = true;
    refresh();
  });
  $('event-form').addEventListener('submit', (e) => { e.preventDefault(); showEvent($('event-id').value.trim()); });
  $('dead-sub').addEventListener('change', () => refreshDead().catch(() => {}));
  $('dead-replay-all').addEventListener('click', () => { if ($('dead-sub').value) replayDead($('dead-sub').value, [], true); });
  $('replay-form').addEventListener('submit', replay);
  for (const r of document.querySelectorAll('input[name="replay-mode"]')) {
    r.addEventListener('change', () => {
      const byTime = document.querySelector('input[name="replay-mode"]:checked').value === 'time';
      $('replay-ids-fields').hidden = byTime;
      $('replay-time-fields').hidden = !byTime;
    });
  }
  refresh();
  let ticks = 0;
  setInterval(() => {
    document.body.dataset.ticks = String(++ticks); // the page's clock, for tests
    refresh();
  }, refreshMs);
}

start();
