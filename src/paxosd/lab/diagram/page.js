(function () {
  "use strict";
  // Steps: [seq, y] per event in order. Step k shows the first k events; step 0 shows none.
  var FADE_AFTER_STEPS = 3;  // a delivered message fades once this many steps have passed
  var svg = document.querySelector("#pxd-diagram svg");
  var panel = document.getElementById("pxd-diagram");
  var list = document.getElementById("pxd-events");
  var steps = JSON.parse(document.getElementById("pxd-steps").textContent);
  var slider = document.getElementById("pxd-slider");
  var status = document.getElementById("pxd-status");
  var fade = document.getElementById("pxd-fade");
  var fit = document.getElementById("pxd-fit");
  var now = document.getElementById("pxd-now");
  var index = new Map(), items = new Map(), bySeq = new Map();
  steps.forEach(function (s, i) { if (!index.has(s[0])) index.set(s[0], i); });
  list.querySelectorAll("li[data-seq]").forEach(function (li) { items.set(+li.dataset.seq, li); });
  var els = Array.prototype.slice.call(svg.querySelectorAll(".ev[data-seq]"));
  function related(el) {
    var r = [+el.dataset.seq];
    if (el.dataset.from) el.dataset.from.split(" ").forEach(function (s) { r.push(+s); });
    return r;
  }
  els.forEach(function (el) {
    related(el).forEach(function (s) {
      if (!bySeq.has(s)) bySeq.set(s, []);
      bySeq.get(s).push(el);
    });
  });
  var lit = [], pinned = null;
  function light(seqs) {
    lit.forEach(function (n) { n.classList.remove("hl"); });
    lit = [];
    var all = new Set(seqs);
    seqs.forEach(function (s) {
      (bySeq.get(s) || []).forEach(function (el) {
        related(el).forEach(function (r) { all.add(r); });
      });
    });
    all.forEach(function (s) {
      (bySeq.get(s) || []).forEach(function (el) { el.classList.add("hl"); lit.push(el); });
      var li = items.get(s);
      if (li) { li.classList.add("hl"); lit.push(li); }
    });
    svg.classList.toggle("focus", seqs.length > 0);
  }
  function seqsOf(target) {
    var el = target.closest && target.closest("[data-seq]");
    if (!el) return null;
    return el.tagName.toLowerCase() === "li" ? [+el.dataset.seq] : related(el);
  }
  function reveal(li) {
    var box = list.parentNode, top = li.offsetTop - box.clientHeight / 2;
    box.scrollTo({top: Math.max(0, top)});
  }
  function follow(y) {
    // Keep the "now" line in view inside the diagram panel, whatever the zoom.
    var vb = svg.viewBox.baseVal, scale = vb && vb.height ? svg.clientHeight / vb.height : 1;
    var top = y * scale - panel.clientHeight / 2;
    panel.scrollTo({top: Math.max(0, top)});
  }
  function hover(e) { if (pinned) return; var s = seqsOf(e.target); light(s || []); }
  function leave() { if (!pinned) light([]); }
  svg.addEventListener("mouseover", hover);
  svg.addEventListener("mouseleave", leave);
  list.addEventListener("mouseover", hover);
  list.addEventListener("mouseleave", leave);
  svg.addEventListener("click", function (e) {
    var s = seqsOf(e.target);
    pinned = s; light(s || []);
    if (s && items.get(s[0])) reveal(items.get(s[0]));
  });
  list.addEventListener("click", function (e) {
    var s = seqsOf(e.target);
    if (!s) return;
    pinned = (pinned && pinned[0] === s[0]) ? null : s;
    light(pinned || s);
    var el = (bySeq.get(s[0]) || [])[0];
    if (el) el.scrollIntoView({block: "center", inline: "nearest"});
  });
  var cur = 0, timer = null;
  function show(k) {
    cur = Math.max(0, Math.min(steps.length, k));
    slider.value = cur;
    var fading = fade.checked;
    els.forEach(function (el) {
      var i = index.get(+el.dataset.seq), from = el.dataset.from;
      var sent = Infinity;
      if (from) from.split(" ").forEach(function (s) { sent = Math.min(sent, index.get(+s)); });
      el.classList.toggle("future", i >= cur && !(sent < cur));
      el.classList.toggle("pending", i >= cur && sent < cur);
      el.classList.toggle("past", fading && from !== undefined && i < cur - FADE_AFTER_STEPS);
    });
    items.forEach(function (li, s) {
      var i = index.get(s);
      li.classList.toggle("future", i >= cur);
      li.classList.toggle("current", i === cur - 1);
    });
    if (cur > 0) {
      var y = steps[cur - 1][1];
      now.setAttribute("transform", "translate(0," + y + ")");
      now.style.display = "";
      var li = items.get(steps[cur - 1][0]);
      var done = cur === steps.length ? " (the end)" : "";
      status.textContent = "step " + cur + " / " + steps.length + done + ": " +
        (li ? li.textContent : "");
      if (li) reveal(li);
      follow(y);
    } else {
      now.style.display = "none";
      status.textContent = "step 0 / " + steps.length + ": nothing has happened yet";
      panel.scrollTo({top: 0});
    }
    document.body.dataset.step = String(cur);
  }
  function stop() { if (timer) { clearInterval(timer); timer = null; play.textContent = "play"; } }
  var play = document.getElementById("pxd-play");
  document.getElementById("pxd-first").onclick = function () { stop(); show(0); };
  document.getElementById("pxd-back").onclick = function () { stop(); show(cur - 1); };
  document.getElementById("pxd-fwd").onclick = function () { stop(); show(cur + 1); };
  document.getElementById("pxd-last").onclick = function () { stop(); show(steps.length); };
  slider.oninput = function () { stop(); show(+slider.value); };
  fade.onchange = function () { show(cur); };
  fit.onchange = function () { panel.classList.toggle("fit", fit.checked); show(cur); };
  play.onclick = function () {
    if (timer) { stop(); return; }
    if (cur >= steps.length) show(0);
    play.textContent = "pause";
    timer = setInterval(function () { if (cur >= steps.length) stop(); else show(cur + 1); }, 600);
  };
  document.addEventListener("keydown", function (e) {
    if (e.target.tagName === "INPUT" || e.altKey || e.ctrlKey || e.metaKey) return;
    var keys = {ArrowLeft: -1, ArrowRight: 1};
    if (e.key in keys) { stop(); show(cur + keys[e.key]); e.preventDefault(); }
    else if (e.key === "Home") { stop(); show(0); e.preventDefault(); }
    else if (e.key === "End") { stop(); show(steps.length); e.preventDefault(); }
    else if (e.key === " ") { play.onclick(); e.preventDefault(); }
  });
  show(0);
})();
