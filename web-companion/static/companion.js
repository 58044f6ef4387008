// ResolutionFlow companion: live queue over Server-Sent Events, Claim without reloading, and
// keyboard shortcuts. Pages work without this script; it only makes them live.
(function () {
  "use strict";

  var queue = document.getElementById("queue");
  var toast = document.getElementById("toast");
  var unread = 0;
  var baseTitle = document.title;

  function say(text) {
    if (toast) { toast.textContent = text; }
  }

  function claim(form) {
    var id = form.getAttribute("data-handoff");
    var button = form.querySelector("button");
    if (button) { button.disabled = true; }
    fetch("/api/handoffs/" + encodeURIComponent(id) + "/claim", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.json();
    }).then(function (result) {
      say(result.message);
      if (result.outcome === "won" && !queue) { window.location.reload(); }
      if (result.outcome !== "won" && button) { button.disabled = false; }
      if (result.outcome === "already_claimed") { markClaimed(id, result.claimed_by); }
    }).catch(function () {
      say("The claim could not be sent. Check your connection and try again.");
      if (button) { button.disabled = false; }
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.classList && form.classList.contains("claim-form")) {
      event.preventDefault();
      claim(form);
    }
  });

  // Esc leaves the handoff context (back to the queue, or back in history).
  document.addEventListener("keydown", function (event) {
    var handoff = document.getElementById("handoff");
    if (event.key === "Escape" && handoff) {
      var back = handoff.getAttribute("data-back");
      if (back) { window.location.href = back; } else { window.history.back(); }
    }
  });

  if (!queue) { return; }

  function waitingCount() {
    return queue.querySelectorAll("article.escalation:not(.claimed):not(.closed)").length;
  }

  function refreshCount() {
    var n = waitingCount();
    var badge = document.getElementById("waiting");
    if (badge) { badge.textContent = n + " waiting"; }
    var heading = document.getElementById("queue-heading");
    if (heading) { heading.setAttribute("aria-label", n + " escalations awaiting pickup"); }
  }

  function card(summary) {
    var article = document.createElement("article");
    article.className = "card escalation arriving";
    article.id = "h-" + summary.handoff_id;
    article.setAttribute("data-handoff", summary.handoff_id);
    article.tabIndex = -1;
    var h2 = document.createElement("h2");
    var a = document.createElement("a");
    a.href = "/handoffs/" + summary.handoff_id;
    a.textContent = summary.problem;
    h2.appendChild(a);
    var meta = document.createElement("p");
    meta.className = "meta muted";
    meta.textContent = summary.priority + " · from " + summary.requested_by + " · " + summary.steps_tried +
      " steps tried · likely cause (" + summary.confidence + "%): " + summary.likely_cause;
    var status = document.createElement("p");
    status.className = "status";
    status.textContent = "Waiting for a senior";
    article.appendChild(h2);
    article.appendChild(meta);
    article.appendChild(status);
    if (queue.getAttribute("data-can-claim") === "true") {
      var form = document.createElement("form");
      form.method = "post";
      form.action = "/handoffs/" + summary.handoff_id + "/claim";
      form.className = "claim-form";
      form.setAttribute("data-handoff", summary.handoff_id);
      var button = document.createElement("button");
      button.type = "submit";
      button.className = "primary";
      button.textContent = "Claim";
      form.appendChild(button);
      article.appendChild(form);
    }
    return article;
  }

  function markClaimed(id, by) {
    var article = document.getElementById("h-" + id);
    if (!article) { return; }
    article.classList.add("claimed");
    var status = article.querySelector(".status");
    if (status) { status.textContent = "Claimed by " + by; }
    var form = article.querySelector(".claim-form");
    if (form) { form.remove(); }
    refreshCount();
  }

  var source = new EventSource("/api/escalations/stream");
  source.addEventListener("ready", function () { document.body.setAttribute("data-stream", "ready"); });
  source.addEventListener("handoff_created", function (event) {
    var summary = JSON.parse(event.data);
    if (document.getElementById("h-" + summary.handoff_id)) { return; }
    var empty = queue.querySelector(".empty");
    if (empty) { empty.remove(); }
    queue.insertBefore(card(summary), queue.firstChild);
    refreshCount();
    if (document.hidden) {
      unread += 1;
      document.title = "(" + unread + ") " + baseTitle;
    }
  });
  source.addEventListener("handoff_claimed", function (event) {
    var summary = JSON.parse(event.data);
    markClaimed(summary.handoff_id, summary.claimed_by);
  });
  source.addEventListener("handoff_released", function (event) {
    var summary = JSON.parse(event.data);
    var old = document.getElementById("h-" + summary.handoff_id);
    if (old) { old.replaceWith(card(summary)); } else { queue.insertBefore(card(summary), queue.firstChild); }
    refreshCount();
  });
  source.addEventListener("handoff_closed", function (event) {
    var summary = JSON.parse(event.data);
    var article = document.getElementById("h-" + summary.handoff_id);
    if (!article) { return; }
    article.classList.add("closed");
    var status = article.querySelector(".status");
    if (status) { status.textContent = "Resolved"; }
    var form = article.querySelector(".claim-form");
    if (form) { form.remove(); }
    refreshCount();
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { unread = 0; document.title = baseTitle; }
  });
})();
