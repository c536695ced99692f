// spate streaming UI: renders the REST API into the two pages (statistics, batch) and draws
// the timelines and histograms as inline SVG. No libraries and no network resources beyond
// the job's own /api/v1/streaming/* endpoints.
"use strict";

const REFRESH_MS = 2000;
const API = "/api/v1/streaming";

function esc(v) {
  return String(v === null || v === undefined ? "" : v)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

async function fetchJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return r.json();
}

function pad(n, w) { return String(n).padStart(w || 2, "0"); }

function fmtClock(ms) {
  const d = new Date(ms);
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

function fmtDateTime(ms) {
  const d = new Date(ms);
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
    fmtClock(ms) + "." + pad(d.getMilliseconds(), 3);
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
  return fmtUptime(ms);
}

function fmtUptime(ms) {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h > 0) return h + " h " + pad(m) + " min";
  if (m > 0) return m + " min " + pad(sec) + " s";
  return sec + " s";
}

function fmtNum(n) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: n < 10 ? 2 : 0 });
}

function fmtRate(r) { return r === null || r === undefined ? "–" : fmtNum(r) + " records/s"; }

// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function shortNum(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(v >= 1e7 ? 0 : 1) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(v >= 1e4 ? 0 : 1) + "k";
  return String(Math.round(v * 100) / 100);
}

const CHART_H = 130, PAD_L = 44, PAD_R = 10, PAD_T = 8, PAD_B = 22;

// points: [{x: batch time ms, y: value, failed: bool}], oldest first.
function timelineSvg(points, yMax, avg, unit, width) {
  const W = width, H = CHART_H;
  const iw = W - PAD_L - PAD_R, ih = H - PAD_T - PAD_B;
  let s = '<svg width="' + W + '" height="' + H + '" role="img">';
  for (const f of [0, 0.5, 1]) {
    const y = PAD_T + ih - f * ih;
    s += '<line class="grid" x1="' + PAD_L + '" x2="' + (W - PAD_R) + '" y1="' + y + '" y2="' + y + '"/>';
    s += '<text x="' + (PAD_L - 6) + '" y="' + (y + 3) + '" text-anchor="end">' + esc(shortNum(f * yMax)) + '</text>';
  }
  s += '<line class="axis" x1="' + PAD_L + '" x2="' + PAD_L + '" y1="' + PAD_T + '" y2="' + (PAD_T + ih) + '"/>';
  s += '<line class="axis" x1="' + PAD_L + '" x2="' + (W - PAD_R) + '" y1="' + (PAD_T + ih) + '" y2="' + (PAD_T + ih) + '"/>';
  if (points.length === 0) {
    s += '<text class="nodata" x="' + (PAD_L + iw / 2) + '" y="' + (PAD_T + ih / 2) + '" text-anchor="middle">no completed batches yet</text>';
    return s + "</svg>";
  }
  const x0 = points[0].x, x1 = points[points.length - 1].x;
  const span = Math.max(1, x1 - x0);
  const px = (x) => points.length === 1 ? PAD_L + iw / 2 : PAD_L + ((x - x0) / span) * iw;
  const py = (y) => PAD_T + ih - Math.min(1, y / yMax) * ih;
  const coords = points.map((p) => px(p.x).toFixed(1) + "," + py(p.y).toFixed(1));
  s += '<polygon class="area" points="' + px(x0).toFixed(1) + "," + (PAD_T + ih) + " " +
    coords.join(" ") + " " + px(x1).toFixed(1) + "," + (PAD_T + ih) + '"/>';
  s += '<polyline class="series" points="' + coords.join(" ") + '"/>';
  if (points.length <= 120) {
    for (const p of points) {
      s += '<circle class="dot' + (p.failed ? " failed" : "") + '" r="' + (p.failed ? 3.5 : 2) +
        '" cx="' + px(p.x).toFixed(1) + '" cy="' + py(p.y).toFixed(1) + '"><title>' +
        esc(fmtClock(p.x) + ": " + fmtNum(p.y) + " " + unit) + "</title></circle>";
    }
  }
  if (avg !== null && avg !== undefined) {
    const y = py(avg).toFixed(1);
    s += '<line class="avgline" x1="' + PAD_L + '" x2="' + (W - PAD_R) + '" y1="' + y + '" y2="' + y + '"><title>average</title></line>';
  }
  s += '<text x="' + PAD_L + '" y="' + (H - 6) + '">' + esc(fmtClock(x0)) + "</text>";
  s += '<text x="' + (W - PAD_R) + '" y="' + (H - 6) + '" text-anchor="end">' + esc(fmtClock(x1)) + "</text>";
  return s + "</svg>";
}

// Horizontal bars on the same value axis as the timeline beside it (as Spark draws them).
function histogramSvg(values, yMax) {
  const W = 260, H = CHART_H, BINS = 10;
  const ih = H - PAD_T - PAD_B, iw = W - 20 - 30;
  const counts = new Array(BINS).fill(0);
  for (const v of values) counts[Math.min(BINS - 1, Math.floor((v / yMax) * BINS))]++;
  const cmax = Math.max(1, ...counts);
  let s = '<svg width="' + W + '" height="' + H + '" role="img">';
  s += '<line class="axis" x1="10" x2="10" y1="' + PAD_T + '" y2="' + (PAD_T + ih) + '"/>';
  s += '<line class="axis" x1="10" x2="' + (W - 10) + '" y1="' + (PAD_T + ih) + '" y2="' + (PAD_T + ih) + '"/>';
  const bh = ih / BINS;
  counts.forEach((c, i) => {
    if (c === 0) return;
    const y = PAD_T + ih - (i + 1) * bh;
    const w = (c / cmax) * iw;
    s += '<rect class="bar" x="11" y="' + (y + 1).toFixed(1) + '" width="' + w.toFixed(1) +
      '" height="' + Math.max(1, bh - 2).toFixed(1) + '"><title>' + c + " batches</title></rect>";
    s += '<text x="' + (14 + w).toFixed(1) + '" y="' + (y + bh / 2 + 3).toFixed(1) + '">' + c + "</text>";
  });
  s += '<text x="' + (W - 10) + '" y="' + (H - 6) + '" text-anchor="end">batches</text>';
  if (values.length === 0) {
    s += '<text class="nodata" x="' + (W / 2) + '" y="' + (PAD_T + ih / 2) + '" text-anchor="middle">–</text>';
  }
  return s + "</svg>";
}

function card(label, value, id) {
  return '<div class="card"' + (id ? ' id="' + id + '"' : "") + '><div class="label">' + esc(label) +
    '</div><div class="value">' + esc(value) + "</div></div>";
}

function emptyRow(cols, text) {
  return '<tr><td class="empty" colspan="' + cols + '">' + esc(text) + "</td></tr>";
}

function batchLink(b) {
  return '<td class="time"><a href="/batch?id=' + b.batchId + '">' + esc(fmtDateTime(b.batchId)) + "</a>" +
    (b.recovered ? ' <span class="badge">recovered</span>' : "") + "</td>";
}

// Spark reports a failed batch as COMPLETED with a failure reason; the pages say FAILED.
function shownStatus(b) {
  return b.status === "COMPLETED" && b.firstFailureReason ? "FAILED" : b.status;
}

const METRICS = [
  { key: "inputRate", name: "Input rate", unit: "records/s", avg: (s) => s.avgInputRate, fmt: fmtRate },
  { key: "schedulingDelay", name: "Scheduling delay", unit: "ms", avg: (s) => s.avgSchedulingDelay, fmt: fmtMs },
  { key: "processingTime", name: "Processing time", unit: "ms", avg: (s) => s.avgProcessingTime, fmt: fmtMs },
  { key: "totalDelay", name: "Total delay", unit: "ms", avg: (s) => s.avgTotalDelay, fmt: fmtMs },
];

// The timeline takes the width the table leaves after the metric and histogram columns.
function timelineWidth() {
  const table = document.getElementById("stats-rows").closest("table");
  const avail = (table ? table.clientWidth : 1100) - 210 - 280 - 40;
  return Math.max(360, Math.min(1200, avail));
}

function renderStats(stats, completed) {
  const oldestFirst = completed.slice().reverse();
  const width = timelineWidth();
  let rows = "";
  for (const m of METRICS) {
    const pts = oldestFirst
      .filter((b) => b[m.key] !== null && b[m.key] !== undefined)
      .map((b) => ({ x: b.batchId, y: b[m.key], failed: !!b.firstFailureReason }));
    const values = pts.map((p) => p.y);
    const yMax = niceMax(Math.max(0, ...values));
    const avg = m.avg(stats);
    rows += '<tr id="stat-' + m.key + '"><td class="metric"><div class="name">' + esc(m.name) +
      '</div><div class="avg">avg ' + esc(m.fmt(avg)) + "</div></td>" +
      '<td class="chart timeline" id="timeline-' + m.key + '" data-points="' + pts.length + '">' +
      timelineSvg(pts, yMax, avg, m.unit, width) + "</td>" +
      '<td class="chart histogram" id="histogram-' + m.key + '" data-values="' + values.length + '">' +
      histogramSvg(values, yMax) + "</td></tr>";
  }
  document.getElementById("stats-rows").innerHTML = rows;
  document.getElementById("stats-window").textContent =
    "over the last " + completed.length + " completed batches";
}

function renderSummary(stats) {
  document.getElementById("app-name").textContent = stats.appName;
  document.title = "spate · " + stats.appName + " · Streaming";
  const st = document.getElementById("state");
  st.textContent = stats.state;
  st.className = "badge " + stats.state;
  document.getElementById("started").textContent =
    "Started " + fmtDateTime(stats.startTimeMs) + " · running for " + fmtUptime(stats.uptimeMs) +
    " · batch interval " + fmtMs(stats.batchDuration);
  document.getElementById("summary").innerHTML =
    card("Batch interval", fmtMs(stats.batchDuration)) +
    card("Uptime", fmtUptime(stats.uptimeMs)) +
    card("Completed batches", fmtNum(stats.numTotalCompletedBatches), "completed-batches") +
    card("Records processed", fmtNum(stats.numProcessedRecords), "records-processed") +
    card("Avg input rate", fmtRate(stats.avgInputRate)) +
    card("Avg scheduling delay", fmtMs(stats.avgSchedulingDelay)) +
    card("Avg processing time", fmtMs(stats.avgProcessingTime)) +
    card("Avg total delay", fmtMs(stats.avgTotalDelay)) +
    card("Active batches", fmtNum(stats.numActiveBatches)) +
    card("Failed batches", fmtNum(stats.numFailedBatches));
}

function renderPartitions(parts) {
  document.getElementById("partition-rows").innerHTML = parts.length === 0
    ? emptyRow(6, "no Kafka direct-stream input (or no batch yet)")
    : parts.map((p) =>
      "<tr><td>" + esc(p.inputId) + "</td><td>" + esc(p.topic) + '</td><td class="num">' +
      p.partition + '</td><td class="num">' + fmtNum(p.untilOffset) + '</td><td class="num">' +
      (p.latestOffset === null ? "–" : fmtNum(p.latestOffset)) + '</td><td class="num">' +
      (p.lag === null ? "–" : fmtNum(p.lag)) + "</td></tr>").join("");
}

function partitionList(ps) {
  const byTopic = {};
  for (const p of ps) (byTopic[p.topic] = byTopic[p.topic] || []).push(p.partition);
  return Object.keys(byTopic).sort().map((t) =>
    t + "(" + byTopic[t].sort((a, b) => a - b).join(",") + ")").join(", ") || "–";
}

function renderOwnership(inputs) {
  document.getElementById("ownership-rows").innerHTML = inputs.length === 0
    ? emptyRow(8, "no input shared through a consumer group")
    : inputs.map((o) =>
      '<tr data-input-id="' + esc(o.inputId) + '"><td><code>' + esc(o.inputId) + "</code></td><td>" +
      esc(o.group) + "</td><td>" + esc(o.instanceId) + "</td><td>" + esc(o.clientId) +
      '</td><td class="owned">' + esc(partitionList(o.ownedPartitions)) + '</td><td class="num">' +
      fmtNum(o.rebalances.assigned) + '</td><td class="num">' + fmtNum(o.rebalances.revoked) +
      '</td><td class="num">' + fmtNum(o.rebalances.lost) + "</td></tr>").join("");
  const recent = [];
  for (const o of inputs) for (const r of o.recentRebalances) recent.push([o.inputId, r]);
  recent.sort((a, b) => b[1].timeMs - a[1].timeMs);
  document.getElementById("rebalance-rows").innerHTML = recent.length === 0
    ? emptyRow(6, "no rebalance yet")
    : recent.map(([id, r]) =>
      "<tr><td>" + esc(fmtDateTime(r.timeMs)) + "</td><td><code>" + esc(id) + "</code></td><td>" +
      esc(r.kind) + "</td><td>" + esc(partitionList(r.partitions)) + '</td><td class="num">' +
      fmtMs(r.revocationWaitMs) + '</td><td class="num">' +
      (r.kind === "assigned" && r.firstBatchMs === null ? "waiting" : fmtMs(r.firstBatchMs)) +
      "</td></tr>").join("");
}

function renderRestores(restores) {
  document.getElementById("restore-rows").innerHTML = restores.length === 0
    ? emptyRow(7, "no state restored from a changelog in this run")
    : restores.map((r) =>
      "<tr><td>" + esc(r.operator) + '</td><td class="num">' + r.partition + '</td><td class="num">' +
      fmtNum(r.recordsRestored) + '</td><td class="num">' +
      (r.recordsExpected === null ? "–" : fmtNum(r.recordsExpected)) + "</td><td>" +
      (r.done ? "done" : "restoring") + '</td><td class="num">' + fmtMs(r.elapsedMs) +
      '</td><td class="num">' + fmtNum(r.recordsPerSec) + "</td></tr>").join("");
}

function renderReceivers(receivers) {
  document.getElementById("receiver-rows").innerHTML = receivers.length === 0
    ? emptyRow(6, "no receivers (direct streams have none)")
    : receivers.map((r) => {
      const status = r.isActive ? "ACTIVE" : "INACTIVE";
      return "<tr><td>" + esc(r.streamName) + " <code>" + esc(r.streamId) + '</code></td><td><span class="badge ' +
        status + '">' + status + "</span></td><td>" + esc(r.executorHost) + '</td><td class="num">' +
        (r.avgEventRate === null ? "–" : fmtNum(r.avgEventRate)) + "</td><td>" +
        esc(r.lastErrorTime || "–") + '</td><td class="error">' + esc(r.lastErrorMessage || "") + "</td></tr>";
    }).join("");
}

function renderInputFaults(inputs) {
  const faulty = inputs.filter((i) => i.numErrors > 0);
  document.getElementById("input-fault-rows").innerHTML = faulty.length === 0
    ? emptyRow(4, "no input faults")
    : faulty.map((i) =>
      '<tr data-input-id="' + esc(i.inputId) + '"><td><code>' + esc(i.inputId) + '</code></td><td class="num">' +
      fmtNum(i.numErrors) + "</td><td>" + esc(i.lastErrorTimeMs ? fmtDateTime(i.lastErrorTimeMs) : "–") +
      '</td><td class="error">' + esc(i.lastError || "") + "</td></tr>").join("");
}

function renderBatchTables(active, completed) {
  document.getElementById("active-count").textContent = "(" + active.length + ")";
  document.getElementById("active-rows").innerHTML = active.length === 0
    ? emptyRow(6, "no batch is queued or running")
    : active.map((b) =>
      '<tr data-batch-id="' + b.batchId + '">' + batchLink(b) + '<td><span class="badge ' +
      b.status + '">' + b.status + '</span></td><td class="num">' + fmtNum(b.inputSize) +
      '</td><td class="num">' + fmtMs(b.schedulingDelay) + '</td><td class="num">' +
      fmtMs(b.processingTime) + '</td><td class="num">' + b.numCompletedOutputOps + "/" +
      b.numTotalOutputOps + "</td></tr>").join("");
  const shown = completed.slice(0, 100);
  document.getElementById("completed-count").textContent = "(" + completed.length + " retained" +
    (completed.length > shown.length ? ", newest " + shown.length + " shown" : "") + ")";
  document.getElementById("completed-rows").innerHTML = shown.length === 0
    ? emptyRow(7, "no completed batches yet")
    : shown.map((b) =>
      '<tr data-batch-id="' + b.batchId + '"' + (b.firstFailureReason ? ' class="failed"' : "") + ">" + batchLink(b) +
      '<td class="num">' + fmtNum(b.inputSize) + '</td><td class="num">' + fmtMs(b.schedulingDelay) +
      '</td><td class="num">' + fmtMs(b.processingTime) + '</td><td class="num">' + fmtMs(b.totalDelay) +
      '</td><td class="num">' + b.numCompletedOutputOps + "/" + b.numTotalOutputOps +
      '</td><td class="error">' + esc(b.firstFailureReason || "") + "</td></tr>").join("");
}

async function refreshStreaming() {
  try {
    const [stats, batches, receivers, parts, inputs, ownership, restores] = await Promise.all([
      fetchJson(API + "/statistics"),
      fetchJson(API + "/batches"),
      fetchJson(API + "/receivers"),
      fetchJson(API + "/kafka/partitions"),
      fetchJson(API + "/inputs"),
      fetchJson(API + "/ownership"),
      fetchJson(API + "/state/restores"),
    ]);
    const completed = batches.filter((b) => b.status === "COMPLETED");
    const active = batches.filter((b) => b.status !== "COMPLETED");
    renderSummary(stats);
    renderStats(stats, completed);
    renderPartitions(parts);
    renderOwnership(ownership);
    renderRestores(restores);
    renderReceivers(receivers);
    renderInputFaults(inputs);
    renderBatchTables(active, completed);
    document.body.dataset.loaded = "true";
  } catch (e) {
    document.getElementById("started").textContent = "Cannot reach the job: " + e.message;
  }
}

function rangesTable(input) {
  if (input.offsetRanges.length === 0) {
    return '<p class="meta">' + esc(input.description || "no offset ranges for this input") + "</p>";
  }
  let rows = input.offsetRanges.map((r) =>
    "<tr><td>" + esc(r.topic) + '</td><td class="num">' + r.partition + '</td><td class="num">' +
    fmtNum(r.fromOffset) + '</td><td class="num">' + fmtNum(r.untilOffset) + '</td><td class="num">' +
    fmtNum(r.count) + "</td></tr>").join("");
  rows += input.lostOffsets.map((l) =>
    '<tr><td>' + esc(l.topic) + '</td><td class="num">' + l.partition + '</td><td class="error" colspan="3">lost ' +
    fmtNum(l.count) + " offsets [" + l.requestedFrom + ", " + l.resumedFrom + ") deleted by retention</td></tr>").join("");
  return '<table class="ranges"><thead><tr><th>Topic</th><th class="num">Partition</th><th class="num">From offset</th>' +
    '<th class="num">Until offset</th><th class="num">Count</th></tr></thead><tbody>' + rows + "</tbody></table>";
}

async function refreshBatch() {
  const id = new URLSearchParams(location.search).get("id");
  const title = document.getElementById("batch-title");
  if (!id) { title.textContent = "No batch given (use /batch?id=<batch time ms>)"; return; }
  let b;
  try {
    const [stats, batch] = await Promise.all([fetchJson(API + "/statistics"), fetchJson(API + "/batches/" + encodeURIComponent(id))]);
    document.getElementById("app-name").textContent = stats.appName;
    b = batch;
  } catch (e) {
    title.textContent = "Batch " + id + ": " + e.message;
    return;
  }
  document.title = "spate · Batch " + fmtDateTime(b.batchId);
  const status = shownStatus(b);
  title.innerHTML = "Batch " + esc(fmtDateTime(b.batchId)) + ' <span class="badge ' + status + '">' + status + "</span>";
  document.getElementById("batch-meta").textContent = "Batch time " + b.batchTime + " (" + b.batchId +
    " ms) · submitted " + fmtDateTime(b.submissionTime) +
    (b.processingStartTime ? " · started " + fmtDateTime(b.processingStartTime) : "") +
    (b.processingEndTime ? " · finished " + fmtDateTime(b.processingEndTime) : "") + (b.recovered ? " · re-run from the checkpoint" : "");
  document.getElementById("batch-summary").innerHTML =
    card("Records", fmtNum(b.inputSize), "batch-records") +
    card("Scheduling delay", fmtMs(b.schedulingDelay)) +
    card("Processing time", fmtMs(b.processingTime)) +
    card("Total delay", fmtMs(b.totalDelay)) +
    card("Output ops succeeded", b.numCompletedOutputOps + " / " + b.numTotalOutputOps) +
    (b.numFailedOutputOps > 0 ? card("Output ops failed", b.numFailedOutputOps) : "");
  document.getElementById("inputs").innerHTML = b.inputs.length === 0
    ? '<p class="meta">no inputs</p>'
    : b.inputs.map((i) => '<div class="input" data-input-id="' + esc(i.inputId) + '"><h3>' + esc(i.inputId) +
      " <small>" + fmtNum(i.numRecords) + " records</small></h3>" + rangesTable(i) + "</div>").join("");
  document.getElementById("output-rows").innerHTML = b.outputOpIds.length === 0
    ? emptyRow(6, "no output operation reported yet")
    : b.outputOpIds.map((o) =>
      '<tr><td class="num">' + o.outputOpId + "</td><td>" + esc(o.name) + '</td><td><span class="badge ' +
      o.status + '">' + o.status + "</span></td><td>" + (o.startTime ? esc(fmtDateTime(o.startTime)) : "–") +
      '</td><td class="num">' + fmtMs(o.duration) + '</td><td class="error">' + esc(o.failureReason || "") +
      "</td></tr>").join("");
  document.body.dataset.loaded = "true";
  return b.status;
}

async function loop(refresh) {
  const status = await refresh();
  // A completed batch no longer changes; the statistics page always refreshes.
  if (status !== "COMPLETED") setTimeout(() => loop(refresh), REFRESH_MS);
}

loop(document.body.dataset.page === "batch" ? refreshBatch : refreshStreaming);
