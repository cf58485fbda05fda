(function () {
  "use strict";
  // The page holds no state of its own beyond the last view the server sent: every button
  // posts to the server with the version it saw, and every answer is a fresh view.
  var view = null, advice = null, busy = false, coachHint = "";
  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "className") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function showError(message) {
    var box = $("error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function request(method, path, body) {
    var options = {method: method, headers: {"Content-Type": "application/json"}};
    if (body !== undefined) options.body = JSON.stringify(body);
    return fetch(path, options).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) {
          var error = new Error(data.error || response.statusText);
          error.status = response.status;
          throw error;
        }
        return data;
      });
    });
  }

  function act(path, body) {
    if (!view || busy) return Promise.resolve();
    busy = true;
    body = Object.assign({version: view.version}, body || {});
    return request("POST", "/api/sessions/" + view.session + path, body)
      .then(function (data) { showError(""); render(data.view || data); return data; })
      .catch(function (error) {
        showError(error.message);
        if (error.status === 409) return load(view.session);
      })
      .finally(function () { busy = false; });
  }

  function apply(action) { return act("/apply", {action: action}); }
  function go(step) {
    if (!view) return;
    step = Math.max(0, Math.min(view.last, step));
    if (step !== view.step) act("/goto", {step: step});
  }

  function load(id) {
    return request("GET", "/api/sessions/" + id).then(render).catch(function (e) { showError(e.message); });
  }

  function follow() {
    // Long poll: the server answers when the session changes (another tab, a tour's setup).
    if (!view) { setTimeout(follow, 500); return; }
    var id = view.session;
    request("GET", "/api/sessions/" + id + "/wait?version=" + view.version)
      .then(function (data) { if (view && data.session === view.session && data.version !== view.version) render(data); })
      .catch(function () {})
      .finally(function () { setTimeout(follow, 50); });
  }

  // -- drawing the view ---------------------------------------------------------------------

  function render(data) {
    if (view && data.session === view.session && data.step !== view.step) advice = null;
    if (view && data.session !== view.session) advice = null;
    view = data;
    document.body.dataset.version = String(data.version);
    document.body.dataset.step = String(data.step);
    document.body.dataset.session = data.session;
    if (params.get("session") !== data.session) {
      params.set("session", data.session);
      params.delete("tour");
      history.replaceState(null, "", "?" + params.toString());
    }
    $("title").textContent = data.title;
    $("summary").textContent = data.algorithm.summary;
    $("algorithm-badge").textContent = "algorithm: " + data.algorithm.name +
      (data.config && data.config.variant && data.config.variant !== "correct" ? " (" + data.config.variant + ")" : "");
    showConfig(data);
    $("slider").max = String(data.last);
    $("slider").value = String(data.step);
    $("step-label").textContent = "step " + data.step + " / " + data.last;
    $("back").disabled = data.step === 0;
    $("first").disabled = data.step === 0;
    $("forward").disabled = data.step >= data.last;
    $("last").disabled = data.step >= data.last;
    var liveRun = data.kind === "live";
    ["fork", "discard", "coach-button"].forEach(function (id) { $(id).disabled = !liveRun; });
    $("export").href = "/api/sessions/" + data.session + "/export";
    renderBranches(data);
    renderNodes(data);
    renderMessages(data);
    renderActions(data);
    renderTimeline(data);
    renderTour(data);
    renderCoach();
    $("diagram").innerHTML = data.svg;
    pinHeads();
    var fresh = liveRun && !data.tour && data.last === 0;
    $("start-here").hidden = !fresh;
    var firstPropose = document.querySelector('#nodes button[data-action^="propose:"]');
    if (fresh && firstPropose) firstPropose.classList.add("cue");
    var story = data.story ? data.story : "";
    if (story && !$("story")) $("diagram").insertAdjacentElement("beforebegin", el("p", {id: "story", text: story}));
  }

  var catalogLoaded = null;

  function showConfig(data) {
    // The header's "new run" form shows what this session runs (a tour's algorithm too).
    if (!data.config || !catalogLoaded) return;
    var select = $("new-algorithm");
    if (select.value !== data.config.algorithm) { select.value = data.config.algorithm; select.onchange(); }
    $("new-nodes").value = String(data.config.nodes);
    $("new-values").value = String(data.config.values);
    $("new-variant").value = data.config.variant || "correct";
  }

  function pinHeads() {
    // The lifelines' names stay in view while the diagram panel scrolls: a sticky row of
    // labels over the SVG, each where its lifeline is drawn.
    var box = $("diagram"), old = $("diagram-heads");
    if (old) old.remove();
    var heads = Array.prototype.filter.call(box.querySelectorAll("svg text.h"), function (t) {
      return /^node \d+$/.test(t.textContent);
    });
    if (!heads.length) return;
    var row = el("div", {id: "diagram-heads", className: "diagram-heads", "aria-hidden": "true"});
    row.style.top = document.querySelector(".controls").offsetHeight + "px";  // under the bar
    var left = box.getBoundingClientRect().left, seen = {};
    heads.forEach(function (t) {
      if (seen[t.textContent]) return;  // the first (top) header of each lifeline
      seen[t.textContent] = true;
      var r = t.getBoundingClientRect();
      var label = el("span", {text: t.textContent});
      label.style.left = (r.left + r.width / 2 - left + box.scrollLeft) + "px";
      row.appendChild(label);
    });
    box.insertBefore(row, box.firstChild);
  }

  window.addEventListener("resize", function () { if (view) pinHeads(); });

  function renderBranches(data) {
    var select = $("branches");
    select.innerHTML = "";
    data.branches.forEach(function (b) {
      var text = "#" + (b.index + 1) + " (" + b.steps + " steps" + (b.index ? ", from step " + b.forked_at : "") + ")";
      select.appendChild(el("option", {value: String(b.index), text: text}));
    });
    select.value = String(data.branch);
    $("discard").disabled = data.branches.length < 2;
  }

  function nodeButtons(data, node) {
    var box = el("div", {className: "buttons"});
    data.actions.forEach(function (a) {
      if (a.node !== node) return;
      var button = el("button", {type: "button", "data-action": a.id, text: a.label.replace(" at " + node, "").replace(node + "'s ", "")});
      button.title = a.label;
      button.onclick = function () { apply(a.id); };
      box.appendChild(button);
    });
    return box;
  }

  function renderNodes(data) {
    var box = $("nodes");
    box.innerHTML = "";
    data.nodes.forEach(function (n) {
      var card = el("div", {className: "node" + (n.up ? "" : " down"), id: "node-" + n.id, "data-up": String(n.up)});
      card.appendChild(el("h3", {text: "node " + n.id + (n.up ? "" : " (crashed)")}));
      n.rows.forEach(function (row) {
        card.appendChild(el("div", {className: "row", "data-key": row[0]}, [
          el("span", {className: "k", text: row[0]}), el("span", {className: "v", text: row[1]})]));
      });
      card.appendChild(nodeButtons(data, n.id));
      box.appendChild(card);
    });
    var safety = $("safety");
    safety.innerHTML = "";
    Object.keys(data.safety).forEach(function (p) {
      var bad = data.safety[p] === "violated";
      safety.appendChild(el("div", {id: "safety-" + p, className: bad ? "bad" : "", text: p + ": " + (bad ? "VIOLATED" : "holds so far")}));
    });
  }

  function criticalIds() {
    var ids = {};
    if (advice && advice.step === view.step) advice.critical.forEach(function (c) { ids[c.message] = c; });
    return ids;
  }

  function renderMessages(data) {
    var list = $("messages");
    list.innerHTML = "";
    var critical = criticalIds();
    if (!data.messages.length) list.appendChild(el("li", {className: "empty", text: "no message in flight"}));
    data.messages.forEach(function (m) {
      var item = el("li", {"data-message": String(m.id), className: (m.deliverable ? "" : "undeliverable") + (critical[m.id] ? " critical" : "")});
      item.style.borderLeftColor = "var(--family-" + m.family + ", #6b7280)";
      item.appendChild(el("span", {className: "muted", text: "#" + m.id}));
      item.appendChild(el("span", {text: m.src + " \u2192 " + m.dst}));
      item.appendChild(el("span", {className: "msg", text: m.msg}));
      [["deliver", "deliver"], ["drop", "drop"], ["duplicate", "deliver, keep a copy"]].forEach(function (pair) {
        var id = m.actions[pair[0]];
        if (!id) return;
        var button = el("button", {type: "button", "data-action": id, text: pair[1]});
        button.onclick = function () { apply(id); };
        item.appendChild(button);
      });
      if (critical[m.id]) {
        var c = critical[m.id];
        item.appendChild(el("span", {className: "bad", text: "critical: delivering fixes the outcome (" + c.after.join(", ") + ")" +
          (c.fatal ? "; crashing node " + c.receiver + " instead leaves the cluster stuck" : "")}));
      }
      if (!m.deliverable && data.kind === "live") item.appendChild(el("span", {className: "muted", text: "(cannot arrive now)"}));
      list.appendChild(item);
    });
  }

  function renderActions(data) {
    var box = $("actions");
    box.innerHTML = "";
    data.actions.forEach(function (a) {
      if (a.node && ["timeout", "crash", "restart", "propose"].indexOf(a.kind) >= 0) return;  // on the node cards
      var button = el("button", {type: "button", "data-action": a.id, text: a.label});
      button.onclick = function () { apply(a.id); };
      box.appendChild(button);
    });
  }

  function renderTimeline(data) {
    var list = $("timeline");
    list.innerHTML = "";
    list.appendChild(el("li", {value: "0", "data-step": "0", className: data.step === 0 ? "current" : "", text: "the start"}));
    data.timeline.forEach(function (t) {
      var cls = t.step === data.step ? "current" : (t.step > data.step ? "future" : "");
      list.appendChild(el("li", {value: String(t.step), "data-step": String(t.step), className: cls, text: t.text}));
    });
    var current = list.querySelector(".current");
    if (current) list.scrollTop = Math.max(0, current.offsetTop - list.clientHeight / 2);
  }

  function renderTour(data) {
    var box = $("tour");
    if (!data.tour) { box.hidden = true; return; }
    var t = data.tour;
    box.hidden = false;
    $("tour-title").textContent = t.title;
    $("tour-chapter").textContent = t.chapter;
    $("tour-progress").textContent = "part " + (t.stage + 1) + " of " + t.stages;
    $("tour-say").textContent = t.say;
    $("tour-task").textContent = t.finished ? "" : t.task;
    $("tour-finished").hidden = !t.finished;
    $("tour-next-chapter").hidden = !t.next;
    if (t.next) {
      $("tour-next-link").textContent = t.next.title + " (" + t.next.chapter + ")";
      $("tour-next-link").href = "?tour=" + encodeURIComponent(t.next.key);
    }
    $("tour-show").hidden = !t.can_show || t.finished;
    $("tour-next").hidden = !t.waits_for_next;
    box.dataset.stage = String(t.stage);
    box.dataset.finished = String(t.finished);
  }

  var BEYOND = "(beyond the ballot bound)";

  function steps(n) { return n + (n === 1 ? " step" : " steps"); }

  function coverageText(a) {
    var seconds = a.elapsed_s ? ", " + a.elapsed_s.toFixed(1) + " s" : ", remembered";
    if (a.complete) return "Every continuation explored: " + a.states.toLocaleString() + " states" + seconds + ".";
    var why = {"time limit": "its time was up", cancelled: "you cancelled it", "state limit": "its memory was full"}[a.stopped] || a.stopped;
    return "Every run of up to " + steps(a.depth) + " from here checked (" + a.states.toLocaleString() +
      " states" + seconds + "); then " + why + ".";
  }

  function verdictText(p, v, a) {
    if (v.status === "holds") return p + ": holds in every continuation";
    if (v.status === "violated") return p + ": VIOLATED (" + v.detail + ")";
    if (a.stopped === "cancelled" && p === "termination" && !a.depth) return p + ": not judged (cancelled)";
    var none = p === "termination" ? "not stuck" : "no violation";
    return p + ": " + none + " in any run of up to " + steps(a.depth) + "; unknown beyond";
  }

  function renderCoach() {
    var body = $("coach-body");
    if (!coachHint) coachHint = body.innerHTML;
    if (coachJob) { renderProgress(body); return; }
    if (!advice) { body.innerHTML = coachHint; return; }
    body.innerHTML = "";
    var stale = advice.step !== view.step;
    body.appendChild(el("p", {id: "coach-outlook", "data-outlook": advice.outlook, className: "outlook",
      text: (stale ? "(about step " + advice.step + ") " : "") + "From step " + advice.step + ": " + advice.summary}));
    body.appendChild(el("p", {id: "coach-coverage", className: "muted", "data-complete": String(advice.complete), text: coverageText(advice)}));
    if (!advice.complete && !stale) {
      var longer = el("button", {type: "button", id: "coach-longer", text: "think longer (" + LONGER_S + " s)"});
      longer.onclick = function () { coach(LONGER_S); };
      body.appendChild(longer);
    }
    ["agreement", "validity", "termination"].forEach(function (p) {
      var v = advice.verdicts[p];
      if (!v) return;
      var bad = v.status === "violated";
      body.appendChild(el("p", {"data-verdict": p, "data-status": v.status, className: "verdict" + (bad ? " bad" : ""),
        title: v.detail, text: verdictText(p, v, advice)}));
      var path = advice.paths[p];
      if (path && path.length) {
        var list = el("ol", {className: "coach-path", "data-property": p});
        path.forEach(function (s) { list.appendChild(el("li", {text: s.text})); });
        body.appendChild(list);
        var play = el("button", {type: "button", "data-play": p, text: "show me how this breaks (" + steps(path.length) + ")"});
        play.disabled = stale;
        play.onclick = function () { playPath(path); };
        body.appendChild(play);
      }
    });
    var ft = advice.fault_tolerance;
    body.appendChild(el("p", {id: "coach-tolerance", "data-status": ft.status, className: "verdict" + (ft.status === "violated" ? " bad" : ""),
      title: ft.detail, text: "fault tolerance from here: " + (ft.status === "unknown" ? "not settled (unknown)" : ft.status + " (" + ft.detail + ")")}));
    if (advice.critical.length) {
      body.appendChild(el("p", {text: "Critical messages (FLP): delivering any of these fixes the outcome; they are marked in the network list."}));
    }
    if (advice.valence.indexOf(BEYOND) >= 0) {
      body.appendChild(el("p", {className: "muted", text: "Runs in which a proposer needs more than " + view.config.ballots +
        " ballots are followed no further (the run's ballot bound)."}));
    }
    if (advice.reduced_by) body.appendChild(el("p", {className: "muted", text: "Searched once per arrangement: " + advice.reduced_by + "."}));
    if (advice.command) body.appendChild(el("p", {className: "muted", text: "The same search from the command line: " + advice.command}));
  }

  function renderProgress(body) {
    var job = coachJob;
    body.innerHTML = "";
    var text = job.waiting ? "waiting for another search to finish..." :
      "thinking: " + (job.states || 0).toLocaleString() + " states, every run of up to " + steps(job.depth || 0) +
      " checked, " + (job.elapsed_s || 0).toFixed(1) + " s of " + job.seconds + " s";
    body.appendChild(el("p", {id: "coach-progress", text: job.cancelling ? "stopping..." : text}));
    var bar = el("progress", {id: "coach-bar", max: String(job.seconds), value: String(Math.min(job.seconds, job.elapsed_s || 0))});
    body.appendChild(bar);
    var stop = el("button", {type: "button", id: "coach-cancel", text: "stop and answer now"});
    stop.onclick = cancelCoach;
    body.appendChild(stop);
  }

  function playPath(path) {
    var specs = path.map(function (s) {
      var spec = {kind: s.kind};
      ["node", "value", "src", "dst", "msg", "links"].forEach(function (k) { if (s[k] !== undefined) spec[k] = s[k]; });
      return spec;
    });
    var start = view.step;
    act("/path", {path: specs}).then(function () { if (view) go(start + 1); });
  }

  var LONGER_S = 20, coachJob = null, coachPoll = null;

  function pollCoach(session) {
    request("GET", "/api/sessions/" + session + "/coach/progress").then(function (job) {
      if (!coachJob || !job.running) return;
      coachJob = job;
      renderCoach();
    }).catch(function () {}).finally(function () {
      if (coachJob) coachPoll = setTimeout(function () { pollCoach(session); }, 250);
    });
  }

  function cancelCoach() {
    if (!view || !coachJob) return;
    coachJob.cancelling = true;
    renderCoach();
    request("POST", "/api/sessions/" + view.session + "/coach/cancel", {}).catch(function (e) { showError(e.message); });
  }

  function coach(seconds) {
    if (!view || view.kind !== "live" || busy) return;
    busy = true;
    var session = view.session, body = {version: view.version};
    if (seconds) body.seconds = seconds;
    coachJob = {running: true, waiting: false, seconds: seconds || 3, elapsed_s: 0, states: 0, depth: 0};
    $("coach-button").textContent = "thinking...";
    $("coach-button").disabled = true;
    renderCoach();
    coachPoll = setTimeout(function () { pollCoach(session); }, 200);
    request("POST", "/api/sessions/" + session + "/coach", body)
      .then(function (data) { coachJob = null; advice = data.advice; showError(""); render(data.view); })
      .catch(function (error) { coachJob = null; showError(error.message); renderCoach(); })
      .finally(function () {
        coachJob = null; clearTimeout(coachPoll); busy = false;
        $("coach-button").textContent = "ask the coach";
        $("coach-button").disabled = !view || view.kind !== "live";
      });
  }

  // -- controls -----------------------------------------------------------------------------

  $("first").onclick = function () { go(0); };
  $("back").onclick = function () { if (view) go(view.step - 1); };
  $("forward").onclick = function () { if (view) go(view.step + 1); };
  $("last").onclick = function () { if (view) go(view.last); };
  $("slider").onchange = function () { go(+$("slider").value); };
  $("fork").onclick = function () { act("/fork"); };
  $("branches").onchange = function () { act("/switch", {branch: +$("branches").value}); };
  $("discard").onclick = function () { if (view) act("/discard", {branch: view.branch}); };
  $("coach-button").onclick = function () { coach(); };
  $("tour-next").onclick = function () { act("/tour/next"); };
  $("tour-show").onclick = function () {
    var t = view && view.tour;
    if (t && t.coach_at !== null && t.coach_at !== undefined) {  // "show me" is a question
      var ask = function () { coach(); };
      if (view.step !== t.coach_at) act("/goto", {step: t.coach_at}).then(ask); else ask();
      return;
    }
    act("/tour/show");
  };
  $("timeline").onclick = function (e) {
    var li = e.target.closest && e.target.closest("li[data-step]");
    if (li) go(+li.dataset.step);
  };
  $("import").onchange = function () {
    var file = $("import").files[0];
    if (!file) return;
    file.text().then(function (text) {
      return fetch("/api/import", {method: "POST", headers: {"Content-Type": "application/json"}, body: text})
        .then(function (r) { return r.json().then(function (d) { if (!r.ok) throw new Error(d.error); return d; }); });
    }).then(function (data) { advice = null; showError(""); render(data); })
      .catch(function (error) { showError("import: " + error.message); });
  };
  $("new-form").onsubmit = function (e) {
    e.preventDefault();
    var config = {algorithm: $("new-algorithm").value, nodes: +$("new-nodes").value,
                  values: +$("new-values").value, variant: $("new-variant").value || "correct"};
    request("POST", "/api/sessions", {config: config})
      .then(function (data) { advice = null; showError(""); render(data); })
      .catch(function (error) { showError(error.message); });
  };
  $("tour-pick").onchange = function () {
    var key = $("tour-pick").value;
    if (!key) return;
    request("POST", "/api/sessions", {tour: key})
      .then(function (data) { advice = null; showError(""); render(data); })
      .catch(function (error) { showError(error.message); });
  };
  document.addEventListener("keydown", function (e) {
    var tag = e.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || e.altKey || e.ctrlKey || e.metaKey || !view) return;
    var handled = true;
    if (e.key === "ArrowLeft") go(view.step - 1);
    else if (e.key === "ArrowRight") go(view.step + 1);
    else if (e.key === "Home") go(0);
    else if (e.key === "End") go(view.last);
    else if (e.key === "c") coach();
    else if (e.key === "Escape" && coachJob) cancelCoach();
    else if (e.key === "f") act("/fork");
    else if (e.key === "t") { var tick = view.actions.filter(function (a) { return a.kind === "tick"; })[0]; if (tick) apply(tick.id); }
    else if (e.key === "d") { var m = view.messages.filter(function (x) { return x.actions.deliver; })[0]; if (m) apply(m.actions.deliver); }
    else if (e.key === "?") alert(document.querySelector("footer").textContent);
    else handled = false;
    if (handled) e.preventDefault();
  });

  // -- start --------------------------------------------------------------------------------

  request("GET", "/api/catalog").then(function (catalog) {
    var algorithmSelect = $("new-algorithm"), variantSelect = $("new-variant");
    function variants() {
      var found = catalog.algorithms.filter(function (a) { return a.name === algorithmSelect.value; })[0];
      variantSelect.innerHTML = "";
      (found ? found.variants : ["correct"]).forEach(function (v) { variantSelect.appendChild(el("option", {value: v, text: v})); });
    }
    catalog.algorithms.forEach(function (a) { algorithmSelect.appendChild(el("option", {value: a.name, text: a.name})); });
    algorithmSelect.value = "paxos";
    algorithmSelect.onchange = variants;
    variants();
    catalog.tours.forEach(function (t) {
      $("tour-pick").appendChild(el("option", {value: t.key, text: t.title}));
      $("start-tour").appendChild(el("option", {value: t.key, text: t.chapter + ": " + t.title}));
    });
    catalogLoaded = catalog;
    if (view) showConfig(view);
  });
  $("start-tour").onchange = function () {
    var key = $("start-tour").value;
    if (key) location.search = "?tour=" + encodeURIComponent(key);
  };
  var start;
  if (params.get("session")) start = load(params.get("session"));
  else if (params.get("tour")) start = request("POST", "/api/sessions", {tour: params.get("tour")}).then(render);
  else start = request("POST", "/api/sessions", {config: {algorithm: params.get("algorithm") || "paxos"}}).then(render);
  Promise.resolve(start).catch(function (e) { showError(e.message); }).finally(follow);
})();
