// churnstream dashboard: draws the charts a page embeds (#charts, JSON from the server) with Chart.js, and
// refreshes the overview in place (no reload) from the URL in <body data-live>.
(function () {
  "use strict";
  const COLORS = { low: "#059669", medium: "#d97706", high: "#dc2626" };
  const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
  const charts = {};

  function format(value, kind) {
    if (value === null || value === undefined || value === "") return "-";
    if (kind === "text") return String(value);
    const n = Number(value);
    if (kind === "duration") {
      if (n < 120) return n.toFixed(1) + " s";
      if (n < 7200) return (n / 60).toFixed(1) + " min";
      if (n < 172800) return (n / 3600).toFixed(1) + " h";
      return (n / 86400).toFixed(1) + " d";
    }
    if (kind === "ms") return n.toLocaleString("en-US", { maximumFractionDigits: 1 }) + " ms";
    if (kind === "rate") return n.toLocaleString("en-US", { maximumFractionDigits: 1 }) + "/s";
    if (kind === "money" || kind === "decimal") return n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    if (kind === "decimal4") return n.toFixed(4);
    return n.toLocaleString("en-US", { maximumFractionDigits: 2 });
  }

  function points(spec) {
    return spec.datasets.reduce((n, d) => n + d.data.filter((v) => v !== null).length, 0);
  }

  function config(spec) {
    const type = spec.type;
    const datasets = spec.datasets.map((d, i) => {
      const color = COLORS[d.label] || PALETTE[i % PALETTE.length];
      const out = { label: d.label, data: d.data, borderColor: color, backgroundColor: color, showLine: !!spec.show_line,
                    spanGaps: !!spec.span_gaps };
      if (type === "doughnut") {
        out.backgroundColor = spec.labels.map((l, j) => COLORS[l] || PALETTE[j % PALETTE.length]);
        out.borderColor = "#fff";
      }
      if (spec.stacked && type === "line") out.fill = true;
      if (d.label === "perfect") { out.borderDash = [4, 4]; out.pointRadius = 0; }
      return out;
    });
    const options = { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: "bottom" } } };
    if (type !== "doughnut") {
      options.scales = { x: { stacked: !!spec.stacked }, y: { stacked: !!spec.stacked, beginAtZero: true } };
      if (type === "scatter") options.scales.x = { type: "linear", title: { display: !!spec.x_title, text: spec.x_title || "" } };
    }
    return { type: type, data: { labels: spec.labels, datasets: datasets }, options: options };
  }

  function draw(name, spec) {
    const canvas = document.querySelector('canvas[data-chart="' + name + '"]');
    if (!canvas) return;
    canvas.dataset.points = String(points(spec));
    if (charts[name]) {
      charts[name].data.labels = spec.labels;
      spec.datasets.forEach((d, i) => { if (charts[name].data.datasets[i]) charts[name].data.datasets[i].data = d.data; });
      charts[name].update();
      return;
    }
    charts[name] = new window.Chart(canvas, config(spec));
  }

  function setKpis(kpis) {
    document.querySelectorAll("[data-kpi]").forEach((el) => {
      if (!(el.dataset.kpi in kpis)) return;
      const v = kpis[el.dataset.kpi];
      el.dataset.value = v === null || v === undefined ? "" : String(v);
      el.textContent = format(v, el.dataset.format);
    });
  }

  async function refresh(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const data = await response.json();
    setKpis(data.kpis);
    Object.entries(data.charts).forEach(([name, spec]) => draw(name, spec));
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    const stamp = document.getElementById("updated");
    if (stamp) stamp.textContent = new Date().toLocaleTimeString();
  }

  document.addEventListener("DOMContentLoaded", () => {
    // shading of matrix cells: set through the CSSOM (inline style attributes are refused by the page's CSP)
    document.querySelectorAll("td[data-v]").forEach((el) => el.style.setProperty("--v", el.dataset.v));
    const block = document.getElementById("charts");
    if (block) Object.entries(JSON.parse(block.textContent)).forEach(([name, spec]) => draw(name, spec));
    document.body.dataset.drawn = "true";
    const live = document.body.dataset.live;
    if (live) setInterval(() => refresh(live).catch(() => {}), Number(document.body.dataset.refreshMs || 5000));
  });
})();
