// Keeps the dashboard live: on every job event from /api/events, re-fetch the page's live part
// (at most four times a second) and swap it in. Without JavaScript the page is still complete.
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
  var events = new EventSource("/api/events");
  events.addEventListener("open", function () { state.textContent = "— live"; });
  events.addEventListener("error", function () { state.textContent = "— reconnecting…"; });
  events.addEventListener("job", function () {
    if (pending) return;
    pending = true;
    setTimeout(refresh, Math.max(0, 250 - (Date.now() - last)));
  });
})();
