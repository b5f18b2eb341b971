// Double-clicking a gallery thumbnail adds that image to the activation panels (as in the report's application).
// The key travels in a store, so the server adds exactly the image that was double-clicked.
document.addEventListener("dblclick", function (event) {
  const thumb = event.target.closest(".thumb");
  if (!thumb || !window.dash_clientside || !window.dash_clientside.set_props) {
    return;
  }
  const key = JSON.parse(thumb.id).key;
  window.dash_clientside.set_props("dblclick", { data: { key: key, at: Date.now() } });
});
