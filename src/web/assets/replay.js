// synod web --replay: scrub a finished chaos run's timeline (faults,
// operations, violations). Read-only; plain JavaScript.
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVGNS = "http://www.w3.org/2000/svg";
const st = { run: null, spans: [], t: 0, timer: null, loading: null };

function el(name, attrs, text) {
  const e = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Pair each fault's start with its end (or the run's end).
function spans(faults, duration) {
  const open = new Map();
  const out = [];
  for (const f of faults) {
    if (f.phase === "start") open.set(f.episode, f);
    else if (open.has(f.episode)) {
      const s = open.get(f.episode);
      open.delete(f.episode);
      out.push({ kind: s.fault.split(/[\s(:]/)[0], what: `${s.fault} ${JSON.stringify(s.nodes)}`, from: s.at_ms, to: f.at_ms });
    }
  }
  for (const s of open.values()) out.push({ kind: s.fault.split(/[\s(:]/)[0], what: `${s.fault} ${JSON.stringify(s.nodes)}`, from: s.at_ms, to: duration });
  return out;
}

async function load() {
  const res = await fetch("/api/replay");
  const run = await res.json();
  st.run = run;
  st.spans = spans(run.faults, run.duration_ms);
  const v = run.verdict;
  const bad = (v.violations || []).length > 0;
  const undecided = v.undecided || [];
  $("#run").textContent = `— ${run.dir}, seed ${v.seed}, ${(run.duration_ms / 1000).toFixed(0)} s, ${run.ops} operations`;
  const vd = $("#verdict");
  vd.dataset.ok = String(!bad && undecided.length === 0);
  vd.dataset.outcome = v.outcome || (bad ? "VIOLATION" : "OK");
  vd.textContent = bad ? `VIOLATION (${v.violations.length})` :
    undecided.length ? `INCONCLUSIVE: nothing was found, but ${undecided.length} check(s) could not be decided` :
    `verdict OK: linearizable, logs agree, ${v.lost_writes} of ${v.acknowledged_writes} acknowledged writes lost`;
  const list = $("#violations");
  list.textContent = "";
  if (!bad && undecided.length === 0) {
    const li = document.createElement("li");
    li.textContent = "none: every check passed";
    list.appendChild(li);
  }
  for (const text of undecided) {
    const li = document.createElement("li");
    li.textContent = "undecided: " + text;
    list.appendChild(li);
  }
  for (const text of v.violations || []) {
    const li = document.createElement("li");
    li.textContent = text + " ";
    if (run.involved.length) {
      const b = document.createElement("button");
      b.dataset.action = "jump";
      b.textContent = "show the operations involved";
      li.appendChild(b);
    }
    list.appendChild(li);
  }
  $("#scrub").max = String(Math.ceil(run.duration_ms));
  drawTimeline();
  seek(0);
}

function drawTimeline() {
  const run = st.run;
  const svg = $("#timeline");
  const width = svg.clientWidth || 900;
  const kinds = [...new Set(st.spans.map((s) => s.kind))];
  const laneH = 18;
  const top = 6;
  const chartTop = top + laneH * kinds.length + 8;
  const chartH = 90;
  const height = chartTop + chartH + 22;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = `${height}px`;
  const left = 90;
  const x = (ms) => left + ((width - left - 10) * ms) / Math.max(1, run.duration_ms);
  svg.textContent = "";
  kinds.forEach((k, i) => {
    svg.appendChild(el("text", { class: "lane-label", x: 4, y: top + laneH * i + 13 }, k));
  });
  for (const s of st.spans) {
    const i = kinds.indexOf(s.kind);
    const r = el("rect", { class: `fault-bar f-${s.kind}`, x: x(s.from), y: top + laneH * i + 2,
      width: Math.max(2, x(s.to) - x(s.from)), height: laneH - 4 });
    r.dataset.fault = s.kind;
    r.appendChild(el("title", {}, `${s.what}: ${(s.from / 1000).toFixed(1)}–${(s.to / 1000).toFixed(1)} s`));
    svg.appendChild(r);
  }
  // Acknowledged operations per second.
  const secs = run.seconds;
  const max = Math.max(1, ...secs.map((s) => s.ok));
  const d = secs.map((s, i) => `${i ? "L" : "M"}${x(i * 1000 + 500)},${chartTop + chartH - (s.ok / max) * chartH}`).join(" ");
  svg.appendChild(el("path", { d, fill: "none", stroke: "#2857c5", "stroke-width": 1.5 }));
  svg.appendChild(el("text", { class: "lane-label", x: 4, y: chartTop + 12 }, `${max} ok/s`));
  svg.appendChild(el("text", { class: "lane-label", x: 4, y: chartTop + chartH }, "0"));
  // Seconds along the bottom.
  const step = Math.max(1, Math.ceil(run.duration_ms / 1000 / 10));
  for (let s = 0; s * 1000 <= run.duration_ms; s += step) {
    svg.appendChild(el("line", { class: "tick", x1: x(s * 1000), x2: x(s * 1000), y1: top, y2: chartTop + chartH }));
    svg.appendChild(el("text", { class: "tick-label", x: x(s * 1000) - 6, y: height - 4 }, `${s} s`));
  }
  // The operations involved in a violation, as red ticks.
  for (const o of run.involved) {
    svg.appendChild(el("line", { class: "involved", x1: x(o.invoke_ms), x2: x(o.invoke_ms), y1: chartTop, y2: chartTop + chartH }));
  }
  const cursor = el("line", { id: "cursor", x1: x(st.t), x2: x(st.t), y1: 0, y2: height });
  svg.appendChild(cursor);
  svg.onclick = (e) => {
    const box = svg.getBoundingClientRect();
    const ms = ((e.clientX - box.left - left) / (box.width - left - 10)) * run.duration_ms;
    seek(Math.max(0, Math.min(run.duration_ms, ms)));
  };
  st.x = x;
}

function seek(ms) {
  st.t = ms;
  $("#scrub").value = String(Math.round(ms));
  $("#at").textContent = `at ${(ms / 1000).toFixed(1)} s`;
  const c = $("#cursor");
  if (c) { c.setAttribute("x1", st.x(ms)); c.setAttribute("x2", st.x(ms)); }
  const active = st.spans.filter((s) => s.from <= ms && ms < s.to).map((s) => s.what);
  $("#active").textContent = active.length ? `faults in force: ${active.join("; ")}` : "no fault in force";
  loadOps(ms);
}

async function loadOps(ms) {
  const half = Number($("#zoom").value) || 300;
  const from = Math.max(0, ms - half);
  const to = ms + half;
  const key = `${from}-${to}`;
  st.loading = key;
  const res = await fetch(`/api/replay/ops?from_ms=${from}&to_ms=${to}`);
  const w = await res.json();
  if (st.loading !== key) return;   // a newer window was asked for
  drawOps(w, from, to);
}

function drawOps(w, from, to) {
  const svg = $("#ops");
  const width = svg.clientWidth || 900;
  const clients = [...new Set(w.ops.map((o) => o.client))].sort();
  const laneH = 14;
  const height = Math.max(60, clients.length * laneH + 26);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = `${height}px`;
  const left = 10;
  const x = (ms) => left + ((width - left - 10) * (ms - from)) / (to - from);
  svg.textContent = "";
  for (const o of w.ops) {
    const y = 4 + clients.indexOf(o.client) * laneH;
    const end = o.complete_ms === null ? to : o.complete_ms;
    const r = el("rect", { class: `op s-${o.status}${o.involved ? " involved" : ""}`,
      x: x(Math.max(from, o.invoke_ms)), y, width: Math.max(2, x(Math.min(to, end)) - x(Math.max(from, o.invoke_ms))), height: laneH - 3 });
    r.dataset.status = o.status;
    r.dataset.id = o.id;
    r.appendChild(el("title", {}, `${o.op} → ${o.status}`));
    r.addEventListener("click", () => {
      $("#op-detail").textContent =
        `#${o.id} client ${o.client}: ${o.op}\n${o.status}${o.result !== null ? " " + JSON.stringify(o.result) : ""}, ` +
        `${(o.invoke_ms / 1000).toFixed(3)}–${o.complete_ms === null ? "never" : (o.complete_ms / 1000).toFixed(3)} s` +
        (o.involved ? "\ninvolved in the violation" : "");
    });
    svg.appendChild(r);
  }
  const cx = x(st.t);
  svg.appendChild(el("line", { id: "ops-cursor", x1: cx, x2: cx, y1: 0, y2: height - 14 }));
  svg.appendChild(el("text", { class: "tick-label", x: 4, y: height - 2 },
    `${(from / 1000).toFixed(2)} s … ${(to / 1000).toFixed(2)} s: ${w.ops.length + w.left_out} operations${w.left_out ? ` (an even sample of ${w.ops.length} drawn)` : ""}`));
}

function play(on) {
  clearInterval(st.timer);
  st.timer = null;
  if (on) {
    st.timer = setInterval(() => {
      const next = st.t + 200 * Number($("#speed").value);
      if (next >= st.run.duration_ms) { seek(st.run.duration_ms); return play(false); }
      seek(next);
    }, 200);
  }
  $("#play").textContent = st.timer ? "pause" : "play";
}

$("#scrub").addEventListener("input", (e) => seek(Number(e.target.value)));
$("#zoom").addEventListener("change", () => seek(st.t));
document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-action]");
  if (!b) return;
  if (b.dataset.action === "play") play(st.timer === null);
  if (b.dataset.action === "jump" && st.run.involved.length) seek(st.run.involved[0].invoke_ms);
});
window.addEventListener("resize", () => { if (st.run) { drawTimeline(); seek(st.t); } });
load().catch((e) => { $("#verdict").dataset.ok = "false"; $("#verdict").textContent = `cannot read the run: ${e.message}`; });
