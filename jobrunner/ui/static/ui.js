// jobrunner ui: keeps the pages up to date from the JSON views, and draws metric charts with uPlot.
"use strict";
const jobrunner = (() => {
  const POLL_MS = 2000;
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const get = async (url) => { const r = await fetch(url); if (!r.ok) throw new Error(url + ": " + r.status); return r.json(); };
  const duration = (s) => {
    if (s === null || s === undefined) return "";
    s = Math.floor(s);
    if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
    return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
  };
  const state = (s) => `<span class="state ${esc(s)}">${esc(s)}</span>`;
  const rows = (tbody, list, cells) => { tbody.innerHTML = list.map((x) => "<tr>" + cells(x).map((c) => `<td>${c}</td>`).join("") + "</tr>").join(""); };

  async function runs() {
    const tbody = document.querySelector("#runs tbody");
    const refresh = async () => {
      try {
        const list = await get("/api/runs");
        tbody.innerHTML = list.map((r) => `<tr data-run="${esc(r.id)}">` + [
          `<a href="/runs/${esc(r.id)}">${esc(r.id)}</a>`, esc(r.experiment), state(r.state), r.nodes, r.attempts,
          duration(r.duration_s), r.live ? "live" : "",
        ].map((c) => `<td>${c}</td>`).join("") + "</tr>").join("");
        const empty = document.getElementById("empty"); if (empty && list.length) empty.remove();
      } catch (e) { console.error(e); }
    };
    setInterval(refresh, POLL_MS);
  }

  const charts = {};
  // One uPlot chart per name, made on first use and given new data after: `x` and `y` of
  // `points`, `series` the plotted line's options, `tag` the data attribute tests find it by.
  function chartOf(box, name, label, points, series, tag) {
    const data = [points.map((p) => p.step), points.map((p) => p.value)];
    let chart = charts[name];
    if (!chart) {
      const div = document.createElement("div");
      div.className = "chart";
      div.dataset[tag] = name;
      box.appendChild(div);
      const opts = {
        title: name, width: 460, height: 220, scales: { x: { time: false } }, axes: [{ label }, {}],
        series: [{ label }, { label: name, stroke: "#2563eb", ...series }],
      };
      chart = charts[name] = { plot: new uPlot(opts, data, div), div };
    } else {
      chart.plot.setData(data);
    }
    chart.div.dataset.points = String(points.length);
    return chart;
  }

  function drawMetric(box, name, points) {
    const chart = chartOf(box, name, "step", points, { width: 2, points: { show: points.length < 60 } }, "metric");
    if (!chart.last) {
      chart.last = document.createElement("div");
      chart.last.className = "last";
      chart.div.appendChild(chart.last);
    }
    const last = points[points.length - 1];
    chart.last.textContent = last ? `last ${last.value.toPrecision(6)} at step ${last.step} · ${points.length} points` : "";
  }

  // A sweep: one row per trial (the best marked), and its primary metric against each
  // parameter, one point per trial (a choice's values placed at 0, 1, ... in their order).
  function drawSweep(sweep) {
    const metric = sweep.objective.primary_metric;
    const best = sweep.best ? sweep.best.id : null;
    document.querySelector("#trials thead tr").innerHTML = ["", "trial", ...sweep.parameters, "state", metric, "note"]
      .map((h) => `<th>${esc(h)}</th>`).join("");
    const tbody = document.querySelector("#trials tbody");
    tbody.innerHTML = sweep.trials.map((t) => `<tr data-trial="${esc(t.id)}"${t.id === best ? ' class="best"' : ""}>` + [
      t.id === best ? "*" : "", `<a href="/runs/${esc(t.id)}">${esc(t.id)}</a>`,
      ...sweep.parameters.map((p) => esc(t.params[p])), state(t.state),
      t.metric === null ? "" : t.metric.toPrecision(6), esc(t.stop_reason),
    ].map((c) => `<td>${c}</td>`).join("") + "</tr>").join("");
    document.getElementById("best").textContent = sweep.best
      ? `best: ${sweep.best.id}, ${metric} ${sweep.best.metric.toPrecision(6)}` : "no trial has logged " + metric + " yet";
    const box = document.getElementById("sweep-plots");
    for (const p of sweep.parameters) {
      const scored = sweep.trials.filter((t) => t.metric !== null);
      const values = [...new Set(scored.map((t) => t.params[p]))];
      const numeric = values.every((v) => typeof v === "number");
      const x = (t) => numeric ? t.params[p] : values.indexOf(t.params[p]);
      const points = scored.map((t) => ({ step: x(t), value: t.metric })).sort((a, b) => a.step - b.step);
      drawPoints(box, `${metric} by ${p}`, p, points);
    }
  }

  function drawPoints(box, name, label, points) {
    chartOf(box, name, label, points, { paths: () => null, points: { show: true, size: 8 } }, "plot");
  }

  async function run(id) {
    const base = `/api/runs/${encodeURIComponent(id)}`;
    const refresh = async () => {
      let detail;
      try {
        detail = await get(base);
        document.getElementById("state").outerHTML = state(detail.state).replace("<span ", '<span id="state" ');
        if (detail.sweep) drawSweep(detail.sweep);
        rows(document.querySelector("#history tbody"), detail.transitions, (t) => [esc(t.at), state(t.state), t.attempt, esc(t.note)]);
        rows(document.querySelector("#nodes tbody"), detail.nodes_detail, (n) => [n.rank, esc(n.name), n.exit_code ?? "", esc(n.failure_kind), esc(n.reason)]);
        document.getElementById("outputs").innerHTML = detail.outputs.map((o) =>
          `<li><a href="/runs/${encodeURIComponent(id)}/outputs/${o.path.split("/").map(encodeURIComponent).join("/")}">${esc(o.path)}</a> <span class="dim">${o.size} bytes</span></li>`).join("") || '<li class="dim">none yet</li>';
        const logs = await get(base + "/logs");
        const box = document.getElementById("logs");
        box.innerHTML = Object.entries(logs).map(([name, text]) => `<h3>${esc(name)}</h3><pre data-stream="${esc(name)}">${esc(text)}</pre>`).join("") || '<p class="dim">no logs yet</p>';
        const m = await get(base + "/metrics");
        document.getElementById("params").textContent = m.note ? m.note :
          Object.entries(m.params).map(([k, v]) => `${k}=${v}`).join(", ");
        const chartBox = document.getElementById("metrics");
        for (const [name, points] of Object.entries(m.metrics)) if (points.length) drawMetric(chartBox, name, points);
      } catch (e) { console.error(e); }
      if (!detail || detail.live) setTimeout(refresh, POLL_MS);
    };
    refresh();
  }
  return { runs, run };
})();
