/* Plots of the Trapline web interface (Plotly, served from the installed package). */
"use strict";
const trapline = (() => {
  // The run's path prefix when one server serves several runs (/runs/NAME), else "".
  const ROOT = window.TRAPLINE_ROOT || "";
  const BAND_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                        "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const KIND_SYMBOL = {blind: "circle", forced: "triangle-up-open", monitor: "diamond-open",
                       precovery: "triangle-down-open", bin: "square"};
  const hasPlotly = () => typeof Plotly !== "undefined";
  const colour = (band) => BAND_COLOURS[band % BAND_COLOURS.length];
  const noPlot = (id) => {
    const el = document.getElementById(id);
    if (el) { el.innerHTML = "<p class='muted'>Plots need the plotly package on the server.</p>"; }
  };
  const groupBy = (rows, key) => rows.reduce((acc, r) => {
    (acc[key(r)] = acc[key(r)] || []).push(r); return acc; }, {});
  const layout = (extra) => Object.assign({margin: {l: 60, r: 20, t: 10, b: 50},
                                           legend: {orientation: "h"}}, extra);
  const config = {responsive: true, displaylogo: false};

  function overviewPlots(images, idImages, idRms) {
    if (!hasPlotly()) { noPlot(idImages); noPlot(idRms); return; }
    const traces = [], rms = [];
    const byBand = groupBy(images, (r) => r.band);
    for (const [band, rows] of Object.entries(byBand)) {
      for (const ok of [true, false]) {
        const sel = rows.filter((r) => r.accepted === ok && r.time);
        if (!sel.length) continue;
        traces.push({x: sel.map((r) => r.time), y: sel.map(() => Number(band)), mode: "markers",
                     type: "scattergl", name: `band ${band} ${ok ? "accepted" : "rejected"}`,
                     marker: {color: ok ? colour(band) : "#c0392b", symbol: ok ? "circle" : "x",
                              size: ok ? 7 : 10},
                     text: sel.map((r) => `image ${r.image_id}` +
                                          (r.reject_reason ? `: ${r.reject_reason}` : "")),
                     customdata: sel.map((r) => r.image_id)});
      }
      const good = rows.filter((r) => r.rms !== null && r.time);
      rms.push({x: good.map((r) => r.time), y: good.map((r) => r.rms), mode: "lines+markers",
                type: "scattergl", name: `band ${band}`, marker: {color: colour(band), size: 5},
                customdata: good.map((r) => r.image_id)});
    }
    Plotly.newPlot(idImages, traces, layout({yaxis: {title: {text: "band"}, dtick: 1},
                                             xaxis: {title: {text: "time (UTC)"}}}), config);
    Plotly.newPlot(idRms, rms, layout({yaxis: {title: {text: "rms (Jy/beam)"}, type: "log"},
                                       xaxis: {title: {text: "time (UTC)"}}}), config);
    for (const id of [idImages, idRms]) {
      document.getElementById(id).on("plotly_click", (ev) => {
        const p = ev.points[0]; if (p && p.customdata) window.location = `${ROOT}/images/${p.customdata}`;
      });
    }
  }

  function lightcurvePlot(points, id, fluxSelect) {
    if (!hasPlotly()) { noPlot(id); return; }
    const draw = () => {
      const f = fluxSelect ? fluxSelect.value : "int";
      const traces = [];
      const groups = groupBy(points, (p) => `${p.band}|${p.kind}`);
      for (const [key, rows] of Object.entries(groups)) {
        const [band, kind] = key.split("|");
        traces.push({
          x: rows.map((p) => p.time), y: rows.map((p) => p[`${f}_flux`]),
          error_y: {type: "data", array: rows.map((p) => p[`${f}_flux_err`]), visible: true,
                    thickness: 1},
          mode: "markers", type: "scatter", name: `band ${band} ${kind}`,
          marker: {color: colour(Number(band)), symbol: KIND_SYMBOL[kind] || "circle", size: 8},
          text: rows.map((p) => p.resolution_s > 0 ?
                         `bin ${p.resolution_s} s, ${p.n} points` : kind),
        });
      }
      Plotly.react(id, traces, layout({
        xaxis: {title: {text: "time (UTC)"}},
        yaxis: {title: {text: f === "int" ? "integrated flux (Jy)" : "peak flux (Jy/beam)"}}}), config);
    };
    draw();
    if (fluxSelect) fluxSelect.addEventListener("change", draw);
  }

  function etavPage(ids) {
    const el = (k) => document.getElementById(ids[k]);
    const highlight = Number(new URLSearchParams(window.location.search).get("highlight"));
    let data = null;
    const params = () => {
      const q = new URLSearchParams();
      if (el("band").value !== "") q.set("band", el("band").value);
      // an empty field: the server's default, the run's own threshold
      if (el("eta").value !== "") q.set("eta", el("eta").value);
      if (el("v").value !== "") q.set("v", el("v").value);
      if (el("nSigma").value !== "") q.set("n_sigma", el("nSigma").value);
      if (el("use").value !== "run") q.set("use", el("use").value);
      return q;
    };
    // a histogram of log10(values) drawn as steps, and the fitted Gaussian over it
    const logHistogram = (values, fit) => {
      const logs = values.filter((x) => x > 0).map(Math.log10);
      if (!logs.length) return null;
      const lo = Math.min(...logs), hi = Math.max(...logs);
      const nb = Math.max(5, Math.min(60, Math.round(Math.sqrt(logs.length))));
      const width = (hi - lo) / nb || 1;
      const counts = new Array(nb).fill(0);
      for (const x of logs) counts[Math.min(nb - 1, Math.floor((x - lo) / width))] += 1;
      const centres = counts.map((_, i) => 10 ** (lo + (i + 0.5) * width));
      let curve = null;
      if (fit) {
        const {mu, sigma} = fit.gauss, grid = [];
        for (let i = 0; i <= 120; i++) grid.push(lo - width + (hi - lo + 2 * width) * i / 120);
        const scale = fit.n * width / (sigma * Math.sqrt(2 * Math.PI));
        curve = {at: grid.map((x) => 10 ** x),
                 y: grid.map((x) => scale * Math.exp(-0.5 * ((x - mu) / sigma) ** 2))};
      }
      return {centres, counts, curve};
    };
    const redraw = () => {
      if (!data) return;
      const eta = el("eta").value === "" ? data.eta_threshold : Number(el("eta").value);
      const v = el("v").value === "" ? data.v_threshold : Number(el("v").value);
      const minPoints = data.run_thresholds.min_points;
      const above = [];
      const colours = data.eta.map((e, i) => {
        // as the pipeline flags variables: both strictly over, enough points
        const hit = e > eta && data.v[i] > v && data.n[i] >= minPoints;
        if (hit) above.push(i);
        return hit ? "#d62728" : "#1f77b4";
      });
      el("count").textContent = `${data.eta.length} points, ${above.length} above both thresholds`;
      const rows = above.sort((a, b) => data.eta[b] - data.eta[a]).slice(0, 200).map((i) =>
        `<tr><td><a href="${ROOT}/sources/${data.source_id[i]}">${data.source_id[i]}</a></td>` +
        `<td>${data.band[i]}</td><td>${data.eta[i].toPrecision(3)}</td>` +
        `<td>${data.v[i].toPrecision(3)}</td><td>${data.n[i]}</td></tr>`);
      el("table").querySelector("tbody").innerHTML = rows.join("");
      if (!hasPlotly()) { noPlot(ids.plot); return; }
      const traces = [{
        x: data.eta, y: data.v, mode: "markers", type: "scattergl", name: "sources",
        customdata: data.source_id, marker: {size: 5, color: colours, opacity: 0.75},
        text: data.source_id.map((s, i) => `source ${s}, band ${data.band[i]}, n ${data.n[i]}`),
        hovertemplate: "%{text}<br>η %{x:.3g}, V %{y:.3g}<extra></extra>"}];
      const hi = data.source_id.map((s, i) => (s === highlight ? i : -1)).filter((i) => i >= 0);
      if (hi.length) {
        traces.push({x: hi.map((i) => data.eta[i]), y: hi.map((i) => data.v[i]), type: "scattergl",
                     mode: "markers", name: `source ${highlight}`, customdata: hi.map(() => highlight),
                     marker: {size: 14, color: "rgba(0,0,0,0)", line: {color: "#000", width: 2}}});
      }
      const fit = data.derived;
      const histEta = logHistogram(data.eta, fit && {gauss: fit.log_eta, n: fit.n_sources});
      const histV = logHistogram(data.v, fit && {gauss: fit.log_v, n: fit.n_sources});
      const step = {mode: "lines", type: "scatter", line: {shape: "hvh", color: "#555"},
                    hoverinfo: "skip", showlegend: false};
      const gauss = {mode: "lines", type: "scatter", line: {color: "#2ca02c"},
                     hoverinfo: "skip", showlegend: false};
      if (histEta) {
        traces.push({...step, name: "log η histogram", x: histEta.centres, y: histEta.counts,
                     xaxis: "x", yaxis: "y2"});
        if (histEta.curve) traces.push({...gauss, name: "log η Gaussian", x: histEta.curve.at,
                                        y: histEta.curve.y, xaxis: "x", yaxis: "y2"});
      }
      if (histV) {
        traces.push({...step, name: "log V histogram", y: histV.centres, x: histV.counts,
                     xaxis: "x2", yaxis: "y"});
        if (histV.curve) traces.push({...gauss, name: "log V Gaussian", y: histV.curve.at,
                                      x: histV.curve.y, xaxis: "x2", yaxis: "y"});
      }
      el("fit").textContent = fit ? ` (${fit.n_sources} sources: log η ${fit.log_eta.mu.toFixed(2)} ± ` +
        `${fit.log_eta.sigma.toFixed(2)}, log V ${fit.log_v.mu.toFixed(2)} ± ${fit.log_v.sigma.toFixed(2)};` +
        ` thresholds η ${fit.eta_threshold.toPrecision(3)}, V ${fit.v_threshold.toPrecision(3)})` :
        " (too few sources to fit)";
      const shapes = [
        {type: "line", xref: "x", yref: "paper", x0: eta, x1: eta, y0: 0, y1: 1,
         line: {color: "#d62728", dash: "dash"}},
        {type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: v, y1: v,
         line: {color: "#d62728", dash: "dash"}}];
      Plotly.react(ids.plot, traces, layout({
        xaxis: {title: {text: "η (integrated flux)"}, type: "log", domain: [0, 0.8]},
        yaxis: {title: {text: "V (integrated flux)"}, type: "log", domain: [0, 0.8]},
        yaxis2: {domain: [0.83, 1], title: {text: "sources"}},
        xaxis2: {domain: [0.83, 1], title: {text: "sources"}},
        shapes, hovermode: "closest"}),
        config);
      const plot = document.getElementById(ids.plot);
      if (!plot.dataset.bound) {
        plot.dataset.bound = "1";
        plot.on("plotly_click", (ev) => {
          const p = ev.points[0]; if (p) window.location = `${ROOT}/sources/${p.customdata}`;
        });
      }
      const url = new URL(window.location);
      url.search = params().toString() + (highlight ? `&highlight=${highlight}` : "");
      window.history.replaceState(null, "", url);
    };
    const load = () => {
      const q = params(); q.set("format", "json");
      fetch(`${ROOT}/etav?${q}`).then((r) => r.json()).then((d) => { data = d; redraw(); });
    };
    // choosing run's or derived thresholds (or N) fills the threshold fields anew
    const choose = () => {
      el("eta").value = ""; el("v").value = "";
      const q = params(); q.set("format", "json");
      fetch(`${ROOT}/etav?${q}`).then((r) => r.json()).then((d) => {
        data = d; el("eta").value = d.eta_threshold; el("v").value = d.v_threshold; redraw();
      });
    };
    el("use").addEventListener("change", choose);
    el("nSigma").addEventListener("change", choose);
    el("band").addEventListener("change", () => (el("use").value === "derived" ? choose() : load()));
    el("eta").addEventListener("input", redraw);
    el("v").addEventListener("input", redraw);
    load();
  }

  // The live candidates table: the JSON twin polled every pollS seconds, rows redrawn
  // newest first, rows not seen before marked "fresh".
  function livePage(ids) {
    const table = document.getElementById(ids.table), status = document.getElementById(ids.status);
    const seen = new Set([...table.querySelectorAll("tbody tr[data-id]")].map((r) => r.dataset.id));
    const esc = (x) => String(x ?? "–").replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
    const num = (x, d) => (x === null || x === undefined ? "–" : Number(x).toPrecision(d));
    const row = (c) => {
      const fresh = !seen.has(String(c.candidate_id));
      return `<tr class="cand-${esc(c.kind)}${fresh ? " fresh" : ""}" data-id="${c.candidate_id}">` +
        `<td>${c.candidate_id}</td><td>${esc(c.time)}</td><td>${esc(c.kind)}</td><td>${esc(c.level)}</td>` +
        `<td><a class="source-link" href="${ROOT}/sources/${c.source_id}">${c.source_id}</a></td>` +
        `<td>${esc(c.band)}</td><td>${num(c.significance, 3)}</td><td>${num(c.ra, 8)}</td>` +
        `<td>${num(c.dec, 8)}</td><td>${esc(c.position)}</td></tr>`;
    };
    const poll = () => {
      fetch(`${ROOT}/live?format=json&limit=${ids.limit}`).then((r) => r.json()).then((d) => {
        const body = table.querySelector("tbody");
        body.innerHTML = d.rows.length ? d.rows.map(row).join("") :
          "<tr class='empty'><td colspan='10'>no candidates yet</td></tr>";
        for (const c of d.rows) seen.add(String(c.candidate_id));
        status.textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
      }).catch(() => { status.textContent = "server unreachable, retrying"; })
        .finally(() => setTimeout(poll, ids.pollS * 1000));
    };
    setTimeout(poll, ids.pollS * 1000);
  }

  return {overviewPlots, lightcurvePlot, etavPage, livePage};
})();
