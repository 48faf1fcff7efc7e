// A rollout's page: on the live feed's `rollout` event for this rollout, or a boot event of one
// of its nodes, the step table is re-fetched (drawn by the server: rollouts-page.ts stepTable),
// at most every 500 ms. The rollouts list reloads its rows the same way.
(function () {
  'use strict';
  const steps = document.getElementById('steps');
  const list = document.querySelector('table.rollouts');
  let pending = null;
  const refresh = () => {
    if (pending) return;
    pending = setTimeout(async () => {
      try {
        if (steps) {
          const res = await fetch('/ui/rollouts/' + steps.dataset.rollout + '/steps', { credentials: 'same-origin' });
          if (res.ok) steps.innerHTML = await res.text();
        } else if (list) {
          const res = await fetch('/ui/rollouts', { credentials: 'same-origin', headers: { accept: 'text/html' } });
          if (res.ok) {
            const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
            const fresh = doc.querySelector('table.rollouts tbody');
            if (fresh) list.querySelector('tbody').replaceWith(fresh);
          }
        }
      } finally {
        pending = null;
      }
    }, 500);
  };
  document.addEventListener('fb:rollout', (e) => {
    if (!steps || String(e.detail.id) === steps.dataset.rollout) refresh();
  });
  document.addEventListener('fb:boot', (e) => {
    if (steps && steps.querySelector('tr[data-node="' + e.detail.nodeId + '"]')) refresh();
  });
})();
