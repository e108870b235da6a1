// The queue page's live parts, in plain script (no build, no framework): polls the
// JSON the CLI prints (If-None-Match: a 304 while nothing changed), follows the log,
// asks before a cancel or a resubmit. Everything from a job goes in as text (textContent), never HTML.
"use strict";
(() => {
  const POLL_MS = 2000;
  const body = document.body;
  const base = body.dataset.base;
  const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED", "TIMEOUT", "OOM", "LOST"]);

  // JupyterHub accepts a login cookie on a script's request only with its XSRF token (so does kbatch ui on a POST).
  const XSRF = { "X-XSRFToken": body.dataset.xsrf };

  function say(text) { document.getElementById("live").textContent = text; }

  // What kbatch_dask/render.py and web/render.py show, from the same JSON.
  function duration(seconds) {
    if (seconds === null) return "";
    let s = Math.max(0, Math.floor(seconds));
    const d = Math.floor(s / 86400); s %= 86400;
    const h = Math.floor(s / 3600); s %= 3600;
    const m = Math.floor(s / 60); s %= 60;
    const two = (n) => String(n).padStart(2, "0");
    if (d) return `${d}-${two(h)}:${two(m)}:${two(s)}`;
    if (h) return `${h}:${two(m)}:${two(s)}`;
    return `${m}:${two(s)}`;
  }
  function elapsed(job) {
    if (!job.started) return "";
    const end = job.finished ? Date.parse(job.finished) : TERMINAL.has(job.state) ? null : Date.now();
    return end === null ? "" : duration((end - Date.parse(job.started)) / 1000);
  }
  function workers(job) {
    const d = job.dask;
    if (!d) return "";
    let requested = d.workers.replace(":", "-");
    if (d.worker_limit !== null) {
      const granted = d.workers.split(":").map((n) => Math.min(Number(n), d.worker_limit)).join("-");
      requested = `${granted} (capped from ${requested})`;
    }
    let live;
    if (TERMINAL.has(job.state) || (d.cluster_status && !["PENDING", "RUNNING"].includes(d.cluster_status))) {
      live = d.cluster_status ? "0" : "-";
    } else {
      live = d.live_workers === null ? "?" : String(d.live_workers);
    }
    return `${live}/${requested}`;
  }
  function dashboard(job) {
    const url = job.dask && !TERMINAL.has(job.state) ? job.dask.dashboard : null;
    return url && /^(https?:\/\/|\/)/i.test(url) ? url : null;
  }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const child of children) node.append(child);
    return node;
  }
  function stateBadge(job) {
    return el("span", { class: `state state-${job.state.toLowerCase()}` }, job.state);
  }
  function jobLink(job) {
    const admin = document.querySelector("th.col-user") !== null;
    const other = admin && job.user !== body.dataset.user ? `?user=${encodeURIComponent(job.user)}` : "";
    return `${base}jobs/${encodeURIComponent(job.id)}${other}`;
  }

  // A GET of JSON that remembers its ETag: null when unchanged (304).
  function poller(url) {
    let etag = null;
    return async () => {
      const headers = { Accept: "application/json", ...XSRF };
      if (etag) headers["If-None-Match"] = etag;
      const answer = await fetch(url, { headers, credentials: "same-origin", cache: "no-store" });
      if (answer.status === 304) return null;
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      etag = answer.headers.get("ETag");
      return answer.json();
    };
  }
  function every(poll, use) {
    const tick = async () => {
      try {
        const data = await poll();
        if (data !== null) use(data);
      } catch (err) {
        say(`Live updates paused: ${err.message}`);
      }
      setTimeout(tick, POLL_MS);
    };
    setTimeout(tick, POLL_MS);
  }

  // -- the queue ---------------------------------------------------------------
  const table = document.getElementById("jobs");
  if (table) {
    const stateFilter = document.getElementById("filter-state");
    const nameFilter = document.getElementById("filter-name");
    const admin = document.querySelector("th.col-user") !== null;
    let jobs = null;
    const draw = () => {
      if (jobs === null) return;
      const state = stateFilter.value;
      const name = nameFilter.value.toLowerCase();
      const shown = jobs.filter((j) => (!state || j.state === state) && j.name.toLowerCase().includes(name));
      const rows = shown.map((job) => {
        const dash = dashboard(job);
        const stateCell = el("td", {}, stateBadge(job));
        if (job.reason) stateCell.append(" ", el("span", { class: "reason" }, job.reason));
        return el("tr", { "data-id": job.id, "data-user": job.user },
          el("td", {}, el("a", { href: jobLink(job) }, job.id)),
          el("td", { class: "name" }, job.name),
          ...(admin ? [el("td", { class: "col-user" }, job.user)] : []),
          stateCell,
          el("td", { class: "elapsed" }, elapsed(job)),
          el("td", { class: "workers" }, workers(job)),
          el("td", { class: "dashboard" }, ...(dash ? [el("a", { href: dash, target: "_blank", rel: "noopener noreferrer" },
            "dashboard", el("span", { class: "sr" }, ` of job ${job.id}`))] : [])),
          el("td", { class: "output" }, el("code", {}, job.output || "")));
      });
      table.tBodies[0].replaceChildren(...rows);
      table.caption.textContent = `${shown.length} of ${jobs.length} jobs`;
      const empty = document.getElementById("empty");
      if (empty) empty.hidden = shown.length > 0;
    };
    stateFilter.addEventListener("change", draw);
    nameFilter.addEventListener("input", draw);
    const query = body.dataset.query;
    every(poller(`${base}?format=json${query ? `&${query}` : ""}`), (data) => { jobs = data.jobs; draw(); });
  }

  // -- one job -----------------------------------------------------------------
  const article = document.getElementById("job");
  if (article) {
    const id = article.dataset.id;
    const other = article.dataset.user !== body.dataset.user ? `?user=${encodeURIComponent(article.dataset.user)}` : "";
    const url = `${base}jobs/${encodeURIComponent(id)}`;
    const cancel = document.getElementById("cancel");
    let last = null;
    const show = (job) => {
      const badge = document.getElementById("job-state");
      if (last !== job.state) {
        badge.replaceWith(Object.assign(stateBadge(job), { id: "job-state" }));
        if (last !== null) say(`Job ${id} is ${job.state}`);
        last = job.state;
      }
      document.getElementById("job-reason").textContent = job.reason || "";
      document.getElementById("job-elapsed").textContent = elapsed(job) || "–";
      const w = document.getElementById("job-workers");
      if (w) w.textContent = workers(job);
      const dash = dashboard(job);
      const slot = document.getElementById("job-dashboard");
      slot.replaceChildren(...(dash ? ["· ", el("a", { href: dash, target: "_blank", rel: "noopener noreferrer" }, "Dask dashboard")] : []));
      document.getElementById("job-json").textContent = JSON.stringify(job, null, 2);
      if (cancel && TERMINAL.has(job.state)) cancel.hidden = true;
    };
    every(poller(`${url}${other || "?"}${other ? "&" : ""}format=json`), show);

    if (cancel) {
      cancel.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (!window.confirm(`Cancel job ${id}?`)) return;
        const form = new FormData(cancel);
        form.set("confirmed", "1");
        const answer = await fetch(cancel.action, {
          method: "POST", body: form, credentials: "same-origin", headers: { Accept: "application/json", ...XSRF },
        });
        if (answer.ok) show(await answer.json()); // the job as the cancel left it (it may be gone from the list next)
        else say(`Cancel failed: HTTP ${answer.status}`);
      });
    }

    // Resubmit: a new job from this one's snapshot; then that job's page.
    const resubmit = document.getElementById("resubmit");
    if (resubmit) {
      resubmit.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (!window.confirm(`Submit job ${id} again, as a new job?`)) return;
        const form = new FormData(resubmit);
        form.set("confirmed", "1");
        // ?format=json: a refusal comes back as {"error": its one line}, said in the live region.
        const answer = await fetch(`${resubmit.action}?format=json`, {
          method: "POST", body: form, credentials: "same-origin", headers: { Accept: "application/json", ...XSRF },
        });
        const said = await answer.json().catch(() => ({}));
        if (answer.ok) window.location.assign(`${base}jobs/${encodeURIComponent(said.id)}`);
        else say(`Resubmit failed: ${said.error || `HTTP ${answer.status}`}`);
      });
    }

    // The log: the whole of an ended job's, a running job's followed as it grows.
    const log = document.getElementById("log");
    (async () => {
      const follow = log.dataset.follow === "1";
      const answer = await fetch(`${url}/log${other || "?"}${other ? "&" : ""}follow=${follow ? 1 : 0}`,
        { credentials: "same-origin", headers: XSRF });
      log.textContent = "";
      if (!answer.ok) { log.textContent = `(no log: HTTP ${answer.status})`; return; }
      const reader = answer.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.append(decoder.decode(value, { stream: true }));
        if (atEnd) log.scrollTop = log.scrollHeight;
      }
      log.dataset.done = "1";
    })();
  }
})();
