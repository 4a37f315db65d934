// Keeps the dashboard live: /api/events?changes=250 says, at most four times a second, that
// jobs changed; then the page's live part is re-fetched and swapped in. Without JavaScript the
// page is still complete, and its upload and retry forms still work (they come back to the
// page).
//
// Uploads: files dropped on the page (or chosen) are sent one request each, with a progress
// bar per file; the job ids the server answers are remembered by this browser (localStorage,
// "my uploads") and their states kept up to date on the same events.
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch) return;
  var live = document.getElementById("live");
  var state = document.getElementById("state");
  var MINE_KEY = "file-processor.my-uploads";
  var MINE_MAX = 50;
  var pending = false;
  var last = 0;
  var renderedAt = Date.now();

  // The elapsed time of running jobs goes on between refreshes: the server's figure when the
  // part was rendered, plus the time since (no clock of the server is compared with ours).
  function span(seconds) {
    if (seconds < 10) return seconds.toFixed(1) + " s";
    var whole = Math.round(seconds);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (whole < 60) return whole + " s";
    if (whole < 3600) return Math.floor(whole / 60) + " min " + two(whole % 60) + " s";
    return Math.floor(whole / 3600) + " h " + two(Math.floor(whole % 3600 / 60)) + " min";
  }
  setInterval(function () {
    var cells = live.querySelectorAll("td.elapsed[data-ms]");
    for (var i = 0; i < cells.length; i++) {
      var ms = Number(cells[i].getAttribute("data-ms")) + (Date.now() - renderedAt);
      cells[i].textContent = span(ms / 1000);
    }
  }, 1000);

  function refresh() {
    pending = false;
    last = Date.now();
    var query = location.search ? location.search + "&fragment=1" : "?fragment=1";
    fetch(location.pathname + query, { cache: "no-store" })
      .then(function (response) { return response.text(); })
      .then(function (html) { live.innerHTML = html; renderedAt = Date.now(); })
      .catch(function () { pending = false; });
    refreshMine();
  }

  // --- my uploads -------------------------------------------------------------------------
  function loadMine() {
    try {
      var stored = JSON.parse(localStorage.getItem(MINE_KEY) || "[]");
      return Array.isArray(stored) ? stored : [];
    } catch (e) {
      return [];
    }
  }
  function saveMine(list) {
    try { localStorage.setItem(MINE_KEY, JSON.stringify(list.slice(0, MINE_MAX))); } catch (e) { /* full or off */ }
  }
  var mineBox = document.getElementById("my-uploads");
  var mineTable = document.getElementById("mine");
  var rows = {}; // job id or a temporary key -> row

  function cell(row, index) { return row.children[index]; }
  function makeRow(name) {
    var row = document.createElement("tr");
    for (var i = 0; i < 3; i++) row.appendChild(document.createElement("td"));
    cell(row, 0).textContent = name;
    mineTable.insertBefore(row, mineTable.children[1] || null);
    mineBox.hidden = false;
    return row;
  }
  function showJob(row, job) {
    var link = document.createElement("a");
    link.href = "/jobs/" + encodeURIComponent(job.job_id);
    link.textContent = job.file;
    cell(row, 0).textContent = "";
    cell(row, 0).appendChild(link);
    cell(row, 1).textContent = job.state || "queued";
    cell(row, 1).className = "state-" + (job.state || "queued");
    var error = job.error && job.error.message ? job.error.message : "";
    cell(row, 2).textContent = error;
  }
  function refreshMine() {
    loadMine().forEach(function (job) {
      // A failed job may be retried: it is looked at again.
      if (job.state === "completed" || job.state === "unknown") return;
      fetch("/api/jobs/" + encodeURIComponent(job.job_id), { cache: "no-store" })
        .then(function (response) {
          if (response.status === 404) return { job_id: job.job_id, file: job.file, state: "unknown" };
          return response.json();
        })
        .then(function (now) {
          var list = loadMine();
          list.forEach(function (item) {
            if (item.job_id === now.job_id) { item.state = now.state; item.file = now.file || item.file; }
          });
          saveMine(list);
          var row = rows[now.job_id] || (rows[now.job_id] = makeRow(now.file));
          showJob(row, now);
        })
        .catch(function () { /* next event tries again */ });
    });
  }
  function drawMine() {
    loadMine().slice().reverse().forEach(function (job) {
      rows[job.job_id] = makeRow(job.file);
      showJob(rows[job.job_id], job);
    });
  }

  function uploadOne(file) {
    var row = makeRow(file.name);
    var bar = document.createElement("progress");
    bar.max = file.size || 1;
    bar.value = 0;
    cell(row, 1).textContent = "uploading ";
    cell(row, 1).appendChild(bar);
    var form = new FormData();
    form.append("file", file, file.name);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/upload");
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) { bar.max = event.total; bar.value = event.loaded; }
    });
    xhr.addEventListener("load", function () {
      var answer = null;
      try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = null; }
      if (xhr.status === 202 && answer && answer.jobs && answer.jobs[0]) {
        var job = answer.jobs[0];
        job.state = "queued";
        rows[job.job_id] = row;
        showJob(row, job);
        var list = loadMine().filter(function (item) { return item.job_id !== job.job_id; });
        list.unshift({ job_id: job.job_id, file: job.file, state: "queued" });
        saveMine(list);
        refreshMine();
      } else {
        cell(row, 1).textContent = "not uploaded";
        cell(row, 2).textContent = (answer && answer.error) || ("HTTP " + xhr.status);
      }
    });
    xhr.addEventListener("error", function () {
      cell(row, 1).textContent = "not uploaded";
      cell(row, 2).textContent = "the connection failed";
    });
    xhr.send(form);
  }
  function uploadAll(files) {
    for (var i = 0; i < files.length; i++) uploadOne(files[i]);
  }

  var uploadForm = document.getElementById("upload-form");
  var input = document.getElementById("upload-input");
  var drop = document.getElementById("drop");
  if (uploadForm && input && mineTable) {
    drawMine();
    refreshMine();
    uploadForm.addEventListener("submit", function (event) {
      event.preventDefault();
      uploadAll(input.files);
      input.value = "";
    });
    input.addEventListener("change", function () {
      uploadAll(input.files);
      input.value = "";
    });
    ["dragenter", "dragover"].forEach(function (name) {
      document.addEventListener(name, function (event) {
        event.preventDefault();
        drop.className = "dragging";
      });
    });
    document.addEventListener("dragleave", function (event) {
      if (event.target === document.documentElement || event.target === drop) drop.className = "";
    });
    document.addEventListener("drop", function (event) {
      event.preventDefault();
      drop.className = "";
      if (event.dataTransfer && event.dataTransfer.files) uploadAll(event.dataTransfer.files);
    });
    document.getElementById("forget-mine").addEventListener("click", function () {
      saveMine([]);
      rows = {};
      while (mineTable.children.length > 1) mineTable.removeChild(mineTable.lastChild);
      mineBox.hidden = true;
    });
  }

  // Retry buttons: the form works without JavaScript; with it, no page load is needed.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("retry")) return;
    event.preventDefault();
    fetch(form.getAttribute("data-api"), { method: "POST" }).then(function () {
      var list = loadMine();
      list.forEach(function (item) { if (form.getAttribute("data-api").indexOf(item.job_id) >= 0) item.state = "queued"; });
      saveMine(list);
    });
  });

  var events = new EventSource("/api/events?changes=250");
  events.addEventListener("open", function () {
    state.textContent = "— live";
    // What changed between the page's load (or the last connection) and this connection has
    // no event: the live part is fetched once now.
    refresh();
  });
  events.addEventListener("error", function () { state.textContent = "— reconnecting…"; });
  events.addEventListener("changed", function () {
    if (pending) return;
    pending = true;
    setTimeout(refresh, Math.max(0, 250 - (Date.now() - last)));
  });
})();
