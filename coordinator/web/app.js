// allsweep dashboard: follows the page's live stream (server-sent events), swaps in the
// fragments the server rendered, and draws the figures with uPlot (vendored). No build step.
"use strict";

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const charts = {};

function color(i, alpha) {
  const hex = COLORS[i % COLORS.length];
  if (alpha === undefined) return hex;
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function width(el) {
  return Math.max(320, Math.min(el.clientWidth || 640, 900));
}

// Replaces chart `id` when its series changed, else gives it the new data. The legend is
// drawn here, one entry per config (uPlot's own would list every band edge).
function chart(id, key, build, data, legend) {
  const el = document.getElementById(id);
  if (!el || typeof uPlot === "undefined") return;
  const old = charts[id];
  if (old && old.key === key) {
    old.plot.setData(data);
    return;
  }
  if (old) old.plot.destroy();
  el.textContent = "";
  const options = build(width(el));
  options.legend = { show: false };
  charts[id] = { key, plot: new uPlot(options, data, el) };
  const list = document.createElement("ul");
  list.className = "legend";
  for (const entry of legend) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.borderColor = entry.color;
    if (entry.dashed) swatch.style.borderStyle = "dashed";
    item.append(swatch, document.createTextNode(entry.label));
    list.append(item);
  }
  el.append(list);
}

// Fig. 3: per config, the mean over seeds and a band from the lowest to the highest seed.
function drawCurves(c) {
  if (!c || !c.series || c.series.length === 0) {
    const el = document.getElementById("curves");
    if (el && !charts.curves) el.textContent = "No " + (c ? c.metric : "metric") + " points yet.";
    return;
  }
  const data = [c.epochs];
  const series = [{ label: "epoch" }];
  const bands = [];
  c.series.forEach((s, i) => {
    const base = data.length;
    data.push(s.mean, s.low, s.high);
    series.push({ label: s.label, stroke: color(i), width: 2 });
    series.push({ label: s.label + " (lowest seed)", stroke: color(i, 0.25), width: 1 });
    series.push({ label: s.label + " (highest seed)", stroke: color(i, 0.25), width: 1 });
    bands.push({ series: [base + 2, base + 1], fill: color(i, 0.12) });
  });
  const key = c.metric + "|" + c.series.map((s) => s.label).join("|");
  const legend = c.series.map((s, i) => ({ label: s.label, color: color(i) }));
  chart("curves", key, (w) => ({
    width: w, height: 320, series, bands,
    scales: { x: { time: false } },
    axes: [{ label: "epoch" }, { label: c.label, size: 60 }],
  }), data, legend);
}

// Fig. 2: each config's best seed, true positive rate against false positive rate.
function drawRoc(r) {
  if (!r || !r.series || r.series.length === 0) {
    const el = document.getElementById("roc");
    if (el && !charts.roc) el.textContent = "No test ROC curve yet: it comes with the first completed trial.";
    return;
  }
  const data = [r.fpr, r.fpr];
  const series = [{ label: "FPR" }, { label: "chance", stroke: "#999", dash: [4, 4], width: 1 }];
  r.series.forEach((s, i) => {
    data.push(s.tpr);
    const auc = s.auc === null || s.auc === undefined ? "" : ` (AUC ${s.auc.toFixed(4)})`;
    series.push({ label: s.label + auc, stroke: color(i), width: 2 });
  });
  const key = r.series.map((s) => s.label + s.auc).join("|");
  const legend = series.slice(1).map((s) => ({ label: s.label, color: s.stroke, dashed: !!s.dash }));
  chart("roc", key, (w) => ({
    width: w, height: 320, series,
    scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } },
    axes: [{ label: "false positive rate" }, { label: "true positive rate", size: 50 }],
  }), data, legend);
}

// One trial: every metric it reported, per epoch.
function drawTrial(t) {
  if (!t || t.epochs.length === 0) {
    const el = document.getElementById("trial-curves");
    if (el) el.textContent = "No epoch finished yet.";
    return;
  }
  const data = [t.epochs].concat(t.series.map((s) => s.values));
  const series = [{ label: "epoch" }].concat(t.series.map((s, i) => ({ label: s.label, stroke: color(i), width: 2 })));
  const legend = t.series.map((s, i) => ({ label: s.label, color: color(i) }));
  chart("trial-curves", "trial", (w) => ({
    width: w, height: 320, series, scales: { x: { time: false } }, axes: [{ label: "epoch" }, {}],
  }), data, legend);
}

function follow(url) {
  const events = new EventSource(url);
  const shown = {};
  events.addEventListener("update", (e) => {
    const update = JSON.parse(e.data);
    // Only the fragments that changed are swapped: the rest keep their elements (and a
    // reader's selection).
    for (const [id, html] of Object.entries(update.html || {})) {
      const el = document.getElementById(id);
      if (el && shown[id] !== html) el.innerHTML = html;
      shown[id] = html;
    }
    if (update.curves) drawCurves(update.curves);
    if (update.roc) drawRoc(update.roc);
    if (update.active === false) {
      const cancel = document.getElementById("cancel");
      if (cancel) cancel.closest("form").remove();
    }
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  });
  events.addEventListener("end", () => events.close());
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }
  const figures = document.getElementById("figures");
  if (figures) {
    const f = JSON.parse(figures.textContent);
    drawCurves(f.curves);
    drawRoc(f.roc);
  }
  const trial = document.getElementById("trial-figures");
  if (trial) drawTrial(JSON.parse(trial.textContent));
  const live = document.querySelector("[data-events]");
  if (live) follow(live.dataset.events);
});
