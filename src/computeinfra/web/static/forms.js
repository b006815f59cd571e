// Submit view: one form per registered task, generated from its payload JSON Schema.
import { api, el, notifyIfDone, store } from "/static/app.js";

let chosen = null;  // the task whose form is shown, kept across visits

export function renderSubmit(root) {
  const card = el("section", { class: "card" }, el("p", { class: "muted" }, "Loading tasks…"));
  root.append(el("h1", {}, "Submit a job"), card);
  api("/api/tasks").then((tasks) => showTasks(card, tasks)).catch((error) => {
    card.replaceChildren(el("div", { class: "message error" }, `Cannot list tasks: ${error.message}`));
  });
}

function showTasks(card, tasks) {
  const tabs = el("div", { class: "tabs", role: "tablist" });
  const forms = tasks.map((task) => taskForm(task));
  const show = (name) => {
    chosen = name;
    for (const button of tabs.children) button.classList.toggle("active", button.dataset.task === name);
    for (const form of forms) form.hidden = form.dataset.task !== name;
  };
  for (const task of tasks) {
    tabs.append(el("button", { type: "button", role: "tab", "data-task": task.name,
      onclick: () => show(task.name) }, task.name));
  }
  card.replaceChildren(tabs, ...forms);
  show(tasks.some((t) => t.name === chosen) ? chosen : tasks[0].name);
}

// -- schema to fields -----------------------------------------------------------------------

function plain(schema) {
  // Optional fields are anyOf [X, null]: the form shows X and leaves the field out when empty.
  if (schema.anyOf) {
    const real = schema.anyOf.filter((s) => s.type !== "null");
    if (real.length === 1) return { ...schema, ...real[0], optional: true };
  }
  return schema;
}

function kindOf(schema) {
  if (schema.enum) return "enum";
  if (schema.type === "array" && schema.items && schema.items.type === "string") return "lines";
  if (["integer", "number", "string", "boolean"].includes(schema.type)) return schema.type;
  return "json";
}

function fieldRow(name, raw, required) {
  const schema = plain(raw);
  const kind = kindOf(schema);
  const id = `f-${Math.random().toString(36).slice(2)}`;
  const attrs = { id, name, "data-kind": kind, "data-optional": !required || schema.optional };
  let input;
  if (kind === "enum") {
    input = el("select", attrs, schema.enum.map((v) => el("option", { value: v, selected: v === schema.default }, v)));
  } else if (kind === "boolean") {
    input = el("input", { ...attrs, type: "checkbox", checked: schema.default === true });
  } else if (kind === "integer" || kind === "number") {
    input = el("input", { ...attrs, type: "number", step: kind === "integer" ? "1" : "any",
      min: schema.minimum ?? schema.exclusiveMinimum, max: schema.maximum ?? schema.exclusiveMaximum,
      value: schema.default, placeholder: required ? "required" : "optional" });
  } else if (kind === "lines") {
    input = el("textarea", { ...attrs, placeholder: "one per line" });
  } else if (kind === "json") {
    input = el("textarea", { ...attrs, placeholder: "JSON" }, schema.default !== undefined ? JSON.stringify(schema.default) : "");
  } else {
    input = el("input", { ...attrs, type: "text", value: schema.default, placeholder: required ? "required" : "optional" });
  }
  const hint = [schema.description, rangeText(schema)].filter(Boolean).join(" · ");
  const control = el("div", {}, input);
  if (kind === "lines") control.append(uploader(input));
  return [el("label", { for: id }, name, required ? " *" : "", el("small", {}, hint)), control];
}

function rangeText(schema) {
  if (schema.minimum !== undefined && schema.maximum !== undefined) return `${schema.minimum}–${schema.maximum}`;
  return "";
}

function uploader(target) {
  const previews = el("div", { class: "uploads" });
  const status = el("span", { class: "muted" });
  const picker = el("input", { type: "file", multiple: true, "data-upload-for": target.name });
  picker.addEventListener("change", async () => {
    if (!picker.files.length) return;
    const body = new FormData();
    for (const file of picker.files) body.append("files", file);
    status.textContent = "uploading…";
    try {
      const { files } = await api("/api/uploads", { method: "POST", body });
      const local = [...picker.files];
      files.forEach((stored, i) => {
        target.value = (target.value.trim() ? target.value.trim() + "\n" : "") + stored.path;
        const figure = el("figure", { class: "upload", title: stored.path }, stored.name);
        if (local[i] && local[i].type.startsWith("image/")) figure.prepend(el("img", { src: URL.createObjectURL(local[i]), alt: stored.name }));
        previews.append(figure);
      });
      status.textContent = `${files.length} file(s) uploaded`;
    } catch (error) {
      status.textContent = `upload failed: ${error.message}`;
    }
    picker.value = "";
  });
  return el("div", {}, el("div", { class: "uploads" }, el("span", {}, "or upload: "), picker, status), previews);
}

function taskForm(task) {
  const schema = task.payload_schema;
  const required = new Set(schema.required || []);
  const form = el("form", { class: "task", "data-task": task.name, novalidate: true });
  form.append(el("div", { class: "muted", style: "grid-column: 1 / -1" }, task.description || ""));
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    form.append(...fieldRow(name, prop, required.has(name)));
  }
  const resultId = `r-${task.name}`;
  form.append(
    el("label", { for: resultId }, "result directory *", el("small", {}, "folder under the results root")),
    el("input", { id: resultId, name: "result_dir", type: "text", value: `web/${task.name}`, "data-role": "result_dir" }),
  );
  const button = el("button", { class: "primary", type: "submit" }, `Submit ${task.name}`);
  const message = el("div", { class: "message", hidden: true });
  form.append(el("div", { class: "actions" }, button), message);
  form.addEventListener("submit", (event) => { event.preventDefault(); send(form, task, button, message); });
  return form;
}

function collect(form) {
  const payload = {};
  for (const input of form.querySelectorAll("[data-kind]")) {
    const kind = input.dataset.kind;
    const optional = input.hasAttribute("data-optional");
    const raw = input.value.trim();
    if (kind === "boolean") { payload[input.name] = input.checked; continue; }
    if (raw === "" && optional) continue;
    if (kind === "integer" || kind === "number") payload[input.name] = raw === "" ? null : Number(raw);
    else if (kind === "lines") payload[input.name] = raw.split("\n").map((s) => s.trim()).filter(Boolean);
    else if (kind === "json") {
      try { payload[input.name] = JSON.parse(raw); } catch { payload[input.name] = raw; }
    } else payload[input.name] = raw;
  }
  return payload;
}

async function send(form, task, button, message) {
  for (const bad of form.querySelectorAll(".invalid")) bad.classList.remove("invalid");
  const body = { task: task.name, payload: collect(form), result_dir: form.querySelector("[data-role=result_dir]").value.trim() };
  button.disabled = true;
  try {
    const { key } = await api("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    store.addMine(key);
    store.put({ key, state: "pending", task: task.name, result_dir: body.result_dir, attempt: 0, submitted_at: Date.now() / 1000 });
    notifyIfDone(key);
    message.className = "message ok";
    message.replaceChildren("Submitted ", el("a", { href: `#/job/${encodeURIComponent(key)}`, class: "mono" }, key),
      ". You will be notified when it completes.");
  } catch (error) {
    message.className = "message error";
    message.textContent = error.message;
    const name = (error.field || "").replace(/^payload\./, "").split(".")[0];
    const input = name && form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (input) input.classList.add("invalid");
  } finally {
    message.hidden = false;
    button.disabled = false;
  }
}
