// My jobs (live list) and the job view (completion, error, outputs with previews).
import { api, bytes, clock, el, refreshMine, runTime, seconds, stateBadge, store } from "/static/app.js";

let everyone = false;  // show every recent job, not only this browser's

export function renderJobs(root) {
  const body = el("tbody");
  const toggle = el("input", { type: "checkbox", checked: everyone, id: "everyone" });
  const said = el("div", { class: "message", hidden: true, id: "cancel-message" });
  const cancelAll = el("button", { class: "link", id: "cancel-mine", hidden: true },
    "cancel my unfinished jobs");
  cancelAll.addEventListener("click", () => {
    const keys = store.myKeys().filter((k) => store.jobs.has(k) && unfinished(store.jobs.get(k)));
    if (keys.length) cancel("/api/jobs/cancel", { keys }, said, cancelAll);
  });
  root.append(
    el("div", { class: "toolbar" }, el("h1", {}, "My jobs"),
      el("span", {}, cancelAll, " ",
        el("label", { for: "everyone", class: "muted" }, toggle, " show everyone's recent jobs"))),
    said,
    el("section", { class: "card" }, el("table", { id: "jobs" },
      el("thead", {}, el("tr", {}, ["job", "task", "state", "attempts", "submitted", "queue wait", "run time", "result", ""].map((h) => el("th", {}, h)))),
      body)),
  );
  const draw = () => {
    const mine = new Set(store.myKeys());
    const views = [...store.jobs.values()].filter((v) => everyone || mine.has(v.key))
      .sort((a, b) => (b.submitted_at || 0) - (a.submitted_at || 0)).slice(0, 300);
    body.replaceChildren(...views.map((view) => row(view, said)));
    cancelAll.hidden = ![...mine].some((k) => store.jobs.has(k) && unfinished(store.jobs.get(k)));
    if (!views.length) body.append(el("tr", {}, el("td", { colspan: 9, class: "empty" }, "No jobs yet: submit one from the Submit page.")));
  };
  toggle.addEventListener("change", async () => {
    everyone = toggle.checked;
    if (everyone) for (const view of (await api("/api/jobs?limit=300")).jobs) store.put(view);
    draw();
  });
  let queued = false;
  const listener = () => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; draw(); }); } };
  store.listeners.add(listener);
  draw();
  refreshMine().then(draw).catch(() => {});
  return () => store.listeners.delete(listener);
}

function unfinished(view) { return view.state === "pending" || view.state === "running"; }

// Ask for a cancel; the job's completion (cancelled, or what it was) arrives as an event.
async function cancel(path, body, said, button) {
  button.disabled = true;
  try {
    const answer = await api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const requested = answer.requested ? answer.requested.length : 1;
    const done = answer.completed ? answer.completed.length : 0;
    said.className = "message ok";
    said.textContent = answer.message || `cancel requested for ${requested} job(s)${done ? `; ${done} had completed already` : ""}`;
  } catch (error) {
    said.className = "message error";
    said.textContent = error.status === 409 ? `${error.message}: it keeps its completion` : error.message;
  } finally {
    said.hidden = false;
    button.disabled = false;
  }
}

function cancelButton(view, said) {
  if (!unfinished(view)) return null;
  const button = el("button", { class: "link cancel", title: "Cancel this job" }, "cancel");
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    cancel(`/api/jobs/${encodeURIComponent(view.key)}/cancel`, {}, said, button);
  });
  return button;
}

function row(view, said) {
  const wait = view.started_at && view.submitted_at ? view.started_at - view.submitted_at : null;
  const attempts = view.max_attempts ? `${view.attempt}/${view.max_attempts}` : `${view.attempt}`;
  return el("tr", { class: "job", "data-key": view.key, "data-state": view.state,
    onclick: () => { location.hash = `#/job/${encodeURIComponent(view.key)}`; } },
    el("td", { class: "mono" }, view.key.length > 18 ? `${view.key.slice(0, 16)}…` : view.key),
    el("td", {}, view.task || "—"),
    el("td", {}, stateBadge(view.state), " ", progressBar(view)),
    el("td", {}, attempts),
    el("td", {}, clock(view.submitted_at)),
    el("td", {}, seconds(wait)),
    el("td", {}, seconds(runTime(view))),
    el("td", { class: "mono" }, view.result_dir || "—"),
    el("td", {}, cancelButton(view, said)));
}

// -- one job --------------------------------------------------------------------------------

export function renderJob(root, key) {
  const card = el("section", { class: "card" }, el("p", { class: "muted" }, "Loading…"));
  const said = el("div", { class: "message", hidden: true, id: "cancel-message" });
  const actions = el("span", {});
  root.append(el("div", { class: "toolbar" }, el("h1", {}, "Job ", el("span", { class: "mono" }, key)),
    el("span", {}, actions, " ", el("a", { href: "#/jobs" }, "← my jobs"))), said, card);
  const draw = (view) => {
    card.replaceChildren(...jobDetails(view));
    actions.replaceChildren(...[cancelButton(view, said)].filter(Boolean));
  };
  const listener = (view) => { if (view.key === key) draw(view); };
  store.listeners.add(listener);
  api(`/api/jobs/${encodeURIComponent(key)}`).then((view) => { store.put(view); draw(store.jobs.get(key) || view); })
    .catch((error) => card.replaceChildren(el("div", { class: "message error" }, error.message)));
  return () => store.listeners.delete(listener);
}

function jobDetails(view) {
  const c = view.completion;
  const parts = [];
  if (view.error) parts.push(errorBox(view));
  parts.push(el("dl", { class: "facts" },
    fact("state", stateBadge(view.state)),
    view.state === "running" && view.progress ? fact("progress", [progressBar(view), " ", view.progress.message || ""]) : null,
    fact("task", view.task || "—"),
    fact("attempts", view.max_attempts ? `${view.attempt} of at most ${view.max_attempts}` : `${view.attempt}`),
    fact("submitted", clock(view.submitted_at)),
    fact("started", clock(view.started_at)),
    fact("finished", clock(view.finished_at)),
    fact("queue wait", seconds(view.started_at && view.submitted_at ? view.started_at - view.submitted_at : null)),
    fact("run time", seconds(runTime(view))),
    fact("block", view.block ?? "—"),
    fact("result directory", view.result_dir || "—")));
  if (c && c.outputs.length) parts.push(el("h2", { style: "margin-top:20px" }, `Output files (${c.outputs.length})`), outputs(c.outputs));
  if (c) parts.push(el("h2", { style: "margin-top:20px" }, "Completion event"), el("pre", { class: "event" }, JSON.stringify(c, null, 2)));
  else parts.push(el("p", { class: "muted", style: "margin-top:16px" }, "Waiting for the completion; this page updates by itself."));
  return parts;
}

// How far a running job has got, as its task last said (ctx.progress); nothing otherwise.
function progressBar(view) {
  const p = view.state === "running" ? view.progress : null;
  if (!p) return null;
  const share = p.total ? Math.min(p.done / p.total, 1) : null;
  const said = p.total ? `${p.done} of ${p.total}` : `${p.done}`;
  const title = p.message ? `${said}: ${p.message}` : said;
  return el("span", { class: "progress", title, "data-done": p.done, role: "progressbar",
    "aria-valuenow": share !== null ? Math.round(share * 100) : null },
  share !== null ? el("span", { class: "bar", style: `width:${(share * 100).toFixed(1)}%` }) : el("span", { class: "bar unknown" }),
  el("span", { class: "label" }, share !== null ? `${Math.round(share * 100)} %` : said));
}

function fact(name, value) { return [el("dt", {}, name), el("dd", {}, value)]; }

function errorBox(view) {
  const e = view.error;
  const what = { rejected: "The request was rejected and never ran", cancelled: "The job was cancelled" }[view.state] || `The job ${view.state}`;
  return el("div", { class: `error-box ${view.state}` },
    el("strong", {}, `${what}: `), e.message,
    e.field ? el("div", { class: "muted" }, `Field at fault: ${e.field}`) : null,
    el("div", { class: "muted" }, `Error type: ${e.type}`),
    e.traceback ? el("details", {}, el("summary", {}, "traceback"), el("pre", { class: "event" }, e.traceback)) : null);
}

const IMAGE = /\.(jpe?g|png|webp|gif)$/i;

function outputs(list) {
  return el("div", { class: "outputs" }, list.map((out) => {
    const url = `/api/files/${out.path.split("/").map(encodeURIComponent).join("/")}`;
    const box = el("div", { class: "output", "data-path": out.path });
    if (IMAGE.test(out.path)) box.append(el("img", { src: url, alt: out.path, class: "preview" }));
    box.append(el("div", { class: "name" }, out.path.split("/").pop()));
    if (out.original_bytes !== undefined) {
      box.append(el("div", {}, `original ${bytes(out.original_bytes)} → compressed ${bytes(out.compressed_bytes)}`),
        el("div", {}, "ratio ", el("span", { class: "ratio" }, out.ratio !== null ? `${(out.ratio * 100).toFixed(1)} %` : "—")));
    } else box.append(el("div", { class: "muted" }, bytes(out.bytes)));
    box.append(el("a", { href: `${url}?download=true`, download: "" }, "download"));
    return box;
  }));
}
