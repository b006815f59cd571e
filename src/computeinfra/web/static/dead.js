// Dead letters: jobs that failed for good (deadJobs), each with a Replay button.
import { api, clock, el } from "/static/app.js";

export function renderDeadLetters(root) {
  const body = el("tbody");
  const said = el("div", { class: "message", hidden: true, id: "replay-message" });
  root.append(el("div", { class: "toolbar" }, el("h1", {}, "Dead letters")), said,
    el("section", { class: "card" }, el("table", { id: "dead-letters" },
      el("thead", {}, el("tr", {}, ["job", "task", "reason", "attempts", "dead since", "replayed as", ""].map((h) => el("th", {}, h)))),
      body)));
  const load = async () => {
    try {
      const { dead_letters: letters } = await api("/api/dead-letters");
      body.replaceChildren(...letters.reverse().map((letter) => row(letter, said, load)));
      if (!letters.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No dead letters.")));
    } catch (error) {
      said.className = "message error"; said.textContent = error.message; said.hidden = false;
    }
  };
  load();
}

function row(letter, said, reload) {
  const replays = letter.replayed_as.map((key) => el("a", { class: "mono", href: `#/job/${encodeURIComponent(key)}` }, key));
  let button = null;
  if (letter.key && letter.replayable) {
    button = el("button", { class: "link replay" }, "replay");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const answer = await api(`/api/dead-letters/${encodeURIComponent(letter.key)}/replay`, { method: "POST" });
        said.className = "message ok";
        said.replaceChildren("replayed as ", el("a", { class: "mono", href: `#/job/${encodeURIComponent(answer.key)}` }, answer.key));
        await reload();
      } catch (error) {
        said.className = "message error"; said.textContent = error.message;
      } finally {
        said.hidden = false; button.disabled = false;
      }
    });
  }
  return el("tr", { class: "dead", "data-key": letter.key || "" },
    el("td", { class: "mono" }, letter.key || "(no key)"),
    el("td", {}, letter.task || "—"),
    el("td", {}, letter.reason),
    el("td", {}, letter.attempts ?? "—"),
    el("td", {}, clock(letter.at)),
    el("td", {}, replays.length ? replays.flatMap((a, i) => (i ? [", ", a] : [a])) : "—"),
    el("td", {}, button));
}
