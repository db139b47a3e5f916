/* pvem console: fetch-based actions and confirmations. Plain JavaScript, no dependencies.
   Every form also works without this file (it posts to the console and is redirected back). */
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  function api(method, path, body) {
    var init = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (method !== "GET") { init.headers["X-CSRF-Token"] = csrf; }
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (resp) {
      if (resp.status === 401) { window.location.assign("/login?next=" + encodeURIComponent(location.pathname)); }
      return resp.text().then(function (text) {
        var parsed = null;
        try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = { error: text }; }
        return { ok: resp.ok, status: resp.status, body: parsed };
      });
    });
  }

  function say(message, isError) {
    var box = document.getElementById("messages");
    if (!box) { return; }
    box.textContent = "";
    var p = document.createElement("p");
    p.className = isError ? "alert" : "notice";
    p.setAttribute("role", isError ? "alert" : "status");
    p.textContent = message;
    box.appendChild(p);
  }

  var APPLIES = { start: ["stopped"], stop: ["running", "paused"], restart: ["running"], pause: ["running"],
                  unpause: ["paused"] };

  function ipText(vm) {
    var v = vm.ip_addresses;
    if (!v) { return ""; }
    if (!Array.isArray(v) && typeof v === "object") {
      v = Object.keys(v).reduce(function (all, k) { return all.concat(v[k]); }, []);
    }
    if (!Array.isArray(v)) { return String(v); }
    return v.map(function (item) { return item && typeof item === "object" ? (item.address || JSON.stringify(item)) : String(item); }).join(", ");
  }

  function setField(scope, name, value) {
    scope.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) {
      el.textContent = value === null || value === undefined ? "" : String(value);
    });
  }

  /* Fill one VM's row (and, on its page, its fields) from the VM object the API answers. */
  function fillRow(tr, vm) {
    var deleting = vm.sync_status === "deleting";
    tr.setAttribute("data-vm-id", vm.id);
    tr.className = "sync-" + vm.sync_status;
    ["name", "vmid", "node", "power_state", "status", "sync_status", "last_error"].forEach(function (key) {
      setField(tr, key, vm[key]);
    });
    setField(tr, "sizes", vm.cpu_cores + " CPU · " + vm.memory_mb + " MB · " + vm.disk_gb + " GB");
    setField(tr, "ip_addresses", ipText(vm));
    var link = tr.querySelector('a[data-field="name"]');
    if (link) { link.setAttribute("href", "/vms/" + vm.id); }
    tr.querySelectorAll("form.vm-action").forEach(function (f) { f.setAttribute("action", "/vms/" + vm.id + "/action"); });
    tr.querySelectorAll("form.vm-delete").forEach(function (f) {
      f.setAttribute("action", "/vms/" + vm.id + "/delete");
      f.querySelector("button").hidden = deleting;
    });
    tr.querySelectorAll("form.vm-action button[name=action]").forEach(function (b) {
      b.hidden = deleting || APPLIES[b.value].indexOf(vm.power_state) < 0;
    });
    tr.querySelectorAll('input[name="csrf_token"]').forEach(function (i) { i.value = csrf; });
  }

  function rowOf(el) { return el.closest("tr[data-vm-id]"); }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); return; }
    var row = rowOf(form);
    if (!row) { return; }  /* other forms post normally */
    var id = row.getAttribute("data-vm-id");
    if (form.classList.contains("vm-action") && event.submitter) {
      event.preventDefault();
      var action = event.submitter.value, label = event.submitter.textContent;
      api("POST", "/api/vms/" + id + "/action", { action: action }).then(function (r) {
        if (r.ok) { fillRow(row, r.body.data); say(label + ": accepted for " + r.body.data.name, false); document.dispatchEvent(new CustomEvent("pvem:vm", { detail: r.body.data })); }
        else { say(label + ": " + (r.body && r.body.error || ("HTTP " + r.status)), true); }
      }).catch(function (e) { say(label + ": " + e, true); });
    } else if (form.classList.contains("vm-delete")) {
      event.preventDefault();
      api("DELETE", "/api/vms/" + id).then(function (r) {
        if (!r.ok) { say("Delete: " + (r.body && r.body.error || ("HTTP " + r.status)), true); return; }
        say("Deletion requested", false);
        if (document.body.getAttribute("data-page") === "vm") { window.location.assign("/vms?notice=Deletion+requested"); return; }
        return api("GET", "/api/vms/" + id).then(function (g) {
          if (g.ok) { fillRow(row, g.body.data); } else if (g.status === 404) { row.remove(); }
        });
      }).catch(function (e) { say("Delete: " + e, true); });
    }
  });

  window.pvem = { api: api, say: say, fillRow: fillRow, setField: setField, ipText: ipText, csrf: csrf };
})();
