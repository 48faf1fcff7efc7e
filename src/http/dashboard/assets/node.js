// One node's page: new boot events append to the timeline (and redraw the waterfall when the
// page has one); fb:node updates the state badge.
(function () {
  'use strict';
  const timeline = document.querySelector('table.timeline');
  if (!timeline) return;
  const nodeId = Number(timeline.dataset.node);
  const tbody = timeline.querySelector('tbody');
  document.addEventListener('fb:boot', (e) => {
    const b = e.detail;
    if (b.nodeId !== nodeId || timeline.querySelector('tr[data-event="' + b.id + '"]')) return;
    const tr = document.createElement('tr');
    tr.dataset.event = String(b.id);
    for (const text of [b.at, b.event, b.mac ?? '', JSON.stringify(b.detail)]) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.appendChild(td);
    }
    tr.classList.add('flash');
    tbody.appendChild(tr);
    document.dispatchEvent(new CustomEvent('fb:timeline', { detail: b }));
  });
  // The waterfall is drawn on the server (waterfall-view.ts): re-fetch it when this node's
  // timeline grows, at most every 300 ms while a boot streams in events.
  const waterfall = document.getElementById('waterfall');
  let pending = null;
  document.addEventListener('fb:timeline', () => {
    if (!waterfall || pending) return;
    pending = setTimeout(async () => {
      try {
        const res = await fetch('/ui/nodes/' + nodeId + '/waterfall', { credentials: 'same-origin' });
        if (res.ok) waterfall.innerHTML = await res.text();
      } finally {
        pending = null;
      }
    }, 300);
  });
  document.addEventListener('fb:node', (e) => {
    const n = e.detail;
    if (n.id !== nodeId) return;
    const badge = document.querySelector('#node-state .badge');
    if (badge) {
      badge.textContent = n.state;
      badge.className = 'badge state-' + n.state;
    }
  });
})();
