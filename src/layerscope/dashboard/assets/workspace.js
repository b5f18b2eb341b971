// The workspace in the browser (workspace.py): which view shows, the address bar, the selected image's ring in the
// projections and the keyboard. Nothing here asks the server for anything; what the server must check it is sent.
(function () {
  const ls = (window.layerscope = window.layerscope || {});
  const noUpdate = function () { return window.dash_clientside.no_update; };
  const setProps = function (id, props) { window.dash_clientside.set_props(id, props); };
  const graphs = function () {
    return ["a", "b"].map(function (panel) {
      return document.querySelector("#proj-" + panel + "-graph .js-plotly-plot");
    }).filter(function (gd) { return gd && gd._fullData && gd._fullData.length; });
  };

  // a tab or a sidebar action -> the view it opens
  ls.chooseView = function (context) {
    const fired = (context.triggered || [])[0];
    if (!fired || !fired.value) { return noUpdate(); }
    const id = fired.prop_id.split(".")[0];
    if (id.indexOf("nav-") === 0) { return id.slice(4); }
    if (id === "explain-button") { return "activations"; }
    if (id === "unit-ablate") { return "intervene"; }
    if (id === "goto-attribution" || id === "goto-ablation") {
      setTimeout(function () {
        const card = document.getElementById(id === "goto-ablation" ? "abl-layer" : "attr-method");
        if (card) { card.closest(".card").scrollIntoView({ block: "start" }); }
      }, 50);
      return "intervene";
    }
    return noUpdate();
  };

  let shownOnce = false;
  ls.showView = function (view) {
    // a new history entry at once (the server's full address replaces it when it comes): a quick second click
    // must not lose the first view from the history; not on the page's first call, made before the address is read
    const params = new URLSearchParams(window.location.search);
    if (shownOnce && (params.get("view") || "explore") !== view) {
      params.set("view", view);
      window.history.pushState(null, "", window.location.pathname + "?" + params.toString() + window.location.hash);
    }
    shownOnce = true;
    document.querySelectorAll("main > .view").forEach(function (s) {
      s.classList.toggle("active", s.id === "view-" + view);
    });
    document.querySelectorAll(".tabs .tab").forEach(function (b) {
      b.classList.toggle("active", b.id === "nav-" + view);
      b.setAttribute("aria-selected", b.id === "nav-" + view ? "true" : "false");
    });
    // plotly drew the graphs of a hidden view at its default 700 px: let it measure them again
    requestAnimationFrame(function () {
      const section = document.getElementById("view-" + view);
      (section ? section.querySelectorAll(".js-plotly-plot") : []).forEach(function (gd) {
        if (gd._fullLayout && window.Plotly) { window.Plotly.Plots.resize(gd); }
      });
    });
    return view;
  };

  // the page's state as a query string (address.py) -> the URL: a new history entry when the view changes, so
  // back and forward move between views; the same entry otherwise (a click in the gallery is not a page)
  const viewOf = function (search) { return new URLSearchParams(search).get("view") || "explore"; };
  ls.writeAddress = function (search) {
    if (!search || search === window.location.search) { return noUpdate(); }
    const url = window.location.pathname + search + window.location.hash;
    if (viewOf(search) !== viewOf(window.location.search)) {
      window.history.pushState(null, "", url);
    } else {
      window.history.replaceState(null, "", url);
    }
    return search;
  };
  window.addEventListener("popstate", function () { setProps("address-in", { data: window.location.search }); });

  // a plotly event's points -> the images' indices, from each trace's customdata as plotly decoded it (dcc.Graph
  // reads customdata from the figure as sent, where a typed array is still base64): a brush gives the sorted set, a
  // click or a hover its one image; what travels to the server is indices, never trace positions
  ls.pointIndices = function (panel, data, kind) {
    if (!data || !data.points || !data.points.length) { return kind === "brush" ? null : noUpdate(); }
    const gd = document.querySelector("#proj-" + panel + "-graph .js-plotly-plot");
    const full = (gd && gd._fullData) || [];
    const seen = new Set();
    data.points.forEach(function (p) {
      let index = p.customdata;
      if (typeof index !== "number" && full[p.curveNumber] && full[p.curveNumber].customdata) {
        index = full[p.curveNumber].customdata[p.pointNumber];
      }
      if (typeof index === "number") { seen.add(index); }
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
  ls.markSelected = function (selected) {
    ls.selected = selected;
    document.querySelectorAll(".thumb").forEach(function (img) {
      let key = null;
      try { key = JSON.parse(img.id).key; } catch (e) { return; }
      img.classList.toggle("selected", String(key) === String(selected));
    });
    let marked = 0;
    graphs().forEach(function (gd) {
      gd.__ring = null;
      if (typeof selected === "number") {
        for (const trace of gd._fullData) {
          if (!trace.customdata || trace.name === "misclassified" || trace.visible !== true) { continue; }
          const i = Array.prototype.indexOf.call(trace.customdata, selected);
          if (i >= 0) { gd.__ring = [trace.x[i], trace.y[i]]; break; }
        }
      }
      if (!hooked.has(gd)) {  // a new figure, a zoom or a pan: the ring follows
        hooked.add(gd);
        gd.on("plotly_afterplot", function () { ls.markSelected(ls.selected); });
      }
      placeRing(gd);
      if (gd.__ring) { marked += 1; }
    });
    return marked;
  };

  // a projection's figure arrived: once plotly has drawn it, hook the ring onto it (tried for a few seconds)
  ls.followFigure = function (panel) {
    let tries = 0;
    (function attempt() {
      const gd = document.querySelector("#proj-" + panel + "-graph .js-plotly-plot");
      if (gd && gd._fullData && gd._fullData.length && typeof gd.on === "function") {
        ls.markSelected(ls.selected);
      } else if (tries++ < 100) {
        setTimeout(attempt, 100);
      }
    })();
    return panel;
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
