// syncsvc console: the little that changes while a page is open. Everything works without it.
"use strict";

// A section with data-live="<url>" is refreshed from that url every two seconds (data-every: another period, in ms);
// the new content (the element with data-version) is swapped in when its version changed, and its rows flash.
function live(section) {
  const url = section.dataset.live;
  let busy = false;
  const tick = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html").querySelector("[data-version]");
      const shown = section.querySelector("[data-version]");
      if (fresh && shown && fresh.dataset.version !== shown.dataset.version) {
        if (shown.dataset.version !== "loading") fresh.querySelectorAll("tbody tr").forEach((row) => row.classList.add("fresh"));
        shown.replaceWith(document.adoptNode(fresh));
      }
    } catch (error) {
      // the server is away for a moment: try again at the next tick
    } finally {
      busy = false;
    }
  };
  if (section.querySelector('[data-version="loading"]')) tick();
  setInterval(tick, Number(section.dataset.every) || 2000);
}

// A figure with data-lanes="<url>" charts the relay's lag: every two seconds the url's lanes are summed (changes
// waiting) and maxed (oldest waiting), and the last five minutes drawn as two lines, each scaled to its own peak.
function lagChart(figure) {
  const svg = figure.querySelector("svg");
  const now = figure.querySelector("#lag-now");
  const points = [];
  const keep = 150;
  const line = (values, color) => {
    const peak = Math.max(1, ...values);
    const path = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    const step = 600 / (keep - 1);
    const start = keep - values.length;
    path.setAttribute("points", values.map((v, i) => `${(start + i) * step},${155 - (v / peak) * 145}`).join(" "));
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", color);
    path.setAttribute("stroke-width", "2");
    path.setAttribute("vector-effect", "non-scaling-stroke");
    return path;
  };
  const tick = async () => {
    try {
      const response = await fetch(figure.dataset.lanes, { credentials: "same-origin" });
      if (!response.ok) return;
      const { lanes } = await response.json();
      const backlog = lanes.reduce((sum, lane) => sum + lane.backlog, 0);
      const behind = lanes.reduce((most, lane) => Math.max(most, lane.behind_seconds), 0);
      points.push({ backlog, behind });
      if (points.length > keep) points.shift();
      svg.replaceChildren(line(points.map((p) => p.backlog), "#2357d9"), line(points.map((p) => p.behind), "#c4302b"));
      now.textContent = `now: ${backlog} waiting, oldest ${behind.toFixed(1)} s`;
    } catch (error) {
      // try again at the next tick
    }
  };
  tick();
  setInterval(() => document.hidden || tick(), 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(live);
  document.querySelectorAll("[data-lanes]").forEach(lagChart);
});
