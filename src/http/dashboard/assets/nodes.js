// The nodes list: rows shown are patched on fb:node; a node not on this page but newer than
// any listed shows the "new nodes" hint instead of reshuffling the table.
(function () {
  'use strict';
  const table = document.querySelector('table.nodes');
  if (!table) return;
  const maxId = Number(table.dataset.maxId || '0');
  document.addEventListener('fb:node', (e) => {
    const n = e.detail;
    const row = table.querySelector('tr[data-node="' + n.id + '"]');
    if (row) {
      const badge = row.querySelector('td.state .badge');
      if (badge) {
        badge.textContent = n.state;
        badge.className = 'badge state-' + n.state;
      }
      const seen = row.querySelector('td.last-seen');
      if (seen && n.lastSeen) {
        seen.textContent = 'just now';
        seen.dataset.at = String(Date.parse(n.lastSeen));
      }
      row.classList.add('flash');
      setTimeout(() => row.classList.remove('flash'), 1200);
    } else if (n.id > maxId) {
      const hint = document.getElementById('new-nodes');
      if (hint) hint.hidden = false;
    }
  });
  document.addEventListener('fb:boot', (e) => {
    const b = e.detail;
    if (b.nodeId === null || b.nodeId <= maxId) return;
    const hint = document.getElementById('new-nodes');
    if (hint) hint.hidden = false;
  });
})();
