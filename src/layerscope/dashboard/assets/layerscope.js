// Gallery, neighbour and top-k thumbnails, as in the report's application: a click selects the image, a double-click
// adds it to the activation panels. One document-level handler each, so a click's request goes out at once: no
// pattern-matching callback gathers the n_clicks of every thumbnail on the page first. The key travels in a store,
// so the server gets exactly the image that was clicked (and checks it: DashboardState.image_key).
(function () {
  const keyOf = function (event) {
    const thumb = event.target.closest && event.target.closest(".thumb");
    if (!thumb || !thumb.id || !window.dash_clientside || !window.dash_clientside.set_props) { return undefined; }
    try {
      return JSON.parse(thumb.id).key;
    } catch (e) {
      return undefined;
    }
  };
  document.addEventListener("click", function (event) {
    const key = keyOf(event);
    if (key !== undefined) { window.dash_clientside.set_props("selected", { data: key }); }
  });
  document.addEventListener("dblclick", function (event) {
    const key = keyOf(event);
    if (key !== undefined) { window.dash_clientside.set_props("dblclick", { data: { key: key, at: Date.now() } }); }
  });
})();
