// computeinfra web app: hash routes, live job events (SSE), notifications. No dependencies.
import { renderSubmit } from "/static/forms.js";
import { renderJobs, renderJob } from "/static/jobs.js";
import { renderMetrics } from "/static/metrics.js";
import { renderDeadLetters } from "/static/dead.js";

const MY_KEYS = "computeinfra.myKeys";
const MAX_MY_KEYS = 300;
const MAX_TOASTS = 6;
const MAX_LOOKUPS = 20;

export const store = {
  jobs: new Map(),          // key -> job view (from /api/jobs and /api/events)
  listeners: new Set(),     // called with the changed view
  myKeys() { try { return JSON.parse(localStorage.getItem(MY_KEYS) || "[]"); } catch { return []; } },
  addMine(key) {
    const keys = [key, ...this.myKeys().filter((k) => k !== key)].slice(0, MAX_MY_KEYS);
    localStorage.setItem(MY_KEYS, JSON.stringify(keys));
  },
  isMine(key) { return this.myKeys().includes(key); },
  put(view) {
    const old = this.jobs.get(view.key);
    if (old && old.completion && !view.completion && rank(view) <= rank(old)) return;
    this.jobs.set(view.key, view);
    updateRunningCount();
    for (const fn of this.listeners) fn(view);
  },
};

const RANK = { pending: 0, running: 1 };
function rank(view) { return RANK[view.state] ?? 2; }

export async function api(path, options = {}) {
  const response = await fetch(path, options);
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = { message: text }; }
  if (!response.ok) {
    const error = new Error((body && body.message) || `${response.status} ${response.statusText}`);
    error.field = body && body.field;
    error.status = response.status;
    throw error;
  }
  return body;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  if (value < 1) return `${(value * 1000).toFixed(0)} ms`;
  if (value < 120) return `${value.toFixed(2)} s`;
  return `${(value / 60).toFixed(1)} min`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

export function clock(t) { return t ? new Date(t * 1000).toLocaleTimeString() : "—"; }

export function stateBadge(state) { return el("span", { class: `state ${state}` }, state); }

export function runTime(view) {
  return view.started_at && view.finished_at ? view.finished_at - view.started_at : null;
}

function updateRunningCount() {
  const mine = new Set(store.myKeys());
  let open = 0;
  for (const view of store.jobs.values()) if (mine.has(view.key) && rank(view) < 2) open += 1;
  const pill = document.getElementById("running-count");
  pill.hidden = open === 0;
  pill.textContent = open;
}

// -- notifications --------------------------------------------------------------------------

function notify(view) {
  const took = runTime(view);
  const box = document.getElementById("toasts");
  const close = el("button", { class: "close", title: "Dismiss", "aria-label": "Dismiss" }, "×");
  const detail = view.state === "succeeded"
    ? `${view.task} finished${took !== null ? ` in ${seconds(took)}` : ""} → ${view.result_dir}`
    : (view.error && view.error.message) || view.state;
  const toast = el("div", { class: `toast ${view.state}`, "data-key": view.key },
    el("div", { class: "title" }, `${mark(view.state)} Job ${view.state}: ${view.task || "?"}`),
    el("div", { class: "body" }, detail),
    el("div", { class: "body mono" }, view.key),
    close);
  close.addEventListener("click", (event) => { event.stopPropagation(); toast.remove(); });
  toast.addEventListener("click", () => { location.hash = `#/job/${encodeURIComponent(view.key)}`; toast.remove(); });
  box.append(toast);
  while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
}

function mark(state) { return { succeeded: "✓", failed: "✗", rejected: "⊘", cancelled: "⊗" }[state] || "•"; }

// -- live events ----------------------------------------------------------------------------

const notified = new Set();

// A job may complete before its submit request returns: the page learns it is ours only then.
export function notifyIfDone(key) {
  const view = store.jobs.get(key);
  if (view && view.completion && !notified.has(key)) {
    notified.add(key);
    notify(view);
  }
}

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/events");
  const handle = (event) => {
    const view = JSON.parse(event.data);
    store.put(view);
    if (event.type === "completion" && store.isMine(view.key) && !notified.has(view.key)) {
      notified.add(view.key);
      notify(view);
    }
  };
  source.addEventListener("state", handle);
  source.addEventListener("completion", handle);
  source.addEventListener("open", () => {
    live.textContent = "live"; live.className = "live on";
    refreshMine();
  });
  source.addEventListener("error", () => { live.textContent = "reconnecting…"; live.className = "live off"; });
}

export async function refreshMine() {
  const keys = store.myKeys();
  if (!keys.length) return;
  const { jobs } = await api(`/api/jobs?limit=500&keys=${encodeURIComponent(keys.join(","))}`);
  // Jobs older than what the server keeps in memory are looked up in Kafka one by one.
  const missing = keys.filter((k) => !jobs.some((j) => j.key === k) && !store.jobs.has(k));
  const older = await Promise.all(missing.slice(0, MAX_LOOKUPS).map((k) => api(`/api/jobs/${encodeURIComponent(k)}`).catch(() => null)));
  for (const view of [...jobs, ...older.filter(Boolean)]) {
    if (view.completion) notified.add(view.key);  // finished before this page was open
    store.put(view);
  }
}

// -- routing --------------------------------------------------------------------------------

let leave = null;

function route() {
  const [, name = "submit", arg] = location.hash.match(/^#\/([^/]*)\/?(.*)$/) || [];
  const view = document.getElementById("view");
  if (leave) { leave(); leave = null; }
  view.replaceChildren();
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === (name === "job" ? "jobs" : name));
  }
  const pages = { submit: renderSubmit, jobs: renderJobs, metrics: renderMetrics, dead: renderDeadLetters,
    job: (node) => renderJob(node, decodeURIComponent(arg)) };
  leave = (pages[name] || renderSubmit)(view) || null;
}

window.addEventListener("hashchange", route);
connect();
route();
