// eAuth console behaviour. Loaded from 'self' (CSP forbids inline script): confirmations, bulk
// enrolment progress, seal image preview, auto-refreshing fragments.
(function () {
  "use strict";

  // <button data-confirm="…"> asks before submitting its form.
  document.addEventListener("submit", function (ev) {
    var button = ev.submitter;
    var message = (button && button.getAttribute("data-confirm")) || ev.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { ev.preventDefault(); }
  });

  // <input type=file data-preview="imgId">: show the chosen image before uploading.
  document.querySelectorAll("input[type=file][data-preview]").forEach(function (input) {
    input.addEventListener("change", function () {
      var img = document.getElementById(input.getAttribute("data-preview"));
      if (!img || !input.files || !input.files[0]) { return; }
      var reader = new FileReader();
      reader.onload = function () { img.src = reader.result; img.hidden = false; };
      reader.readAsDataURL(input.files[0]);
    });
  });

  // <input type=file data-fill="textareaId">: load a PEM file into a textarea (CSR paste or upload).
  document.querySelectorAll("input[type=file][data-fill]").forEach(function (input) {
    input.addEventListener("change", function () {
      var area = document.getElementById(input.getAttribute("data-fill"));
      if (!area || !input.files || !input.files[0]) { return; }
      input.files[0].text().then(function (text) { if (text.indexOf("-----BEGIN") >= 0) { area.value = text; } });
    });
  });

  // <div data-progress-url="…">: poll a bulk job's JSON progress until it finishes.
  document.querySelectorAll("[data-progress-url]").forEach(function (box) {
    var url = box.getAttribute("data-progress-url");
    var bar = box.querySelector("progress");
    var label = box.querySelector("[data-progress-label]");
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (job) {
          if (bar) { bar.max = Math.max(job.total, 1); bar.value = job.processed; }
          if (label) { label.textContent = job.processed + " / " + job.total + (job.failed ? " (" + job.failed + " ✗)" : ""); }
          if (job.state === "finished" || job.state === "failed") { window.location.reload(); }
          else { window.setTimeout(tick, 1000); }
        })
        .catch(function () { window.setTimeout(tick, 3000); });
    }
    if (box.getAttribute("data-done") !== "true") { tick(); }
  });
})();
