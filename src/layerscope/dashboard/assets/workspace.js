// The workspace in the browser (workspace.py): which view shows, the address bar, the selected image's ring in the
// projections and the keyboard. Nothing here asks the server for anything; what the server must check it is sent.
(function () {
  const ls = (window.layerscope = window.layerscope || {});
  // WebGL plots (the projections' 70,000 points) at the screen's own resolution: plotly's default draws them at twice
  // it, four times the pixels, which a 1x screen does not show and software WebGL pays for at every redraw
  if (window.Plotly && window.Plotly.setPlotConfig) {
    window.Plotly.setPlotConfig({ plotGlPixelRatio: Math.min(2, Math.max(1, window.devicePixelRatio || 1)) });
  }
  const noUpdate = function () { return window.dash_clientside.no_update; };
  const setProps = function (id, props) { window.dash_clientside.set_props(id, props); };
  // a projection panel's plot (projection.py): the panel's box is #proj-<panel>, its graph has the class proj-graph
  const plotOf = function (panel) {
    return document.querySelector("#proj-" + panel + " .proj-graph .js-plotly-plot");
  };
  const panelOf = function (gd) {
    const box = gd.closest(".proj-panel");
    return box ? box.id.slice("proj-".length) : null;
  };
  const graphs = function () {
    return Array.from(document.querySelectorAll(".proj-panel .proj-graph .js-plotly-plot")).filter(function (gd) {
      return gd._fullData && gd._fullData.length;
    });
  };

  // a raster panel's figure (projection_raster.py): what it draws, from its layout's meta; null for a scatter. Its
  // ``points`` is true where the view holds few enough points to be drawn as points
  const rasterOf = function (gd) {
    const meta = gd && ((gd.layout && gd.layout.meta) || (gd._fullLayout && gd._fullLayout.meta));
    return meta && meta.raster ? meta : null;
  };
  const isRaster = function (gd) {
    const meta = rasterOf(gd);
    return !!meta && !meta.raster.points;
  };
  // what a raster panel asks the server to draw (projection_raster.py redraw): a view of its figure, at a size
  const plotSize = function (gd) {
    const layout = gd._fullLayout;
    return [Math.round(layout.xaxis._length), Math.round(layout.yaxis._length)];
  };
  const zoomTo = function (meta, view, size) {
    return { view: view, size: size, layer: meta.layer, method: meta.method, color: meta.color, split: meta.split };
  };
  // a raster drawn at another size than its plot's (the page's first figures, a resized window): drawn again at
  // the plot's, once per size
  const fitRaster = function (gd) {
    const meta = rasterOf(gd);
    if (!isRaster(gd) || !gd._fullLayout || !gd._fullLayout.xaxis) { return; }
    const size = plotSize(gd);
    const had = meta.raster.size || [0, 0];
    if (Math.abs(size[0] - had[0]) <= 0.1 * had[0] && Math.abs(size[1] - had[1]) <= 0.1 * had[1]) { return; }
    const asked = size.join("x") + " " + meta.raster.view.join(",");
    if (gd.__rasterAsked === asked) { return; }
    gd.__rasterAsked = asked;
    setProps({ type: "proj-zoom", panel: panelOf(gd) }, { data: zoomTo(meta, meta.raster.view, size) });
  };

  // a tab or a sidebar action -> the view it opens
  ls.chooseView = function (context) {
    const fired = (context.triggered || [])[0];
    if (!fired || !fired.value) { return noUpdate(); }
    const id = fired.prop_id.split(".")[0];
    if (id.indexOf("nav-") === 0) { return id.slice(4); }
    if (id === "explain-button") { return "activations"; }
    if (id === "unit-ablate") { return "intervene"; }
    if (id === "draw-over") { return "draw"; } // assets/draw.js puts the image on the canvas
    if (id === "goto-attribution" || id === "goto-ablation") {
      // the card scrolls into sight once it is there (the view is laid out the first time it opens)
      const target = id === "goto-ablation" ? "abl-layer" : "attr-method";
      let tries = 0;
      (function scroll() {
        const card = document.getElementById(target);
        if (card && card.offsetParent !== null) { card.closest(".card").scrollIntoView({ block: "start" }); return; }
        if (++tries < 100) { setTimeout(scroll, 50); }
      })();
      return "intervene";
    }
    return noUpdate();
  };

  // the heavy callbacks' gates (views.py): a gate gets a new number when one of the stores it follows changed while
  // its view is shown, or when its view opens after one changed while it was hidden; nothing (so no request)
  // otherwise. Values are compared by identity: the renderer hands an unchanged value on as the same object.
  const seen = {};
  let opened = 0;
  ls.gates = function (views, follows, current, values) {
    return Object.keys(views).map(function (name) {
      if (current !== views[name]) { return noUpdate(); }
      const now = follows[name].map(function (k) { return values[k]; });
      const last = seen[name];
      if (last && last.every(function (v, k) { return v === now[k]; })) { return noUpdate(); }
      seen[name] = now;
      opened += 1;
      return opened;
    });
  };

  // a brush in one panel -> [the page's selection, the panel it came from]; a graph reporting its first, empty
  // selection changes nothing, a cleared brush clears the selection ([])
  ls.brushed = function (context, brushes, current) {
    const fired = (context.triggered || [])[0];
    const id = context.triggered_id;
    if (!fired || !id || typeof id !== "object") { return [noUpdate(), noUpdate()]; }
    const indices = fired.value;
    if ((!indices || !indices.length) && (!current || !current.length)) {
      return [noUpdate(), noUpdate()];
    }
    return [indices && indices.length ? indices : [], id.panel];
  };

  // The images of the page's selection lit up in every projection but the one they were brushed in (which shows
  // plotly's own lasso, as long as it shows the figure they were brushed in): drawn larger on a 2-D canvas laid over
  // the plot, the WebGL points behind faded by CSS. Neither redraws the 70,000 WebGL points, which a restyle of
  // selectedpoints does (0.3-0.6 s a panel in software WebGL, and the page waits for it).
  const lit = { wanted: null, origin: null, brushedIn: null };
  const FADED = "0.1";  // the opacity of the WebGL points behind a lit selection
  // a numeric marker colour -> its colour on the trace's scale (the nearest of the scale's stops)
  const colorOf = function (marker, k) {
    const c = marker.color;
    if (!c || typeof c === "string") { return c || "#444"; }
    const scale = marker.colorscale || [[0, "#444"], [1, "#444"]];
    let t = (c[k] - marker.cmin) / ((marker.cmax - marker.cmin) || 1);
    t = Math.min(1, Math.max(0, marker.reversescale ? 1 - t : t));
    let best = scale[0];
    scale.forEach(function (stop) { if (Math.abs(stop[0] - t) < Math.abs(best[0] - t)) { best = stop; } });
    return best[1];
  };
  // the lit images of a panel's figure: data coordinates and colours, by trace (misclassified rings stay faded)
  const litPoints = function (gd) {
    const points = { x: [], y: [], color: [], indices: [] };
    gd._fullData.forEach(function (trace) {
      if (trace.visible !== true || trace.name === "misclassified" || !trace.customdata) { return; }
      const custom = trace.customdata;
      for (let i = 0; i < custom.length; i++) {
        if (lit.wanted.has(custom[i])) {
          points.x.push(trace.x[i]);
          points.y.push(trace.y[i]);
          points.color.push(colorOf(trace.marker || {}, i));
          points.indices.push(custom[i]);
        }
      }
    });
    return points;
  };
  const drawLit = function (gd) {
    const layer = gd._fullLayout || {};
    const xa = layer.xaxis, ya = layer.yaxis;
    const gl = gd.querySelector(".gl-container");
    let canvas = gd.querySelector("canvas.selection-layer");
    // a raster is drawn with the selection lit on the server (projection_raster.py redraw)
    const show = lit.wanted && !(panelOf(gd) === lit.origin && gd.data === lit.brushedIn) && xa && xa.l2p
      && !isRaster(gd);
    if (!show) {
      if (canvas) { canvas.style.display = "none"; canvas.dataset.count = "0"; }
      if (gl) { gl.style.opacity = ""; }
      gd.__lit = null;
      return;
    }
    if (!gd.__lit || gd.__lit.data !== gd.data || gd.__lit.wanted !== lit.wanted) {
      gd.__lit = Object.assign(litPoints(gd), { data: gd.data, wanted: lit.wanted });
    }
    if (!canvas) {
      canvas = document.createElement("canvas");
      canvas.className = "selection-layer";
      (gl ? gl.parentNode : gd).insertBefore(canvas, gl ? gl.nextSibling : null);
    }
    const ratio = window.devicePixelRatio || 1;
    const width = xa._length, height = ya._length;
    Object.assign(canvas.style, {
      display: "block", left: xa._offset + "px", top: ya._offset + "px", width: width + "px", height: height + "px",
    });
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const c = canvas.getContext("2d");
    c.setTransform(ratio, 0, 0, ratio, 0, 0);
    c.clearRect(0, 0, width, height);
    c.lineWidth = 0.8;
    c.strokeStyle = "rgba(255, 255, 255, 0.9)";
    const points = gd.__lit;
    for (let k = 0; k < points.x.length; k++) {
      const x = xa.l2p(points.x[k]), y = ya.l2p(points.y[k]);
      if (x < -4 || y < -4 || x > width + 4 || y > height + 4) { continue; }
      c.beginPath();
      c.arc(x, y, 3.5, 0, 2 * Math.PI);
      c.fillStyle = points.color[k];
      c.fill();
      c.stroke();
    }
    canvas.dataset.count = String(points.indices.length);
    if (gl) { gl.style.opacity = FADED; }
  };
  ls.highlight = function (selection, origin) {
    lit.wanted = selection && selection.length ? new Set(selection) : null;
    lit.origin = origin || null;
    const from = lit.origin ? plotOf(lit.origin) : null;
    lit.brushedIn = from ? from.data : null;
    graphs().forEach(function (gd) {
      // a selection this panel's figure came with, or a lasso of its own no longer the page's: cleared (the one
      // case that redraws the WebGL points)
      const own = gd.data.some(function (t) { return t.selectedpoints != null; });
      if (own && (panelOf(gd) !== lit.origin || !lit.wanted)) {
        window.Plotly.restyle(gd, { selectedpoints: null });
      }
      drawLit(gd);
    });
    return selection ? selection.length : 0;
  };

  // a click on a projection's point or an activation row's name -> the image it selects: a projection its image
  // index (pointIndices), a row its position in the rows (a thumbnail sets the selection itself: layerscope.js); the
  // server checks what it is given where it uses it (DashboardState.image_key)
  ls.select = function (context, rows, clicked, rowName) {
    const fired = (context.triggered || [])[0];
    if (!fired || fired.value === null || fired.value === undefined || fired.value === 0) { return noUpdate(); }
    const id = context.triggered_id;
    let key = null;
    if (id && typeof id === "object") {
      if (id.type === clicked && typeof fired.value === "number") { key = fired.value; }
      if (id.type === rowName) {
        const row = (rows || [])[id.row];
        if (row && (row.kind === "image" || row.kind === "class")) { key = row.kind === "class" ? "mean:" + row.key : row.key; }
      }
    }
    if (key === null) { return noUpdate(); }
    ls.showMaps(key);
    return key;
  };

  const markView = function (view) {
    document.querySelectorAll("main > .view").forEach(function (s) {
      s.classList.toggle("active", s.id === "view-" + view);
    });
    document.querySelectorAll(".tabs .tab").forEach(function (b) {
      b.classList.toggle("active", b.id === "nav-" + view);
      b.setAttribute("aria-selected", b.id === "nav-" + view ? "true" : "false");
    });
  };
  const laidOut = function (view, loaded) { return (loaded || []).indexOf(view) >= 0; };

  // the view chosen shows at once; one not laid out yet (views.py) is asked for (workspace.lay_out) and says so
  // meanwhile. A new history entry at once too (the server's full address replaces it when it comes): a quick second
  // click must not lose the first view from the history; none for a view the address names already (back, forward)
  ls.wantView = function (view, loaded) {
    const params = new URLSearchParams(window.location.search);
    if ((params.get("view") || "explore") !== view) {
      params.set("view", view);
      window.history.pushState(null, "", window.location.pathname + "?" + params.toString() + window.location.hash);
    }
    markView(view);
    return laidOut(view, loaded) ? noUpdate() : view;
  };

  ls.showView = function (view, loaded) {
    if (!laidOut(view, loaded)) { return noUpdate(); }  // its components are on their way: called again then
    markView(view);
    // plotly drew the graphs of a hidden view at its default 700 px: let it measure them again, then say the view is
    // shown (the gates of its heavy callbacks follow VIEW_SHOWN: their figures arrive in graphs of the right size)
    // (Plots.resize waits 100 ms before it measures: a figure drawn meanwhile would keep the 700 px)
    return new Promise(function (done) {
      requestAnimationFrame(function () {
        const section = document.getElementById("view-" + view);
        const graphs = Array.from(section ? section.querySelectorAll(".js-plotly-plot") : []);
        Promise.all(graphs.filter(function (gd) { return gd._fullLayout && window.Plotly; }).map(function (gd) {
          return window.Plotly.Plots.resize(gd).catch(function () { return null; });
        })).then(function () { done(view); });
      });
    });
  };


  // the page's state as a query string (address.py) -> the URL: back and forward move between views (wantView
  // makes an entry per view), the rest of the state refines the entry (a click in the gallery is not a page)
  const viewOf = function (search) { return new URLSearchParams(search).get("view") || "explore"; };
  ls.writeAddress = function (search) {
    // the history's entries are made where the view changes (wantView); an address only refines the entry of its
    // view. One made for a view the page has left since (back, then back again before the first answer came) is
    // dropped: written, it would take the place of the entry the page is on
    if (!search || search === window.location.search || viewOf(search) !== viewOf(window.location.search)) {
      return noUpdate();
    }
    window.history.replaceState(null, "", window.location.pathname + search + window.location.hash);
    return search;
  };
  // the address at page open, and after back or forward: the view it names shows at once (no history entry is made
  // for it: it has one), when the page has that view's tab; the rest is read on the server (workspace.py restore)
  const openView = function () {
    const view = viewOf(window.location.search);
    if (document.getElementById("nav-" + view)) { setProps("view", { data: view }); }
  };
  ls.openAddress = function () {
    const search = window.location.search;
    if (search && search !== "?") {
      openView();
      setProps("address-in", { data: search });
    }
    return search;
  };
  window.addEventListener("popstate", function () {
    openView();
    setProps("address-in", { data: window.location.search });
  });

  // a plotly event's points -> the images' indices, from each trace's customdata as plotly decoded it (dcc.Graph
  // reads customdata from the figure as sent, where a typed array is still base64): a brush gives the sorted set, a
  // click or a hover its one image; what travels to the server is indices, never trace positions
  ls.pointIndices = function (panel, data, kind) {
    const gd = plotOf(panel);
    // a lasso over a raster has no points: its shape goes to the server (rasterBrush)
    if (kind === "brush" && isRaster(gd)) { return noUpdate(); }
    if (!data || !data.points || !data.points.length) { return kind === "brush" ? null : noUpdate(); }
    const full = (gd && gd._fullData) || [];
    const seen = new Set();
    data.points.forEach(function (p) {
      let index = p.customdata;
      const custom = full[p.curveNumber] && full[p.curveNumber].customdata;
      if (typeof index !== "number" && custom) {
        // a raster's hover grid: a cell, [row, column], names one of its images (-1: none)
        index = Array.isArray(p.pointNumber) ? (custom[p.pointNumber[0]] || [])[p.pointNumber[1]] : custom[p.pointNumber];
      }
      if (typeof index === "number" && index >= 0) { seen.add(index); }
    });
    if (kind !== "brush") { return seen.size ? seen.values().next().value : noUpdate(); }
    return Array.from(seen).sort(function (x, y) { return x - y; });
  };

  // the selected image: a ring over every projection that shows it, and the gallery's thumbnail outlined. The ring
  // is an element laid over the plot, placed from plotly's axes: moving it redraws nothing (a Plotly.relayout of a
  // shape redraws the 70,000 WebGL points, half a second per projection, and holds up the page's next requests)
  const placeRing = function (gd) {
    let el = gd.querySelector(".selected-ring");
    const at = gd.__ring;
    const layout = gd._fullLayout;
    if (!at || !layout || !layout.xaxis || !layout.xaxis.l2p) {
      if (el) { el.style.display = "none"; }
      return;
    }
    if (!el) {
      el = document.createElement("div");
      el.className = "selected-ring";
      gd.appendChild(el);
    }
    const xa = layout.xaxis, ya = layout.yaxis;
    const x = xa._offset + xa.l2p(at[0]), y = ya._offset + ya.l2p(at[1]);
    const inside = x >= xa._offset && x <= xa._offset + xa._length && y >= ya._offset && y <= ya._offset + ya._length;
    el.style.display = inside ? "block" : "none";
    el.style.left = x + "px";
    el.style.top = y + "px";
    el.dataset.x = at[0];
    el.dataset.y = at[1];
  };
  const hooked = new WeakSet();
  const rasterAt = {};  // panel -> where its raster has the selected image (rasterRing)
  // the ring on one drawn projection, following its zooms, pans and new figures
  const ring = function (gd) {
    gd.__ring = null;
    if (isRaster(gd)) {
      // the server says where the selected image is in a raster (rasterRing)
      const at = rasterAt[panelOf(gd)];
      gd.__ring = at && at[2] === ls.selected ? [at[0], at[1]] : null;
    } else if (typeof ls.selected === "number") {
      for (const trace of gd._fullData) {
        if (!trace.customdata || trace.name === "misclassified" || trace.visible !== true) { continue; }
        const i = Array.prototype.indexOf.call(trace.customdata, ls.selected);
        if (i >= 0) { gd.__ring = [trace.x[i], trace.y[i]]; break; }
      }
    }
    if (!hooked.has(gd)) {  // a new figure, a zoom or a pan: the ring follows
      hooked.add(gd);
      gd.on("plotly_afterplot", function () { ring(gd); drawLit(gd); });
    }
    placeRing(gd);
    fitRaster(gd);
    return gd.__ring !== null;
  };
  const drawn = function (gd) {
    return gd && gd._fullData && gd._fullData.length && typeof gd.on === "function";
  };

  // a projection's figure arrived (or is to come, at page open): once plotly has drawn it, the selected image is
  // ringed and the selection lit on it (tried for a few seconds)
  ls.followFigure = function (panel) {
    let tries = 0;
    (function attempt() {
      const gd = plotOf(panel);
      if (drawn(gd)) {
        ring(gd);
        drawLit(gd);
        if (ls.timelineFollow) { ls.timelineFollow(panel); } // a training snapshot shown: its points go there
      } else if (tries++ < 100) {
        setTimeout(attempt, 100);
      }
    })();
    return panel;
  };

  // Raster panels (projection_raster.py). A zoom, a pan or a reset -> the view to draw, with what the figure shows
  // (the server checks it is still the panel's); nothing for a scatter, which plotly zooms itself
  ls.rasterZoom = function (panel, relayout) {
    const gd = plotOf(panel);
    const meta = rasterOf(gd);
    if (!meta || !relayout) { return noUpdate(); }
    const view = meta.raster.view.slice();
    const full = meta.raster.full;
    const range = function (axis, k) {
      const pair = relayout[axis + ".range"];
      return pair ? pair[k] : relayout[axis + ".range[" + k + "]"];
    };
    let changed = false;
    ["xaxis", "yaxis"].forEach(function (axis, a) {
      if (relayout[axis + ".autorange"]) {
        view[2 * a] = full[2 * a];
        view[2 * a + 1] = full[2 * a + 1];
        changed = true;
      } else if (range(axis, 0) !== undefined && range(axis, 1) !== undefined) {
        view[2 * a] = Math.min(range(axis, 0), range(axis, 1));
        view[2 * a + 1] = Math.max(range(axis, 0), range(axis, 1));
        changed = true;
      }
    });
    if (!changed || view.every(function (v, k) { return v === meta.raster.view[k]; })) { return noUpdate(); }
    return zoomTo(meta, view, plotSize(gd));
  };
  // a lasso or a box drawn over a raster -> its polygon or range, in data coordinates; null once cleared
  ls.rasterBrush = function (panel, data) {
    if (!isRaster(plotOf(panel))) { return noUpdate(); }
    if (!data) { return null; }
    if (data.lassoPoints) { return { lasso: [data.lassoPoints.x, data.lassoPoints.y] }; }
    if (data.range && data.range.x && data.range.y) {
      return { box: [data.range.x[0], data.range.x[1], data.range.y[0], data.range.y[1]] };
    }
    return noUpdate();
  };
  // where the selected image is in a raster, [x, y, its index] (null: not there) -> the ring there
  ls.rasterRing = function (panel, at) {
    rasterAt[panel] = at;
    const gd = plotOf(panel);
    if (!drawn(gd)) { ls.followFigure(panel); return noUpdate(); }  // rung once drawn
    return ring(gd);
  };

  ls.markSelected = function (selected) {
    ls.selected = selected;
    document.querySelectorAll(".thumb").forEach(function (img) {
      let key = null;
      try { key = JSON.parse(img.id).key; } catch (e) { return; }
      img.classList.toggle("selected", String(key) === String(selected));
    });
    let marked = 0;
    document.querySelectorAll(".proj-panel").forEach(function (box) {
      const panel = box.id.slice("proj-".length);
      const gd = plotOf(panel);
      if (drawn(gd)) {
        if (ring(gd)) { marked += 1; }
      } else {
        ls.followFigure(panel);  // not drawn yet: the page has just opened
      }
    });
    return marked;
  };

  // keyboard: left and right step through the gallery, Escape clears the brushed points
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable], .dash-dropdown")) {
      return;
    }
    if (event.key === "Escape") {
      graphs().forEach(function (gd) { window.Plotly.relayout(gd, { selections: [] }); });
      setProps("selection-origin", { data: null });
      setProps("selection", { data: [] });
      return;
    }
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") { return; }
    const view = document.querySelector("main > .view.active");
    if (!view || view.id !== "view-explore") { return; }
    const thumbs = Array.from(view.querySelectorAll("#gallery-brushed .thumb, #gallery-body .thumb"));
    if (!thumbs.length) { return; }
    const at = thumbs.findIndex(function (img) { return img.classList.contains("selected"); });
    const next = at < 0 ? 0 : Math.min(thumbs.length - 1, Math.max(0, at + (event.key === "ArrowRight" ? 1 : -1)));
    event.preventDefault();
    if (next !== at) { thumbs[next].click(); thumbs[next].scrollIntoView({ block: "nearest" }); }
  });
})();
