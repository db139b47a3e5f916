/* pvem console: live updates. Listens to /api/events (Server-Sent Events); while that stream is not
   open (endpoint missing, error, reconnecting) it polls GET /api/vms every 1.5 s instead, backing
   off on failures. Needs console.js (window.pvem). */
(function () {
  "use strict";
  var pvem = window.pvem;
  var page = document.body.getAttribute("data-page");
  var rows = document.getElementById("vm-rows");
  var template = document.getElementById("vm-row-template");
  var detail = document.getElementById("vm-detail");
  var detailId = detail ? detail.getAttribute("data-vm-id") : null;
  var state = document.getElementById("live-state");
  var known = {};  /* id -> VM, for the dashboard's counts */
  var POLL_MS = 1500, MAX_POLL_MS = 15000, CHART_POINTS = 120;

  function status(text) { if (state) { state.textContent = text; } }

  /* Events are numbered as they arrive, so a list fetched before an event cannot undo it. */
  var eventSeq = 0, lastEvent = {};

  function pushed(vm) { eventSeq += 1; lastEvent[vm.id] = eventSeq; applyVm(vm); }

  function applyVm(vm) {
    if (!vm || !vm.id) { return; }
    known[vm.id] = vm;
    if (rows && (!detailId || detailId === vm.id)) {
      var tr = rows.querySelector('tr[data-vm-id="' + vm.id + '"]');
      if (!tr && template && !detailId) {
        tr = template.content.firstElementChild.cloneNode(true);
        rows.appendChild(tr);
      }
      if (tr) { pvem.fillRow(tr, vm); }
      var empty = document.getElementById("vm-empty");
      if (empty) { empty.hidden = rows.children.length > 0; }
    }
    if (detailId === vm.id) { fillDetail(vm); }
    if (page === "dashboard") { recount(); }
  }

  function removeVm(id) {
    delete known[id];
    if (detailId === id) { pvem.say("This virtual machine has been deleted.", false); }
    if (rows && !detailId) {
      var tr = rows.querySelector('tr[data-vm-id="' + id + '"]');
      if (tr) { tr.remove(); }
      var empty = document.getElementById("vm-empty");
      if (empty) { empty.hidden = rows.children.length > 0; }
    }
    if (page === "dashboard") { recount(); }
  }

  function fillDetail(vm) {
    var scope = document.querySelector("main");
    ["node", "cpu_cores", "memory_mb", "disk_gb", "power_state", "status", "sync_status", "generation",
     "observed_generation", "last_error", "last_synced_at", "restart_pending", "reboot_required"].forEach(function (key) {
      scope.querySelectorAll('dd[data-field="' + key + '"], dl [data-field="' + key + '"]').forEach(function (el) {
        el.textContent = vm[key] === null || vm[key] === undefined ? "" : String(vm[key]);
      });
    });
    scope.querySelectorAll('dd[data-field="ip_addresses"]').forEach(function (el) { el.textContent = pvem.ipText(vm) || "–"; });
    refreshChildren(vm.id);
  }

  /* Snapshot and rule sync badges on a VM's page follow their VM's events. */
  function refreshChildren(id) {
    [["snapshots", "data-snapshot-id"], ["firewall", "data-rule-id"]].forEach(function (pair) {
      pvem.api("GET", "/api/vms/" + id + "/" + pair[0]).then(function (r) {
        if (!r.ok) { return; }
        var seen = {};
        r.body.data.forEach(function (item) {
          seen[item.id] = true;
          var tr = document.querySelector("tr[" + pair[1] + '="' + item.id + '"]');
          if (tr) { pvem.setField(tr, "sync_status", item.sync_status); pvem.setField(tr, "last_error", item.last_error); }
        });
        document.querySelectorAll("tr[" + pair[1] + "]").forEach(function (tr) {
          if (!seen[tr.getAttribute(pair[1])]) { pvem.setField(tr, "sync_status", "deleted"); }
        });
      });
    });
  }

  function recount() {
    var counts = {}, total = 0, failing = [];
    Object.keys(known).forEach(function (id) {
      var vm = known[id];
      counts[vm.sync_status] = (counts[vm.sync_status] || 0) + 1;
      total += 1;
      if (vm.last_error) { failing.push(vm); }
    });
    document.querySelectorAll("[data-count]").forEach(function (el) {
      var key = el.getAttribute("data-count");
      el.textContent = String(key === "total" ? total : (counts[key] || 0));
    });
    var list = document.getElementById("latest-errors");
    if (!list) { return; }
    list.textContent = "";
    failing.sort(function (a, b) { return (b.updated_at || "").localeCompare(a.updated_at || ""); });
    failing.slice(0, 10).forEach(function (vm) {
      var li = document.createElement("li"), a = document.createElement("a"), span = document.createElement("span");
      a.href = "/vms/" + vm.id; a.textContent = vm.name;
      span.className = "row-error"; span.textContent = vm.last_error;
      li.appendChild(a); li.appendChild(document.createTextNode(": ")); li.appendChild(span);
      list.appendChild(li);
    });
    if (!failing.length) {
      var none = document.createElement("li"); none.className = "empty"; none.textContent = "No errors."; list.appendChild(none);
    }
  }

  function fmt(value) { var n = Number(value); return isNaN(n) ? "–" : n.toFixed(1); }

  function applyStats(sample) {
    if (!sample) { return; }
    document.querySelectorAll("[data-stat]").forEach(function (el) {
      var key = el.getAttribute("data-stat"), value = sample[key];
      if (value === undefined) { return; }
      el.textContent = typeof value === "number" ? fmt(value) : String(value);
    });
    document.querySelectorAll("figure[data-chart]").forEach(function (fig) {
      var key = fig.getAttribute("data-chart"), values = JSON.parse(fig.getAttribute("data-values") || "[]");
      if (fig.getAttribute("data-last") === sample.timestamp) { return; }
      fig.setAttribute("data-last", sample.timestamp);
      values.push(Number(sample[key]) || 0);
      values = values.slice(-CHART_POINTS);
      fig.setAttribute("data-values", JSON.stringify(values));
      drawChart(fig, values);
    });
  }

  function drawChart(fig, values) {
    var svg = fig.querySelector("svg"), line = fig.querySelector("polyline");
    var box = svg.viewBox.baseVal, w = box.width, h = box.height;
    var fixed = parseFloat(fig.getAttribute("data-max"));
    var top = isNaN(fixed) ? Math.max.apply(null, values.concat([1])) : fixed;
    var step = w / Math.max(values.length - 1, 1);
    line.setAttribute("points", values.map(function (v, i) {
      return (i * step).toFixed(1) + "," + (h - Math.min(v, top) / top * h).toFixed(1);
    }).join(" "));
    var last = fig.querySelector("[data-chart-last]");
    if (last) { last.textContent = fmt(values[values.length - 1]); }
  }

  /* --- the polling fallback ----------------------------------------------------------------------- */
  var source = null, delay = POLL_MS, timer = null, ticks = 0, wasOpen = false, droppedAt = 0;
  var GRACE_MS = 5000;  /* a stream that was open and is reconnecting gets this long before polling */

  function streamOpen() {
    if (!source) { return false; }
    if (source.readyState === 1) { return true; }
    return source.readyState === 0 && wasOpen && Date.now() - droppedAt < GRACE_MS;
  }

  function fetchList() {
    var since = eventSeq;
    return pvem.api("GET", "/api/vms").then(function (r) {
      if (r.ok) { reconcile(r.body.data, since); }
      return r;
    });
  }

  /* Bring the page in line with a full list fetched when eventSeq was `since`. */
  function reconcile(list, since) {
    var seen = {};
    function fresh(id) { return !(lastEvent[id] > since); }
    list.forEach(function (vm) { seen[vm.id] = true; if (fresh(vm.id)) { applyVm(vm); } });
    Object.keys(known).forEach(function (id) { if (!seen[id] && fresh(id)) { removeVm(id); } });
    if (rows && !detailId) {
      rows.querySelectorAll("tr[data-vm-id]").forEach(function (tr) {
        var id = tr.getAttribute("data-vm-id");
        if (!seen[id] && fresh(id)) { removeVm(id); }
      });
    }
    if (detailId && !seen[detailId] && fresh(detailId)) { removeVm(detailId); }
  }

  function poll() {
    if (streamOpen() || document.hidden) { schedule(); return; }
    ticks += 1;
    fetchList().then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      delay = POLL_MS;
      status("Updating every " + (POLL_MS / 1000) + " s");
      if (page === "dashboard" && ticks % 4 === 1) {
        return pvem.api("GET", "/api/stats/system").then(function (s) { if (s.ok) { applyStats(s.body.data); } });
      }
    }).catch(function () {
      delay = Math.min(delay * 2, MAX_POLL_MS);
      status("Connection problem; retrying in " + Math.round(delay / 1000) + " s");
    }).then(schedule);
  }

  function schedule() { clearTimeout(timer); timer = setTimeout(poll, delay); }

  function listen() {
    if (!window.EventSource) { return; }
    source = new EventSource("/api/events");
    source.addEventListener("open", function () {
      wasOpen = true;
      status("Live");
      fetchList();  /* whatever changed before the stream opened */
    });
    source.addEventListener("vm", function (e) { pushed(JSON.parse(e.data)); });
    source.addEventListener("vm_deleted", function (e) {
      var id = JSON.parse(e.data).id;
      eventSeq += 1; lastEvent[id] = eventSeq; removeVm(id);
    });
    source.addEventListener("stats", function (e) { applyStats(JSON.parse(e.data)); });
    source.addEventListener("error", function () {
      droppedAt = Date.now();
      status(source.readyState === 2 ? "Live stream unavailable; polling" : "Reconnecting");
    });
  }

  document.addEventListener("pvem:vm", function (e) { pushed(e.detail); });  /* an action's answer is news too */
  if (page === "dashboard") {
    pvem.api("GET", "/api/vms").then(function (r) { if (r.ok) { r.body.data.forEach(function (vm) { known[vm.id] = vm; }); recount(); } });
  }
  listen();
  schedule();
})();
