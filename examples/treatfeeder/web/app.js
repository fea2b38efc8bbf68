"use strict";
// The page keeps no state of its own: it renders /api/status documents,
// pushed by the server over Server-Sent Events on every change.
const $ = (id) => document.getElementById(id);
let status = null;
let skew = 0; // server clock minus ours, so countdowns match the server
let busy = false;

function fmtTime(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function fmtWait(ms) {
  const s = Math.ceil(ms / 1000);
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${s} s`;
}

function render() {
  if (!status) return;
  const st = status;
  $("treats-today").textContent = st.treats_today;
  $("daily-limit").textContent = st.daily_limit;
  $("hopper").textContent = st.hopper;
  $("angle").textContent = st.servo_angle_deg == null ? "" : ` (servo at ${Math.round(st.servo_angle_deg)}°)`;

  const now = Date.now() + skew;
  const next = st.next_allowed_at ? Date.parse(st.next_allowed_at) : 0;
  let reason = "";
  let allowed = st.allowed;
  if (!allowed && next && next <= now && !st.fault && st.treats_today < st.daily_limit) allowed = true; // interval just ran out
  if (st.busy) reason = "Dispensing…";
  else if (st.fault) reason = st.fault;
  else if (!allowed) reason = st.reason + (next > now ? ` – next treat in ${fmtWait(next - now)}` : "");
  $("treat").disabled = busy || st.busy || !allowed;
  $("treat-reason").textContent = reason;
  $("next").textContent = allowed ? "A treat is allowed now." : (next > now ? `Next treat at ${fmtTime(st.next_allowed_at)}` : "");

  $("call").disabled = st.calling;
  $("call-state").textContent = st.calling ? "Playing the call sound…" : "";

  const recent = $("recent");
  recent.replaceChildren(...st.recent.map((d) => {
    const li = document.createElement("li");
    const closed = d.closed_at ? `closed ${fmtTime(d.closed_at)}` : (d.error ? `close failed: ${d.error}` : "open");
    li.textContent = `#${d.n} opened ${fmtTime(d.opened_at)}, ${closed} – ${d.who}`;
    return li;
  }));
  if (!st.recent.length) recent.replaceChildren(Object.assign(document.createElement("li"), { textContent: "None yet." }));

  const devices = $("devices");
  devices.replaceChildren(...Object.entries(st.devices).sort().flatMap(([k, v]) => [
    Object.assign(document.createElement("dt"), { textContent: k }),
    Object.assign(document.createElement("dd"), { textContent: v }),
  ]));
}

function update(st) {
  status = st;
  skew = Date.parse(st.now) - Date.now();
  render();
}

async function post(url, button, label) {
  busy = true;
  button.setAttribute("aria-busy", "true");
  render();
  try {
    const res = await fetch(url, { method: "POST", headers: { Accept: "application/json" } });
    if (res.status === 401) { location.href = "/login"; return; }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) $(label).textContent = body.error || `Failed (${res.status})`;
    else if (body.treats_today !== undefined) update(body);
  } catch (e) {
    $(label).textContent = "Network error: " + e.message;
  } finally {
    busy = false;
    button.removeAttribute("aria-busy");
    if (status) setTimeout(render, 1500); // keep an error visible a moment
  }
}

$("treat").addEventListener("click", () => post("/api/treat", $("treat"), "treat-reason"));
$("call").addEventListener("click", () => post("/api/call", $("call"), "call-state"));

function connect() {
  const es = new EventSource("/api/events");
  es.addEventListener("status", (e) => { update(JSON.parse(e.data)); $("live").textContent = "Live updates on."; });
  es.onerror = () => { $("live").textContent = "Reconnecting…"; };
}
connect();
setInterval(render, 1000); // countdowns

// Restart the stream if the picture stalls (e.g. after Wi-Fi drops).
const img = $("stream");
img.addEventListener("error", () => {
  $("camera-status").textContent = "Camera unavailable – retrying…";
  setTimeout(() => { img.src = "/stream.mjpg?" + Date.now(); }, 3000);
});
img.addEventListener("load", () => { $("camera-status").textContent = "Live picture"; });
