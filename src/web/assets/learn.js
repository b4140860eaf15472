// synod web: the explainer's worked examples, played step by step. Every
// arrow is a message the real acceptor, proposer and learner code exchanged
// (GET /api/demo/NAME), in the story's order.
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVGNS = "http://www.w3.org/2000/svg";
const WORDS = {
  en: { step: "step", of: "of", play: "play", pause: "pause", messages: "Messages",
        story: "The story, as the real roles computed it", cluster: "the cluster",
        title: "synod — the explainer's worked examples", chosen: "chosen", broken: "AGREEMENT BROKEN: two values chosen" },
  zh: { step: "步", of: "/", play: "播放", pause: "暂停", messages: "消息",
        story: "故事(由真实的角色代码计算)", cluster: "集群",
        title: "synod — 讲解中的两个例子", chosen: "选定", broken: "一致性被破坏:选定了两个不同的值" },
};
const st = { story: null, at: 0, timer: null };

function words() { return WORDS[$("#lang").value] || WORDS.en; }

async function load() {
  const q = new URLSearchParams({ lang: $("#lang").value, break: $("#break").value });
  const res = await fetch(`/api/demo/${$("#demo").value}?${q}`);
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  st.story = body;
  st.at = 0;
  const w = words();
  document.documentElement.lang = $("#lang").value;
  $("#title").textContent = w.title;
  $("#back").textContent = w.cluster;
  for (const e of document.querySelectorAll(".t-step")) e.textContent = w.step;
  document.querySelector(".t-messages").textContent = w.messages;
  document.querySelector(".t-story").textContent = w.story;
  const list = $("#lines");
  list.textContent = "";
  for (const line of body.lines) {
    const li = document.createElement("li");
    li.textContent = line;
    list.appendChild(li);
  }
  draw();
}

function draw() {
  const s = st.story;
  if (!s) return;
  const w = words();
  const svg = $("#diagram");
  const width = svg.clientWidth || 900;
  const people = s.people;
  const height = Math.max(200, 60 * people.length);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = `${height}px`;
  const left = 90;
  const lane = (id) => 24 + ((height - 48) * people.findIndex((p) => p[0] === id)) / Math.max(1, people.length - 1);
  const dx = (width - left - 20) / Math.max(1, s.steps.length);
  const x = (i) => left + dx * (i + 0.5);
  svg.textContent = "";
  const defs = document.createElementNS(SVGNS, "defs");
  defs.innerHTML = `<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker>`;
  svg.appendChild(defs);
  for (const [id, name] of people) {
    const l = document.createElementNS(SVGNS, "line");
    l.setAttribute("class", "lane");
    l.setAttribute("x1", left); l.setAttribute("x2", width - 10);
    l.setAttribute("y1", lane(id)); l.setAttribute("y2", lane(id));
    svg.appendChild(l);
    const t = document.createElementNS(SVGNS, "text");
    t.setAttribute("class", "lane-label");
    t.setAttribute("x", 4); t.setAttribute("y", lane(id) + 4);
    t.textContent = name;
    svg.appendChild(t);
  }
  s.steps.slice(0, st.at).forEach((m, i) => {
    const now = i === st.at - 1;
    if (m.kind === "Chosen") {
      const c = document.createElementNS(SVGNS, "circle");
      c.setAttribute("class", `chosen${now ? " now" : ""}`);
      c.setAttribute("cx", x(i)); c.setAttribute("cy", lane(m.from)); c.setAttribute("r", 6);
      c.dataset.msgKind = m.kind; c.dataset.from = m.from; c.dataset.to = m.to;
      const title = document.createElementNS(SVGNS, "title");
      title.textContent = m.label;
      c.appendChild(title);
      svg.appendChild(c);
      return;
    }
    const line = document.createElementNS(SVGNS, "line");
    line.setAttribute("class", `msg k-${m.kind}${now ? " now" : ""}`);
    line.setAttribute("x1", x(i) - dx * 0.4); line.setAttribute("y1", lane(m.from));
    line.setAttribute("x2", x(i) + dx * 0.4); line.setAttribute("y2", lane(m.to));
    line.dataset.msgKind = m.kind; line.dataset.from = m.from; line.dataset.to = m.to;
    const title = document.createElementNS(SVGNS, "title");
    title.textContent = m.label;
    line.appendChild(title);
    line.addEventListener("click", () => { $("#msg-detail").textContent = m.label; });
    svg.appendChild(line);
  });
  const cur = s.steps[st.at - 1];
  $("#msg-detail").textContent = cur ? `${cur.label}   (${nameOf(cur.from)} → ${nameOf(cur.to)})` : "";
  $("#counter").textContent = `${w.step} ${st.at} ${w.of} ${s.steps.length}`;
  // Before the first step, the story's opening lines.
  const upTo = cur ? cur.line : (s.steps.length ? s.steps[0].line - 1 : s.lines.length);
  [...$("#lines").children].forEach((li, i) => {
    li.className = i > upTo && st.at < s.steps.length ? "later" : (cur && i === cur.line ? "now" : "");
  });
  const done = st.at === s.steps.length;
  const distinct = [...new Set(s.chosen)];
  const o = $("#outcome");
  o.dataset.ok = String(distinct.length <= 1);
  o.textContent = !done ? "" : distinct.length > 1 ? `${w.broken}: ${distinct.join(" / ")}` : `${w.chosen}: ${distinct.join("")}`;
}

function nameOf(id) {
  const p = st.story.people.find((q) => q[0] === id);
  return p ? p[1] : String(id);
}

function go(to) {
  if (!st.story) return;
  st.at = Math.max(0, Math.min(st.story.steps.length, to));
  draw();
}

function play(on) {
  clearInterval(st.timer);
  st.timer = null;
  if (on) {
    if (st.at >= st.story.steps.length) st.at = 0;
    st.timer = setInterval(() => {
      if (st.at >= st.story.steps.length) return play(false);
      go(st.at + 1);
    }, 700);
  }
  $("#play").textContent = st.timer ? words().pause : words().play;
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-action]");
  if (!b) return;
  const a = b.dataset.action;
  if (a === "next") go(st.at + 1);
  else if (a === "back") go(st.at - 1);
  else if (a === "first") go(0);
  else if (a === "play") play(st.timer === null);
});
document.addEventListener("keydown", (e) => {
  if (e.key === "ArrowRight") go(st.at + 1);
  if (e.key === "ArrowLeft") go(st.at - 1);
});
for (const sel of ["#demo", "#lang", "#break"]) {
  $(sel).addEventListener("change", () => { play(false); load().catch(report); });
}
window.addEventListener("resize", draw);
$("#back").href = "/" + location.search;

function report(e) {
  $("#outcome").dataset.ok = "false";
  $("#outcome").textContent = e.message;
}

// ?demo=late-joiner&lang=zh&break=p2c opens that example.
const params = new URLSearchParams(location.search);
for (const k of ["demo", "lang", "break"]) if (params.get(k) !== null) $(`#${k}`).value = params.get(k);
load().catch(report);
