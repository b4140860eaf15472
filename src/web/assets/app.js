// synod web: the cluster at a glance, a live message diagram, real controls.
// Plain JavaScript, no build step, nothing loaded from outside this server.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const $ = (sel) => document.querySelector(sel);
const state = { status: null, frozen: false, messages: [], drawn: [], rate: [], lastChosen: null, lastAt: null, cards: {} };
const MAX_MESSAGES = 600;     // messages kept (bounded memory)
const MAX_ARROWS = 120;       // arrows drawn: a browser beside the cluster must not eat its CPU
const MAX_EVENTS = 200;

// ---------------------------------------------------------------- requests

async function post(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Synod-Token": token },
    body: JSON.stringify(body || {}),
  });
  let answer = {};
  try { answer = await res.json(); } catch (_) { /* empty body */ }
  if (!res.ok) throw new Error(answer.error || `${res.status} ${res.statusText}`);
  return answer;
}

function logEvent(text, cls) {
  const li = document.createElement("li");
  const t = document.createElement("span");
  t.className = "t";
  t.textContent = new Date().toTimeString().slice(0, 8);
  li.appendChild(t);
  li.appendChild(document.createTextNode(text));
  if (cls) li.className = cls;
  const list = $("#events");
  list.insertBefore(li, list.firstChild);
  while (list.children.length > MAX_EVENTS) list.removeChild(list.lastChild);
}

// Successes come back to every open page as server events; a failure is
// this page's own, so it is logged here.
async function act(label, path, body) {
  try {
    return await post(path, body);
  } catch (e) {
    logEvent(`${label}: ${e.message}`, "error");
    throw e;
  }
}

// ---------------------------------------------------------------- status

// One status request at a time: on a loaded machine a slow answer must not
// pile requests up and starve the page's own actions of connections.
let refreshing = false;
let again = false;

async function refresh() {
  if (refreshing) { again = true; return; }
  refreshing = true;
  try {
    await refreshOnce();
  } finally {
    refreshing = false;
    if (again) { again = false; refresh(); }
  }
}

async function refreshOnce() {
  try {
    const res = await fetch("/api/status", { headers: { "X-Synod-Token": token } });
    if (!res.ok) throw new Error(res.statusText);
    const st = await res.json();
    state.status = st;
    render(st);
  } catch (e) {
    $("#majority").textContent = `cannot read the cluster's status: ${e.message}`;
    $("#majority").dataset.ok = "false";
  }
}

// Write text only when it changed: every write makes the browser lay out and
// paint again, and the page refreshes every second beside a busy cluster.
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function field(dl, name, value) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = value === null || value === undefined ? "-" : String(value);
  dl.append(dt, dd);
}

function card(node) {
  let el = document.querySelector(`.card[data-node-id="${node.id}"]`);
  if (!el) {
    el = document.createElement("article");
    el.className = "card";
    el.dataset.nodeId = node.id;
    el.innerHTML = `<h3><span class="name"></span><span class="badge"></span></h3><dl></dl>
      <div class="actions">
        <button data-action="kill" data-node-id="${node.id}">kill</button>
        <button data-action="restart" data-node-id="${node.id}">restart</button>
        <button data-action="pause" data-node-id="${node.id}">pause</button>
        <button data-action="resume" data-node-id="${node.id}">resume</button>
        <button data-action="promote" data-node-id="${node.id}">promote</button>
        <button data-action="remove" data-node-id="${node.id}">remove</button>
      </div>`;
    $("#nodes").appendChild(el);
  }
  // Touch the page only when the node changed.
  const seen = JSON.stringify(node);
  if (state.cards[node.id] === seen) return el;
  state.cards[node.id] = seen;
  el.dataset.role = node.role || "none";
  el.dataset.state = node.state;
  setText(el.querySelector(".name"), `node ${node.id}`);
  setText(el.querySelector(".badge"), node.state === "up" ? (node.role || "") : node.state);
  const rows = [["address", node.addr], ["pid", node.pid], ["promised", node.promised],
    ["own ballot", node.ballot], ["chosen", node.chosen], ["applied", node.applied],
    ["snapshot", node.snapshot], ["faults", node.faults || "none"]];
  const dl = el.querySelector("dl");
  if (dl.children.length !== rows.length * 2) {
    dl.textContent = "";
    for (const [name, value] of rows) field(dl, name, value);
  } else {
    rows.forEach(([, value], i) => {
      setText(dl.children[i * 2 + 1], value === null || value === undefined ? "-" : String(value));
    });
  }
  return el;
}

function render(st) {
  setText($("#cluster-name"), `— cluster “${st.cluster}”`);
  const c = st.config;
  if (c) {
    const next = c.next ? `; configuration ${c.next.number} (voters ${c.next.voters.join(", ")}) governs from slot ${c.next.at}` : "";
    const learners = c.learners.length ? `, learners ${c.learners.join(", ")}` : "";
    setText($("#config"), `configuration ${c.number}: voters ${c.voters.join(", ")}${learners}${next}`);
  }
  const nodes = st.nodes || [];
  for (const n of nodes) card(n);
  const up = nodes.filter((n) => n.state === "up").length;
  const q = st.quorums || {};
  const need = q.phase2 || Math.floor(nodes.length / 2) + 1;
  const leader = nodes.find((n) => n.state === "up" && n.role === "leader");
  const ok = up >= need && (leader !== undefined || up >= (q.phase1 || need));
  const m = $("#majority");
  if (m.dataset.ok !== String(ok)) m.dataset.ok = String(ok);
  setText(m, q.flexible
    ? `${up} of ${nodes.length} up; choosing needs ${q.phase2}, electing ${q.phase1}; ${ok ? "writes can commit" : "writes cannot commit"}`
    : `${up} of ${nodes.length} up; a majority needs ${need}; ${ok ? "writes can commit" : "writes cannot commit"}`);
  setText($("#quorums"), q.flexible ? `flexible quorums (${q.phase1}, ${q.phase2})` : "majority quorums");
  // Client operations answered per second (each node counts its own over
  // the last 10 s), the busiest node's latency, and slots chosen per second.
  const up_ = nodes.filter((n) => n.state === "up");
  const ops = up_.reduce((sum, n) => sum + (n.client_ops_per_s || 0), 0);
  const busiest = up_.reduce((b, n) => (!b || (n.client_ops_per_s || 0) > (b.client_ops_per_s || 0) ? n : b), null);
  const chosen = Math.max(0, ...nodes.map((n) => n.chosen || 0));
  const now = performance.now();
  // A point a second at most: refreshes that events trigger come closer.
  if (state.lastChosen !== null && now - state.lastAt < 900) return;
  if (state.lastChosen !== null) {
    const slots = ((chosen - state.lastChosen) * 1000) / (now - state.lastAt);
    state.rate.push({ t: now, v: ops, p50: busiest && busiest.client_p50_ms, p99: busiest && busiest.client_p99_ms, slots });
    state.rate = state.rate.filter((r) => now - r.t <= 60000);
    drawRate(busiest);
  }
  state.lastChosen = chosen;
  state.lastAt = now;
}

function drawRate(busiest) {
  const svg = $("#rate");
  const pts = state.rate;
  if (pts.length < 2) return;
  const max = Math.max(1, ...pts.map((p) => p.v));
  const t0 = pts[pts.length - 1].t - 60000;
  const d = pts.map((p, i) => `${i ? "L" : "M"}${((p.t - t0) / 60000) * 300},${60 - (p.v / max) * 56}`).join(" ");
  svg.innerHTML = `<path d="${d}" fill="none" stroke="#2857c5" stroke-width="1.5"/>`;
  const last = pts[pts.length - 1];
  const p99s = pts.map((p) => p.p99 || 0);
  setText($("#rate-text"),
    `${last.v.toFixed(last.v < 10 ? 1 : 0)} client operations answered per second (last 10 s), at most ${max.toFixed(max < 10 ? 1 : 0)} in the last minute; ` +
    (busiest && last.v > 0 ? `at node ${busiest.id}: p50 ${(last.p50 || 0).toFixed(2)} ms, p99 ${(last.p99 || 0).toFixed(2)} ms (p99 at most ${Math.max(...p99s).toFixed(2)} ms in the minute); ` : "") +
    `${last.slots.toFixed(0)} slots chosen per second`);
}

// ---------------------------------------------------------------- diagram

const SVGNS = "http://www.w3.org/2000/svg";

function drawDiagram() {
  if (state.frozen) return;
  const WINDOW_MS = Number($("#window").value) || 3000;
  const svg = $("#diagram");
  const nodes = (state.status && state.status.nodes) || [];
  const width = svg.clientWidth || 900;
  const height = svg.clientHeight || 320;
  const left = 60;
  const lane = (id) => {
    const i = nodes.findIndex((n) => n.id === id);
    return 20 + ((height - 40) * (i < 0 ? 0 : i)) / Math.max(1, nodes.length - 1);
  };
  const now = Date.now();
  const x = (ms) => left + ((width - left - 10) * (ms - (now - WINDOW_MS))) / WINDOW_MS;
  svg.textContent = "";
  const defs = document.createElementNS(SVGNS, "defs");
  defs.innerHTML = `<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker>`;
  svg.appendChild(defs);
  for (const n of nodes) {
    const y = lane(n.id);
    const l = document.createElementNS(SVGNS, "line");
    l.setAttribute("class", "lane");
    l.setAttribute("x1", left); l.setAttribute("x2", width - 10);
    l.setAttribute("y1", y); l.setAttribute("y2", y);
    svg.appendChild(l);
    const t = document.createElementNS(SVGNS, "text");
    t.setAttribute("class", "lane-label");
    t.setAttribute("x", 4); t.setAttribute("y", y + 4);
    t.textContent = `node ${n.id}`;
    svg.appendChild(t);
  }
  // Five ticks, labelled with how long ago.
  const step = WINDOW_MS / 5;
  for (let ago = WINDOW_MS; ago >= 0; ago -= step) {
    const tx = x(now - ago);
    const tick = document.createElementNS(SVGNS, "line");
    tick.setAttribute("class", "tick");
    tick.setAttribute("x1", tx); tick.setAttribute("x2", tx);
    tick.setAttribute("y1", 8); tick.setAttribute("y2", height - 12);
    svg.insertBefore(tick, svg.firstChild.nextSibling);
    const label = document.createElementNS(SVGNS, "text");
    label.setAttribute("class", "tick-label");
    label.setAttribute("x", tx - 8); label.setAttribute("y", height - 1);
    label.textContent = ago ? `−${ago / 1000} s` : "now";
    svg.appendChild(label);
  }
  const beats = $("#heartbeats").checked;
  state.messages = state.messages.filter((m) => now - m.recv_ms <= 30000).slice(-MAX_MESSAGES);
  // The most recent, with heartbeats last in line when there are too many.
  let shown = state.messages.filter((m) => now - m.recv_ms <= WINDOW_MS && (beats || !m.msg.startsWith("Heartbeat")));
  if (shown.length > MAX_ARROWS) {
    const proto = shown.filter((m) => !m.msg.startsWith("Heartbeat")).slice(-MAX_ARROWS);
    const room = MAX_ARROWS - proto.length;
    const hb = room > 0 ? shown.filter((m) => m.msg.startsWith("Heartbeat")).slice(-room) : [];
    shown = proto.concat(hb);
  }
  const labels = shown.filter((m) => !m.msg.startsWith("Heartbeat")).length <= 24;
  state.drawn = [];
  for (const m of shown) {
    const line = document.createElementNS(SVGNS, "line");
    const known = ["Prepare", "Promise", "Nack", "Accept", "Accepted", "Learn", "Heartbeat", "HeartbeatAck"];
    const kind = known.includes(m.msg) ? m.msg : "other";
    line.setAttribute("class", `msg k-${kind}${m.dropped ? " dropped" : ""}${m.dup ? " dup" : ""}`);
    line.setAttribute("x1", x(m.sent_ms)); line.setAttribute("y1", lane(m.from));
    line.setAttribute("x2", x(m.recv_ms)); line.setAttribute("y2", lane(m.to));
    line.dataset.msgKind = m.msg;
    line.dataset.from = m.from;
    line.dataset.to = m.to;
    line.dataset.i = state.drawn.length;
    state.drawn.push(m);
    svg.appendChild(line);
    // Label the protocol's own arrows (ballot and slot are in the text) while
    // there are few enough to read; heartbeats stay unlabelled.
    if (labels && !m.msg.startsWith("Heartbeat")) {
      const t = document.createElementNS(SVGNS, "text");
      t.setAttribute("class", "msg-label");
      t.setAttribute("x", (x(m.sent_ms) + x(m.recv_ms)) / 2 + 3);
      t.setAttribute("y", (lane(m.from) + lane(m.to)) / 2 - 2);
      t.textContent = (m.text || m.msg).slice(0, 28);
      svg.appendChild(t);
    }
  }
}

// ---------------------------------------------------------------- events

function listen() {
  const es = new EventSource("/api/events?token=" + encodeURIComponent(token));
  es.onmessage = (e) => {
    let ev;
    try { ev = JSON.parse(e.data); } catch (_) { return; }
    switch (ev.kind) {
      case "message":
        if (!state.frozen) state.messages.push(ev);
        break;
      // A node or a leader changed: show it now, not at the next refresh.
      case "node":
        logEvent(`node ${ev.id}: ${ev.from} → ${ev.to}`);
        refresh();
        break;
      case "election":
        logEvent(`node ${ev.leader} leads at ballot ${ev.ballot}`);
        refresh();
        break;
      case "fault":
      case "op":
        logEvent(ev.text);
        break;
      case "chosen":
        break;
      default:
        break;
    }
  };
  es.onerror = () => { /* the browser reconnects by itself */ };
}

// ---------------------------------------------------------------- controls

function sides() {
  const text = $("#sides").value.trim();
  return text.split("|").map((s) => s.split(",").map((x) => parseInt(x.trim(), 10)).filter((x) => !Number.isNaN(x)));
}

document.addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-action]");
  if (!b) return;
  const a = b.dataset.action;
  const id = b.dataset.nodeId;
  try {
    if (id && ["kill", "restart", "pause", "resume", "promote", "remove"].includes(a)) {
      await act(`${a} node ${id}`, `/api/nodes/${id}/${a}`);
    } else if (a === "member-add") {
      await act(`add ${$("#member-addr").value}`, "/api/members/add",
        { addr: $("#member-addr").value.trim(), promote: $("#member-promote").checked });
    } else if (a === "partition") {
      await act("partition", "/api/partition", { sides: sides() });
    } else if (a === "heal") {
      await act("heal", "/api/heal");
    } else if (a === "net") {
      const [lo, hi] = ($("#delay").value || "0..0").split("..").map((x) => parseInt(x, 10) || 0);
      await act("network", "/api/net", { loss: +$("#loss").value, dup: +$("#dup").value, delay: [lo, hi] });
    } else if (a === "put") {
      const r = await act(`put ${$("#key").value}`, "/api/put", { key: $("#key").value, value: $("#value").value });
      $("#put-result").textContent = r.message || "ok";
      $("#put-result").className = "result";
    }
  } catch (err) {
    if (a === "put") {
      $("#put-result").textContent = err.message;
      $("#put-result").className = "result error";
    }
  }
  refresh();
});

$("#shape").addEventListener("change", (e) => {
  const nodes = ((state.status && state.status.nodes) || []).map((n) => n.id);
  const leader = ((state.status && state.status.nodes) || []).find((n) => n.role === "leader");
  const half = Math.floor(nodes.length / 2);
  const shapes = {
    "leader-alone": leader ? [[leader.id], nodes.filter((x) => x !== leader.id)] : null,
    "halves": [nodes.slice(0, half), nodes.slice(half)],
    "majority-minority": [nodes.slice(0, half + 1), nodes.slice(half + 1)],
  };
  const s = shapes[e.target.value];
  if (s) $("#sides").value = s.map((side) => side.join(",")).join(" | ");
});

// One listener for every arrow (they are redrawn twice a second).
$("#diagram").addEventListener("click", (e) => {
  const m = state.drawn[e.target.dataset.i];
  if (!m) return;
  $("#msg-detail").textContent =
    `${m.msg} ${m.from} → ${m.to}` +
    (m.dropped ? "  (dropped by the fault layer)" : "") +
    (m.dup ? "  (duplicated)" : "") +
    (m.text ? `\n${m.text}` : "");
});

$("#freeze").addEventListener("click", (e) => {
  state.frozen = !state.frozen;
  e.target.dataset.frozen = String(state.frozen);
  e.target.textContent = state.frozen ? "resume" : "pause";
});

refresh();
listen();
// Twice a second: enough to watch, cheap enough to leave open beside a benchmark.
setInterval(refresh, 1000);
setInterval(() => { if (!document.hidden) drawDiagram(); }, 500);
