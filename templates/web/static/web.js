// Progressive enhancement only: every form works without this file.
// 1. The timezone field starts with the browser's timezone on a fresh subscribe form.
// 2. The topics box shows, as you type, how many papers of the latest listing each line matches.
(function () {
  "use strict";
  var tz = document.getElementById("timezone");
  if (tz && tz.dataset.browserTimezone === "yes") {
    try {
      var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (zone) { tz.value = zone; }
    } catch (e) { /* keep UTC */ }
  }

  var box = document.querySelector("textarea[data-preview]");
  if (!box || !window.fetch) { return; }
  var out = document.getElementById(box.dataset.preview);
  var timer = null;
  var generation = 0;

  function queryOf(line) {
    var eq = line.indexOf("=");
    return (eq >= 0 ? line.slice(eq + 1) : line).trim();
  }

  function item(line, text) {
    var li = document.createElement("li");
    var strong = document.createElement("strong");
    strong.textContent = line;
    li.appendChild(strong);
    li.appendChild(document.createTextNode(text));
    return li;
  }

  function update() {
    var lines = box.value.split("\n").map(function (l) { return l.trim(); }).filter(Boolean).slice(0, 10);
    var mine = ++generation;
    Promise.all(lines.map(function (line) {
      var q = queryOf(line);
      if (!q) { return Promise.resolve(item(line, ": write a query after '='")); }
      return fetch(box.dataset.previewUrl + "?limit=3&q=" + encodeURIComponent(q), { headers: { Accept: "application/json" } })
        .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
        .then(function (res) {
          if (!res.ok) {
            var detail = res.body && res.body.detail;
            var msg = Array.isArray(detail) && detail.length ? detail[0].msg : "not a valid query";
            return item(line, ": " + msg);
          }
          var b = res.body;
          var titles = b.papers.map(function (p) { return p.title; }).join("; ");
          var hints = (b.hints || []).join(" ");
          return item(line, " would have matched " + b.count + " paper" + (b.count === 1 ? "" : "s") +
            " in the latest listing" + (titles ? ": " + titles : "") + (hints ? ". Note: " + hints : ""));
        })
        .catch(function () { return item(line, ": preview unavailable"); });
    })).then(function (items) {
      if (mine !== generation) { return; }
      var ul = document.createElement("ul");
      items.forEach(function (li) { ul.appendChild(li); });
      out.replaceChildren(ul);
    });
  }

  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(update, 300);
  });
  if (box.value.trim()) { update(); }
}());
