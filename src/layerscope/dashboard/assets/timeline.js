// The training timeline in the browser (timeline_card.py): the slider's play/pause and step, its readout and the
// accuracy curve's marker, and the projection panels' points moving from snapshot to snapshot. A panel's timeline,
// (snapshots, images, 2) float32, is fetched once; a move restyles the plot's x and y in a few frames from where the
// points are to where the snapshot has them (no new figure, nothing asked of the server), the misclassified rings
// becoming the snapshot's own at the end. The plot's data-snapshot attribute says which snapshot it shows.
(function () {
  const ls = (window.layerscope = window.layerscope || {});
  const MOVE_MS = 450;
  const tables = {}; // url -> Promise of a typed array, fetched once per page
  const load = function (url, Type) {
    if (!tables[url]) {
      tables[url] = fetch(url).then(function (r) {
        if (!r.ok) { throw new Error("timeline " + r.status); }
        return r.arrayBuffer();
      }).then(function (buffer) { return new Type(buffer); });
      tables[url].catch(function () { delete tables[url]; }); // asked again on the next move
    }
    return tables[url];
  };
  const plotOf = function (panel) {
    return document.querySelector("#proj-" + panel + " .proj-graph .js-plotly-plot");
  };

  // Play/Pause, the step buttons and the play interval's tick -> (slider value, interval disabled, Play's label)
  ls.timelineStep = function (context, value, playing, count) {
    const fired = ((context.triggered || [])[0] || {}).prop_id || "";
    const last = count - 1;
    let k = typeof value === "number" ? value : last;
    let stopped = playing !== false;
    if (fired.indexOf("tl-play") === 0) {
      stopped = !stopped;
      if (!stopped && k >= last) { k = 0; } // play from the untrained network
    } else if (fired.indexOf("tl-back") === 0) {
      k = Math.max(0, k - 1);
      stopped = true;
    } else if (fired.indexOf("tl-next") === 0) {
      k = Math.min(last, k + 1);
      stopped = true;
    } else if (fired.indexOf("tl-tick") === 0) {
      if (stopped) { return [window.dash_clientside.no_update, true, "▶ Play"]; }
      k = Math.min(last, k + 1);
      if (k >= last) { stopped = true; }
    }
    return [k, stopped, stopped ? "▶ Play" : "❚❚ Pause"];
  };

  const readout = function (info, k) {
    const e = info[k];
    const parts = ["snapshot " + k + " of " + (info.length - 1), "step " + e.step.toLocaleString("en")];
    if (e.epoch !== null && e.epoch !== undefined) { parts.push("epoch " + e.epoch.toFixed(2)); }
    if (e.test_accuracy !== null && e.test_accuracy !== undefined) {
      parts.push("test accuracy " + (100 * e.test_accuracy).toFixed(1) + "%");
    }
    if (k === info.length - 1) { parts.push("the trained network"); } else if (k === 0) { parts.push("the untrained network"); }
    return parts.join(" · ");
  };
  // the slider -> the page's snapshot, the readout and the curve's marker (a copy of the small figure, marker moved)
  ls.timelineShown = function (value, info, figure) {
    const k = Math.max(0, Math.min(info.length - 1, value | 0));
    const fig = Object.assign({}, figure, { data: figure.data.slice() });
    fig.data[1] = Object.assign({}, fig.data[1], { x: [info[k].step], y: [info[k].test_accuracy] });
    const e = info[k];
    const badge = k === info.length - 1 ? "" : " · training snapshot " + k + " (epoch "
      + (e.epoch !== null && e.epoch !== undefined ? e.epoch.toFixed(2) : "?") + ")";
    return [k, readout(info, k), fig, badge];
  };

  // the images a trace draws, as plotly decoded them
  const customOf = function (gd, i) {
    const full = gd._fullData && gd._fullData.find(function (t) { return t.index === i; });
    return full && full.customdata && full.customdata.length !== undefined ? full.customdata : null;
  };
  const extent = function (table, n, s) {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let j = 0; j < s * n; j++) {
      const x = table[2 * j], y = table[2 * j + 1];
      if (x < x0) { x0 = x; } if (x > x1) { x1 = x; } if (y < y0) { y0 = y; } if (y > y1) { y1 = y; }
    }
    const mx = 0.04 * (x1 - x0 || 1), my = 0.04 * (y1 - y0 || 1);
    return [[x0 - mx, x1 + mx], [y0 - my, y1 + my]];
  };

  // move a panel's points to snapshot k of its timeline; `animate` false jumps (a figure that came drawn elsewhere)
  const move = function (gd, line, table, wrong, k, animate) {
    const n = line.n, s = line.snapshots;
    if (table.length !== s * n * 2) { return Promise.resolve(false); }
    const traces = [], from = [], to = [];
    let ringsAt = -1;
    let shown = null;
    gd.data.forEach(function (trace, i) {
      const custom = customOf(gd, i);
      if (!custom) { return; }
      if (trace.name === "misclassified") { ringsAt = i; }
      const full = gd._fullData.find(function (t) { return t.index === i; });
      const m = custom.length;
      const fx = new Float32Array(m), fy = new Float32Array(m), tx = new Float32Array(m), ty = new Float32Array(m);
      for (let j = 0; j < m; j++) {
        const at = 2 * (k * n + custom[j]);
        fx[j] = full.x[j]; fy[j] = full.y[j]; tx[j] = table[at]; ty[j] = table[at + 1];
      }
      traces.push(i); from.push([fx, fy]); to.push([tx, ty]);
      if (trace.name !== "misclassified") {
        shown = shown || new Uint8Array(n);
        for (let j = 0; j < m; j++) { shown[custom[j]] = 1; }
      }
    });
    if (!traces.length) { return Promise.resolve(false); }
    if (!gd.__timelineRange || gd.__timelineRange.url !== line.url) {
      gd.__timelineRange = { url: line.url, range: extent(table, n, s) };
    }
    const range = gd.__timelineRange.range;
    const start = performance.now();
    const frames = [];
    return new Promise(function (done) {
      const frame = function () {
        const t = animate ? Math.min(1, (performance.now() - start) / MOVE_MS) : 1;
        const e = t < 0.5 ? 2 * t * t : 1 - Math.pow(-2 * t + 2, 2) / 2; // ease in and out
        const xs = [], ys = [];
        to.forEach(function (target, q) {
          if (t >= 1) { xs.push(target[0]); ys.push(target[1]); return; }
          const f = from[q], m = target[0].length;
          const x = new Float32Array(m), y = new Float32Array(m);
          for (let j = 0; j < m; j++) {
            x[j] = f[0][j] + (target[0][j] - f[0][j]) * e;
            y[j] = f[1][j] + (target[1][j] - f[1][j]) * e;
          }
          xs.push(x); ys.push(y);
        });
        const began = performance.now();
        gd.__lit = null; // the lit selection is placed again from the points' new coordinates (workspace.js)
        // the frame of the whole timeline, set where the plot is not on it yet (a relayout redraws the axes too)
        const axes = gd.layout || {};
        const on = function (axis, want) {
          const r = (axes[axis] || {}).range;
          return r && r[0] === want[0] && r[1] === want[1];
        };
        const framed = frames.length === 0 && !(on("xaxis", range[0]) && on("yaxis", range[1]));
        (framed
          ? window.Plotly.update(gd, { x: xs, y: ys }, { "xaxis.range": range[0], "yaxis.range": range[1] }, traces)
          : window.Plotly.restyle(gd, { x: xs, y: ys }, traces)
        ).then(function () {
          frames.push(performance.now() - began);
          if (t < 1) { requestAnimationFrame(frame); } else { finish(); }
        });
      };
      // at the snapshot: its mistakes ringed, and the plot marked as showing it
      const finish = function () {
        Promise.resolve().then(function () {
          if (ringsAt >= 0 && wrong && wrong.length === s * n && shown) {
            // the snapshot's own mistakes ringed: those of the images this panel shows. Where a quarter or more are
            // wrong (an early network) the rings would cover the classes' colours: their legend entry shows them
            const picked = [];
            let count = 0;
            for (let i = 0; i < n; i++) {
              if (shown[i]) { count++; if (wrong[k * n + i]) { picked.push(i); } }
            }
            const custom = Int32Array.from(picked);
            const x = new Float32Array(custom.length), y = new Float32Array(custom.length);
            custom.forEach(function (i, j) { x[j] = table[2 * (k * n + i)]; y[j] = table[2 * (k * n + i) + 1]; });
            const many = picked.length >= 0.25 * count;
            const visible = gd.data[ringsAt].visible;
            const ringed = { x: [x], y: [y], customdata: [custom], name: "misclassified" };
            if (visible !== false && (many || gd.__ringsHidden)) {
              ringed.visible = many ? "legendonly" : true;
              gd.__ringsHidden = many;
            }
            return window.Plotly.restyle(gd, ringed, [ringsAt]);
          }
          return null;
        }).then(function () {
          gd.dataset.frameMs = frames.map(function (ms) { return ms.toFixed(1); }).join(","); // each frame's draw
          gd.dataset.frames = String(frames.length);
          gd.dataset.snapshot = String(k);
          done(true);
        });
      };
      frame();
    });
  };

  // the view a panel's figure draws (projection.py puts it in the layout's meta)
  const drawnView = function (gd) {
    return (gd.layout && gd.layout.meta) || (gd._fullLayout && gd._fullLayout.meta) || {};
  };
  // a panel's timeline and the page's snapshot -> its points moved there (a move asked while one runs waits for it)
  ls.timelineTo = function (panel, line, snapshot) {
    const gd = plotOf(panel);
    if (!gd) { return window.dash_clientside.no_update; }
    gd.__timelineWanted = line && typeof snapshot === "number" ? { line: line, k: snapshot } : null;
    if (!gd.__timelineWanted) { return null; }
    const go = function () {
      const wanted = gd.__timelineWanted;
      const view = drawnView(gd);
      // the figure of another layer or method: its own figure comes and asks again (timelineFollow)
      // a raster (projection_raster.py) is drawn at the snapshot on the server: no points to move here
      if (!wanted || !window.Plotly || !gd._fullData || view.layer !== wanted.line.layer
          || view.method !== wanted.line.method || view.raster) { return Promise.resolve(); }
      const line = wanted.line;
      return Promise.all([load(line.url, Float32Array), load(line.wrong, Uint8Array)]).then(function (arrays) {
        const now = gd.__timelineWanted;
        if (!now || now.line.url !== line.url) { return null; }
        const jump = gd.__timelineJump;
        gd.__timelineJump = false;
        if (!jump && gd.dataset.snapshot === String(now.k) && gd.dataset.timelineUrl === line.url) {
          return null; // there already (the snapshot and the panel's timeline both announce one move)
        }
        return move(gd, line, arrays[0], arrays[1], now.k, !jump).then(function () {
          gd.dataset.timelineUrl = line.url;
        });
      }).catch(function () { return null; });
    };
    gd.__timelineQueue = (gd.__timelineQueue || Promise.resolve()).then(go, go);
    return snapshot;
  };

  // a new figure in a panel (another layer, colouring or split), drawn as the Run has it or at the snapshot the
  // server drew: its points jump (no animation) to where the page's snapshot has them
  ls.timelineFollow = function (panel) {
    const gd = plotOf(panel);
    if (!gd) { return; }
    delete gd.dataset.snapshot;
    delete gd.dataset.timelineUrl;
    gd.__timelineRange = null;
    gd.__ringsHidden = false;
    const wanted = gd.__timelineWanted;
    if (wanted) {
      gd.__timelineJump = true;
      ls.timelineTo(panel, wanted.line, wanted.k);
    }
  };
})();
