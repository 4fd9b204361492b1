// The mlsd dashboard page: polls /ui/data and draws it with plotly.js (served by mlsd).
"use strict";

const REFRESH_MS = 3000;
const TOKEN_KEY = "mlsd-admin-token";
const CONFIG = { displaylogo: false, responsive: true };
const BASE = { margin: { l: 48, r: 12, t: 8, b: 36 }, legend: { orientation: "h", y: -0.22 },
  font: { size: 11 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff" };
const $ = (id) => document.getElementById(id);

function fmt(n, digits) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 0 : digits });
}

function esc(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function table(headers, rows) {
  const head = headers.map((h) => `<th>${esc(h)}</th>`).join("");
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("");
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

function empty(text) {
  return `<p class="empty">${esc(text)}</p>`;
}

function plot(div, traces, layout, message) {
  if (window.plotlyMissing || typeof Plotly === "undefined") {
    div.innerHTML = empty("charts need plotly: pip install 'mlsd[ui]'");
    return;
  }
  const full = Object.assign({}, BASE, layout);
  if (message) {
    full.annotations = [{ text: message, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5,
      font: { color: "#667085", size: 13 } }];
    full.xaxis = Object.assign({ visible: false }, layout.xaxis || {}, { visible: false });
    full.yaxis = Object.assign({}, layout.yaxis || {}, { visible: false });
  }
  Plotly.react(div, traces, full, CONFIG);
}

function drawCounters(data) {
  const totals = data.traffic.totals;
  $("count-requests").textContent = fmt(totals.requests);
  $("count-rows").textContent = fmt(totals.rows);
  const since = data.traffic.latency_ms.since_start;
  $("count-latency").textContent =
    since.p50 === null ? "–" : `${fmt(since.p50, 2)} / ${fmt(since.p99, 2)} ms`;
  $("count-errors").textContent = `${fmt(totals.http["4xx"] || 0)} / ${fmt(totals.http["5xx"] || 0)}`;
  $("count-alerts").textContent = data.alerts.configured ? fmt(data.alerts.firing.length) : "no rules";
}

function drawTraffic(data) {
  const s = data.traffic.series;
  const traces = Object.entries(s.requests_per_s).map(([variant, ys]) => ({
    x: s.t, y: ys, name: `requests/s ${variant || "(default)"}`, type: "scatter", mode: "lines+markers",
  }));
  for (const kind of ["4xx", "5xx"]) {
    if (s.http_per_s[kind] && s.http_per_s[kind].some((v) => v > 0)) {
      traces.push({ x: s.t, y: s.http_per_s[kind], name: `HTTP ${kind}/s`, type: "scatter",
        mode: "lines", line: { dash: "dot" } });
    }
  }
  const message = s.t.length === 0 ? `waiting for two samples (every ${data.sample_interval_s} s)`
    : traces.length === 0 ? "no scoring request yet" : null;
  plot($("chart-traffic"), traces, { yaxis: { title: { text: "per second" }, rangemode: "tozero" } }, message);
}

function drawLatency(data) {
  const l = data.traffic.latency_ms;
  const traces = ["p50", "p95", "p99"].map((q) => ({
    x: l.t, y: l[q], name: q, type: "scatter", mode: "lines+markers", connectgaps: false,
  }));
  const any = ["p50", "p95", "p99"].some((q) => l[q].some((v) => v !== null));
  plot($("chart-latency"), any ? traces : [], { yaxis: { title: { text: "ms" }, rangemode: "tozero" } },
    any ? null : "no scoring answer in the sampled intervals yet");
}

function firstWithScores(series) {
  return series.find((s) => s.score_bins !== null) || null;
}

function drawScores(data) {
  const entry = firstWithScores(data.drift.series);
  if (!entry) {
    plot($("chart-scores"), [], {}, data.drift.enabled ? "no closed drift window yet" : "live drift is off (--no-drift)");
    $("scores-note").textContent = "";
    return;
  }
  const b = entry.score_bins;
  plot($("chart-scores"), [
    { x: b.labels, y: b.reference, name: "reference (training)", type: "bar" },
    { x: b.labels, y: b.window, name: "last window", type: "bar" },
  ], { barmode: "group", yaxis: { title: { text: "share of scores" } }, xaxis: { type: "category" } });
  $("scores-note").textContent =
    `${entry.model}/${entry.version} ${entry.variant}: the profile's score deciles, window closed ${b.window_end} UTC`;
}

function drawDrift(data) {
  const drift = data.drift;
  const note = $("drift-note");
  const holder = $("drift-features");
  if (!drift.enabled) {
    plot($("chart-drift-summary"), [], {}, "live drift is off (--no-drift)");
    holder.innerHTML = empty("live drift is off (mlsd serve --no-drift)");
    note.textContent = "";
    return;
  }
  const summary = [];
  for (const s of drift.series) {
    const t = s.windows.map((w) => w.end);
    const label = `${s.model}/${s.version} ${s.variant}`;
    summary.push({ x: t, y: s.windows.map((w) => w.score_psi), name: `score PSI ${label}`, type: "scatter", mode: "lines+markers" });
    summary.push({ x: t, y: s.windows.map((w) => w.joint_psi), name: `joint PSI ${label}`, type: "scatter", mode: "lines+markers", line: { dash: "dash" } });
  }
  const windows = drift.series.reduce((n, s) => n + s.windows.length, 0);
  plot($("chart-drift-summary"), windows ? summary : [], { yaxis: { title: { text: "PSI" }, rangemode: "tozero" },
    shapes: windows ? [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0.25, y1: 0.25, line: { color: "#b42318", dash: "dot", width: 1 } }] : [] },
    windows ? null : "no closed drift window yet");
  const open = drift.series.map((s) => `${s.model}/${s.version} ${s.variant}: ${fmt(s.open_rows)} of ${fmt(s.window_rows)} rows in the open window`);
  const missing = drift.profile_missing.length ? ` No reference profile (no drift): ${drift.profile_missing.join(", ")}.` : "";
  note.textContent = (open.join("; ") || "no served rows yet") + "." + missing;

  const keys = drift.series.filter((s) => s.windows.length > 0);
  if (keys.length === 0) {
    holder.innerHTML = empty("no closed drift window yet");
    return;
  }
  const wanted = keys.map((s, i) => `drift-heat-${i}`);
  if (holder.dataset.keys !== wanted.join(",")) {
    holder.innerHTML = keys.map((s, i) => `<p class="note">${esc(`${s.model}/${s.version} ${s.variant}`)}</p><div id="drift-heat-${i}" class="chart heat"></div>`).join("");
    holder.dataset.keys = wanted.join(",");
  }
  keys.forEach((s, i) => {
    const t = s.windows.map((w) => w.end);
    const z = s.features.map((f) => s.windows.map((w) => (f in w.psi ? w.psi[f] : null)));
    plot($(`drift-heat-${i}`), [{
      x: t, y: s.features, z: z, type: "heatmap", zmin: 0, zmax: 0.5, colorscale: "YlOrRd", reversescale: true,
      colorbar: { title: { text: "PSI" } }, hovertemplate: "%{y}<br>%{x}<br>PSI %{z:.3f}<extra></extra>",
    }], { margin: { l: 190, r: 12, t: 8, b: 40 }, yaxis: { automargin: true, type: "category" } });
  });
}

function drawPerformance(data) {
  const perf = data.performance;
  const div = $("performance");
  if (perf === null) {
    div.innerHTML = empty("no labels yet: performance appears here as fraud labels land");
    return;
  }
  if (!Array.isArray(perf.versions)) {
    const rows = Object.entries(perf).map(([k, v]) => [esc(k), esc(typeof v === "object" ? JSON.stringify(v) : v)]);
    div.innerHTML = table(["figure", "value"], rows);
    return;
  }
  // mlsd serve --labels: the last window's figures per version, refreshed in the background
  const span = perf.from ? `${perf.from.replace("T", " ").slice(0, 16)} .. ${perf.to.replace("T", " ").slice(0, 16)} UTC` : "";
  const when = perf.refreshed_at ? `, refreshed ${perf.refreshed_at.replace("T", " ").slice(11, 19)} UTC` : "";
  const head = `<p class="note">${esc(span)}, labels from ${esc(perf.labels)}${esc(when)}</p>`;
  if (perf.versions.length === 0) {
    const why = { starting: "first refresh under way", no_predictions: "no prediction logged in the window" };
    div.innerHTML = head + empty(perf.message && perf.state === "error" ? `error: ${perf.message}` : why[perf.state] || "no data");
    return;
  }
  const state = { no_labels: "no labels yet", one_class: "one class" };
  const lag = (s) => (s === null ? "–" : s >= 86400 ? `${fmt(s / 86400, 1)} d` : `${fmt(s / 3600, 1)} h`);
  const rows = perf.versions.map((r) => [
    esc(`${r.model}/${r.version}`), esc(r.variant), fmt(r.n_predictions), `${fmt(100 * r.label_coverage, 0)}%`,
    lag(r.label_lag_seconds), r.state === "ok" ? fmt(r.auc, 3) : esc(state[r.state] || r.state),
    r.estimate_state === "ok" ? fmt(r.estimated_auc, 3) : esc(r.estimate_state.replace("_", " ")),
    fmt(r.average_precision, 3), fmt(r.block_precision, 2), `${fmt(r.fraud_eur_blocked)} / ${fmt(r.fraud_eur)}`,
  ]);
  const error = perf.state === "error" ? `<p class="note">last refresh failed: ${esc(perf.message)}</p>` : "";
  div.innerHTML = head + error + table(
    ["version", "variant", "preds", "labelled", "lag", "AUC", "est. AUC", "AP", "block prec.", "fraud EUR blocked"], rows);
}

function drawAlerts(data) {
  const a = data.alerts;
  const div = $("alerts");
  if (!a.configured) {
    div.innerHTML = empty("no alert rules (mlsd serve --alert-rules FILE)");
    return;
  }
  const n = a.rules.length;
  const head = `<p class="note">${n} rule${n === 1 ? "" : "s"}; ${a.firing.length} firing now.</p>`;
  if (a.recent.length === 0) {
    div.innerHTML = head + empty("no alert event yet");
    return;
  }
  const rows = a.recent.slice(0, 20).map((e) => [
    esc(e.at.replace("T", " ").slice(0, 19)), `<span class="state-${esc(e.state)}">${esc(e.state)}</span>`,
    `<span class="sev-${esc(e.severity)}">${esc(e.rule)}</span>`, esc(`${e.model}/${e.version}`),
    esc(`${e.metric} ${e.feature || ""}`), esc(`${fmt(e.value, 3)} > ${fmt(e.threshold, 3)}`),
  ]);
  div.innerHTML = head + table(["at (UTC)", "state", "rule", "version", "metric", "value"], rows);
}

function drawModels(data) {
  const div = $("models");
  if (data.models.length === 0) {
    div.innerHTML = empty(data.load_error ? `no model loaded: ${data.load_error}` : "no model loaded yet");
    return;
  }
  const rows = data.models.map((m) => [
    esc(`${m.name}/${m.version}`), esc(m.aliases.join(", ") || "(pinned)"), esc(m.runtime),
    esc(m.loaded_at.slice(0, 19)), fmt(m.rows_scored),
    m.lagging.length ? `<span class="state-failed">${esc(m.lagging.map((l) => `@${l.alias} points at v${l.points_at}: ${l.reason}`).join("; "))}</span>` : "",
  ]);
  div.innerHTML = table(["version", "aliases", "runtime", "loaded (UTC)", "rows scored", "lagging"], rows);
}

function drawRollouts(data) {
  const r = data.rollouts;
  const div = $("rollouts");
  if (!r.available) {
    div.innerHTML = empty("this server's models do not come from a registry: no rollouts");
    return;
  }
  if (r.error) {
    div.innerHTML = empty(`cannot read the rollouts: ${r.error}`);
    return;
  }
  if (r.items.length === 0) {
    div.innerHTML = empty("no rollout yet (mlsd rollout start SPEC)");
    return;
  }
  const rows = r.items.map((x) => [
    esc(x.id), esc(x.kind), `<span class="state-${esc(x.state)}">${esc(x.state)}</span>`,
    esc(`${x.endpoint}: v${x.champion} → v${x.challenger}`),
    esc(x.kind === "shadow" ? `mirrors ${fmt(x.spec.share, 1)} %` : `${fmt(x.share, 1)} %`),
    esc(x.steps.length ? `${x.step + 1} of ${x.steps.length}` : "–"),
    esc(`${x.checks} (${x.failed_checks} failed)`),
    esc(x.exposed_requests === null ? "–" : `${fmt(x.exposed_requests)} req, ${fmt(x.exposed_customers)} customers`),
    esc(x.updated_at.replace("T", " ").slice(0, 19)), esc(x.error || ""),
  ]);
  div.innerHTML = table(["id", "kind", "state", "versions", "share", "step", "checks", "exposure here",
    "updated (UTC)", "error here"], rows);
}

function draw(data) {
  const status = $("status");
  status.textContent = `${data.ready ? "serving" : "not ready" + (data.load_error ? ": " + data.load_error : "")} · data of ${data.generated_at} UTC`;
  status.className = data.ready ? "status" : "status bad";
  drawCounters(data);
  drawTraffic(data);
  drawLatency(data);
  drawScores(data);
  drawDrift(data);
  drawPerformance(data);
  drawAlerts(data);
  drawModels(data);
  drawRollouts(data);
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

async function refresh() {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const response = await fetch("/ui/data", { headers: headers, cache: "no-store" });
    if (response.status === 401) {
      $("token-form").hidden = false;
      $("status").textContent = "needs the admin token";
      return;
    }
    if (!response.ok) throw new Error(`/ui/data answered ${response.status}`);
    $("notice").hidden = true;
    draw(await response.json());
  } catch (err) {
    $("notice").hidden = false;
    $("notice").textContent = `cannot read /ui/data: ${err.message}; retrying`;
  }
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value);
  $("token-form").hidden = true;
  refresh();
});
$("refresh-s").textContent = String(REFRESH_MS / 1000);
if (window.plotlyMissing) {
  $("notice").hidden = false;
  $("notice").textContent = "charts need plotly on the server: pip install 'mlsd[ui]'";
}
refresh();
setInterval(refresh, REFRESH_MS);
