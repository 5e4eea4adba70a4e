// A request's page: its state polled once a second until the grading is over, then the page
// is loaded again (the mark and the report are the server's to show). Without JavaScript the
// page is the same, and reloading it shows where the request stands.
(function () {
  var live = document.getElementById("live");
  if (!live) { return; }
  var id = live.getAttribute("data-request");
  var state = live.querySelector(".state");
  function poll() {
    fetch("/api/requests/" + encodeURIComponent(id), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (found) {
        if (!found) { return; }
        if (found.state === "queued" || found.state === "grading") {
          state.textContent = found.state + (found.phases.length ? " (" + found.phases[found.phases.length - 1].phase + ")" : "");
          setTimeout(poll, 1000);
        } else {
          window.location.reload();
        }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
