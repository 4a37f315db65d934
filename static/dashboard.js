// Keeps the dashboard live: /api/events?changes=250 says, at most four times a second, that
// jobs changed; then the page's live part is re-fetched and swapped in. Without JavaScript the
// page is still complete.
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch) return;
  var live = document.getElementById("live");
  var state = document.getElementById("state");
  var pending = false;
  var last = 0;
  function refresh() {
    pending = false;
    last = Date.now();
    var query = location.search ? location.search + "&fragment=1" : "?fragment=1";
    fetch(location.pathname + query, { cache: "no-store" })
      .then(function (response) { return response.text(); })
      .then(function (html) { live.innerHTML = html; })
      .catch(function () { pending = false; });
  }
  var events = new EventSource("/api/events?changes=250");
  events.addEventListener("open", function () { state.textContent = "— live"; });
  events.addEventListener("error", function () { state.textContent = "— reconnecting…"; });
  events.addEventListener("changed", function () {
    if (pending) return;
    pending = true;
    setTimeout(refresh, Math.max(0, 250 - (Date.now() - last)));
  });
})();
