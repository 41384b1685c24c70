// modelmeta's pages, made live. Every page works without this file: it only fetches a named part
// of the same page (rendered by the server, escaped there) and swaps it in, as you type.
"use strict";
(() => {
  const PART = "X-Page-Part";
  /** An answer slower than this marks its part busy. */
  const BUSY_AFTER_MS = 150;
  const $ = (id) => document.getElementById(id);

  /** The HTML of one part of the page at `url`. */
  async function part(url, name, signal) {
    const response = await fetch(url, { headers: { [PART]: name }, signal, credentials: "same-origin" });
    return response.text();
  }

  /** URL query from a form: empty fields left out, repeated fields (checkboxes) joined by commas. */
  function query(form, skip = []) {
    const values = new Map();
    for (const [key, raw] of new FormData(form)) {
      const value = String(raw).trim();
      if (!value || skip.includes(key)) continue;
      values.set(key, values.has(key) ? `${values.get(key)},${value}` : value);
    }
    return new URLSearchParams([...values]).toString();
  }

  /** Swaps one part of the page in from `url`; a newer call aborts an older one still loading.
   * The part is marked busy (and dimmed) only when its answer is slow: marking it at every
   * keystroke would repaint the whole table twice for each, once dimmed while the answer is on its
   * way (taking the CPU from the server answering) and once swapped. */
  function swapper(target, name, after) {
    let pending = null;
    let busy = null;
    return async (url, { push = false } = {}) => {
      if (pending) pending.abort();
      const controller = (pending = new AbortController());
      clearTimeout(busy);
      busy = setTimeout(() => target.setAttribute("aria-busy", "true"), BUSY_AFTER_MS);
      try {
        const html = await part(url, name, controller.signal);
        if (controller !== pending) return;
        // The URL first, the swap second: changing the URL with the new part's styles not yet
        // computed makes Chromium compute them there and then (10-20 ms on a table of 50 rows),
        // before the frame that would have computed them anyway.
        history[push ? "pushState" : "replaceState"](null, "", url);
        target.innerHTML = html;
        if (after) after();
      } catch (error) {
        if (error.name !== "AbortError") throw error;
      } finally {
        if (controller === pending) {
          clearTimeout(busy);
          if (target.hasAttribute("aria-busy")) target.removeAttribute("aria-busy");
          pending = null;
        }
      }
    };
  }

  function announce(text) {
    const region = $("announce");
    if (region) region.textContent = text;
  }

  // -- the catalog ------------------------------------------------------------------------------
  function catalog() {
    const form = $("filters");
    const results = $("results");
    const compare = $("compare");
    if (!form || !results || !compare) return;
    const ticked = new Set();
    let focusAfter = null;

    const showTicks = () => {
      for (const box of results.querySelectorAll('input[name="ids"]')) box.checked = ticked.has(box.value);
      const n = ticked.size;
      $("picked").textContent =
        n === 0 ? "Tick 2 to 10 models to compare them." : `${n} ticked: ${[...ticked].join(", ")}`;
    };
    const load = swapper(results, "results", () => {
      showTicks();
      const count = $("count");
      if (count) announce(count.textContent.trim());
      if (focusAfter) {
        const again = results.querySelector(`[data-col="${focusAfter}"]`);
        (again || $("count")).focus({ preventScroll: false });
        focusAfter = null;
      }
    });
    const fromForm = () => {
      const qs = query(form);
      return qs ? `/?${qs}` : "/";
    };

    form.addEventListener("input", () => load(fromForm()));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      load(fromForm(), { push: true });
    });
    results.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-nav]");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      focusAfter = link.dataset.col;
      const sort = new URL(link.href).searchParams.get("sort") || "";
      form.elements.sort.value = sort;
      load(link.href, { push: true });
    });
    results.addEventListener("change", (event) => {
      const box = event.target;
      if (box.name !== "ids") return;
      if (box.checked && ticked.size >= 10) {
        box.checked = false;
        announce("At most 10 models can be compared.");
        return;
      }
      if (box.checked) ticked.add(box.value);
      else ticked.delete(box.value);
      showTicks();
    });
    compare.addEventListener("submit", (event) => {
      event.preventDefault();
      if (ticked.size < 2) {
        announce("Tick at least 2 models to compare.");
        $("picked").textContent = "Tick at least 2 models to compare.";
        return;
      }
      location.assign(`/compare?ids=${encodeURIComponent([...ticked].join(","))}`);
    });
    window.addEventListener("popstate", () => {
      const params = new URLSearchParams(location.search);
      for (const field of form.elements) {
        if (!field.name) continue;
        const values = (params.get(field.name) || "").split(",");
        if (field.type === "checkbox") field.checked = values.includes(field.value);
        else if (field.tagName !== "BUTTON") field.value = params.get(field.name) || "";
      }
      load(location.pathname + location.search);
    });
  }

  // -- compare ----------------------------------------------------------------------------------
  function compare() {
    const form = $("estimate-form");
    const table = $("comparison");
    if (form && table) {
      const load = swapper(table, "comparison", () => {
        const cheapest = table.querySelector(".estimate-row .badge");
        const cell = cheapest && cheapest.closest("td");
        if (cell) announce(`Cheapest: ${cell.dataset.estimate}, ${cell.querySelector("output").textContent}`);
      });
      form.addEventListener("input", () => load(`/compare?${query(form)}`));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        load(`/compare?${query(form)}`);
      });
    }
    const add = $("add-id");
    const list = $("suggestions");
    if (!add || !list) return;
    if (form) {
      // Adding a model keeps the token counts typed since the page loaded.
      $("add-form").addEventListener("submit", (event) => {
        event.preventDefault();
        const params = new URLSearchParams(query(form));
        params.set("ids", [params.get("ids"), add.value.trim()].filter(Boolean).join(","));
        location.assign(`/compare?${params}`);
      });
    }
    let pending = null;
    add.addEventListener("input", async () => {
      const text = add.value.trim();
      if (text.length < 2 || text.includes("/")) return;
      if (pending) pending.abort();
      const controller = (pending = new AbortController());
      try {
        const url = `/api/v1/models?limit=8&q=${encodeURIComponent(text)}`;
        const body = await (await fetch(url, { signal: controller.signal })).json();
        list.replaceChildren(
          ...(body.data || []).map((m) => {
            const option = document.createElement("option");
            option.value = m.id;
            option.label = `${m.name} (${m.provider_id})`;
            return option;
          }),
        );
      } catch (error) {
        if (error.name !== "AbortError") throw error;
      }
    });
  }

  // -- refreshes --------------------------------------------------------------------------------
  function refreshes() {
    const runs = $("runs");
    const form = $("start-form");
    if (!runs || !form) return;
    let token = null; // the admin token: in this closure only, never in the URL or any storage
    let timer = null;
    const load = swapper(runs, "runs", () => schedule());
    const isOpen = () => {
      const state = $("runs-state");
      return state && state.dataset.open === "true";
    };
    function schedule() {
      clearTimeout(timer);
      if (isOpen()) timer = setTimeout(() => load(location.pathname + location.search), 1000);
    }
    const result = $("start-result");
    const forget = $("forget");
    forget.addEventListener("click", () => {
      token = null;
      forget.hidden = true;
      result.textContent = "The token is forgotten.";
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = $("admin-token");
      token = input.value || token;
      input.value = "";
      if (!token) {
        result.textContent = "Type the admin token first.";
        input.focus();
        return;
      }
      const providers = $("scope").value.split(",").map((s) => s.trim()).filter(Boolean);
      const body = { force: $("force").checked, ...(providers.length ? { providers } : {}) };
      result.textContent = "Starting…";
      const response = await fetch("/api/v1/refresh", {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => ({}));
      if (response.status === 401 || response.status === 403) {
        token = null;
        forget.hidden = true;
        result.textContent = `The token was refused (${response.status}).`;
        input.focus();
        return;
      }
      if (!response.ok) {
        result.textContent = `The refresh could not start: ${answer.detail || response.status}`;
        return;
      }
      forget.hidden = false;
      await load(`/refreshes?run=${answer.id}`);
      result.textContent = answer.coalesced
        ? `Run #${answer.id} was already open; following it.`
        : `Run #${answer.id} started; following it.`;
    });
    form.hidden = false;
    schedule();
  }

  catalog();
  compare();
  refreshes();
})();
