// Metrics view: the analyzer's figures as dependency-free SVG charts, refreshed every 2 s.
import { api, el, seconds } from "/static/app.js";

const REFRESH_MS = 2000;
const HISTORY = 150;  // backlog samples kept while the view is open
const COLORS = ["#3559e0", "#f08c2e", "#d64545", "#1f9d55", "#8e5bd8", "#2bb3c0"];
const NS = "http://www.w3.org/2000/svg";
const backlog = [];

export function renderMetrics(root) {
  const body = el("div", {}, el("p", { class: "muted" }, "Loading figures…"));
  root.append(el("h1", {}, "Metrics"), body);
  let stopped = false;
  const tick = async () => {
    try {
      const figures = await api("/api/stats");
      if (stopped) return;
      backlog.push([figures.at, figures.analyzer.backlog ?? 0]);
      while (backlog.length > HISTORY) backlog.shift();
      body.replaceChildren(...draw(figures));
    } catch (error) {
      if (!stopped) body.replaceChildren(el("div", { class: "message error" }, error.message));
    }
  };
  tick();
  const timer = setInterval(tick, REFRESH_MS);
  return () => { stopped = true; clearInterval(timer); };
}

function draw({ analyzer, blocks }) {
  const tasks = Object.entries(analyzer.tasks);
  const t = analyzer.totals;
  const done = t.succeeded + t.failed + t.rejected + (t.cancelled || 0);
  const busy = blocks.filter((b) => b.job).length;
  return [
    el("div", { class: "figures" },
      figure(analyzer.throughput.last_minute, "jobs completed in the last minute", "completed-last-minute"),
      figure(analyzer.backlog ?? "—", "backlog (records not yet answered)"),
      figure(`${busy} / ${blocks.length}`, "blocks busy"),
      figure(analyzer.worker_restarts.total, "worker restarts")),
    el("div", { class: "grid2" },
      card("Throughput (completions per second, last 60 s)", lineChart(analyzer.throughput.series.map(([s, n]) => [s, n]), "#3559e0")),
      card("Backlog over time", lineChart(backlog, "#f08c2e"))),
    el("div", { class: "grid2" },
      card("Queue wait per task (p50 / p95 / p99)", bars(tasks.map(([n, r]) => [n, pcts(r.queue_wait)]), ["p50", "p95", "p99"], seconds)),
      card("Run time per task (p50 / p95 / p99)", bars(tasks.map(([n, r]) => [n, pcts(r.run_time)]), ["p50", "p95", "p99"], seconds))),
    el("div", { class: "grid2" },
      card(`Failure, rejection and cancel rates per task (${done} answered)`, bars(tasks.map(([n, r]) => [n, rates(r)]), ["failed", "rejected", "cancelled"], (v) => `${(v * 100).toFixed(0)} %`, 0.2)),
      card("Worker restarts per block", bars(blocks.map((b) => [`block ${b.block}`, [analyzer.worker_restarts.by_block[String(b.block)] || 0]]), ["restarts"], (v) => v.toFixed(0), 4))),
    card("Working blocks", blocksTable(blocks)),
  ];
}

function pcts(summary) { return [summary.p50 || 0, summary.p95 || 0, summary.p99 || 0]; }

function rates(row) {
  const cancelled = row.cancelled || 0;
  const answered = row.succeeded + row.failed + row.rejected + cancelled;
  return answered ? [row.failed / answered, row.rejected / answered, cancelled / answered] : [0, 0, 0];
}

function figure(value, label, id) {
  return el("div", { class: "figure", id }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
}

function card(title, content) { return el("section", { class: "card" }, el("h2", {}, title), content); }

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const W = 520, H = 220, PAD = { l: 58, r: 10, t: 10, b: 26 };

// The top of a scale whose four steps are round numbers (1, 2, 2.5 or 5 times a power of ten).
function niceTop(max) {
  const raw = max / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].find((m) => m * power >= raw * (1 - 1e-9)) * power;
  return step * 4;
}

function frame(max, format) {
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  for (let i = 0; i <= 4; i += 1) {
    const y = PAD.t + ((H - PAD.t - PAD.b) * i) / 4;
    chart.append(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, stroke: "#e2e5eb" }));
    chart.append(svg("text", { x: PAD.l - 6, y: y + 4, "text-anchor": "end" }, format(max * (1 - i / 4))));
  }
  return chart;
}

function lineChart(points, color) {
  const max = niceTop(Math.max(4, ...points.map(([, v]) => v)));
  const chart = frame(max, (v) => (Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1)));
  if (points.length < 2) return chart;
  const x0 = points[0][0], x1 = points[points.length - 1][0] || x0 + 1;
  const x = (s) => PAD.l + ((W - PAD.l - PAD.r) * (s - x0)) / Math.max(x1 - x0, 1);
  const y = (v) => H - PAD.b - ((H - PAD.t - PAD.b) * v) / max;
  const path = points.map(([s, v], i) => `${i ? "L" : "M"}${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  chart.append(svg("path", { d: `${path} L${x(x1)},${y(0)} L${x(x0)},${y(0)} Z`, fill: color, "fill-opacity": 0.12 }));
  chart.append(svg("path", { d: path, fill: "none", stroke: color, "stroke-width": 2 }));
  chart.append(svg("text", { x: PAD.l, y: H - 6 }, new Date(x0 * 1000).toLocaleTimeString()));
  chart.append(svg("text", { x: W - PAD.r, y: H - 6, "text-anchor": "end" }, new Date(x1 * 1000).toLocaleTimeString()));
  return chart;
}

function bars(groups, series, format, floor = 4e-3) {
  // floor: the smallest top of the scale, so an all-zero chart has sensible labels.
  const max = niceTop(Math.max(floor, ...groups.flatMap(([, values]) => values)));
  const chart = frame(max, format);
  const width = (W - PAD.l - PAD.r) / Math.max(groups.length, 1);
  const bar = Math.min(28, (width - 12) / series.length);
  groups.forEach(([name, values], g) => {
    const left = PAD.l + g * width + (width - bar * series.length) / 2;
    values.forEach((v, i) => {
      const h = ((H - PAD.t - PAD.b) * v) / max;
      const rect = svg("rect", { x: left + i * bar, y: H - PAD.b - h, width: bar - 2, height: Math.max(h, 0.5), fill: COLORS[i % COLORS.length] });
      rect.append(svg("title", {}, `${name} ${series[i]}: ${format(v)}`));
      chart.append(rect);
    });
    chart.append(svg("text", { x: PAD.l + g * width + width / 2, y: H - 8, "text-anchor": "middle" }, name));
  });
  const legend = el("div", { class: "legend" }, series.map((s, i) => el("span", {}, el("i", { style: `background:${COLORS[i % COLORS.length]}` }), s)));
  return el("div", {}, groups.length ? chart : el("p", { class: "muted" }, "No jobs yet."), series.length > 1 ? legend : null);
}

function blocksTable(blocks) {
  return el("table", { id: "blocks" },
    el("thead", {}, el("tr", {}, ["block", "state", "running job", "processed", "supervisor pid", "worker pid"].map((h) => el("th", {}, h)))),
    el("tbody", {}, blocks.map((b) => el("tr", {},
      el("td", {}, b.block), el("td", {}, b.state),
      el("td", { class: "mono" }, b.job ? el("a", { href: `#/job/${encodeURIComponent(b.job)}` }, b.job) : "—"),
      el("td", {}, b.processed ?? "—"), el("td", {}, b.supervisor_pid ?? "—"), el("td", {}, b.worker_pid ?? "—")))));
}
