// One EventSource per page (HTML Living Standard §9.2): every SSE message becomes a DOM
// CustomEvent on document ('fb:boot', 'fb:node', 'fb:rollout', 'fb:counters') for the page
// scripts. EventSource reconnects by itself and sends Last-Event-ID.
(function () {
  'use strict';
  const status = () => document.getElementById('live-status');
  function show(text, cls) {
    const el = status();
    if (!el) return;
    el.textContent = text;
    el.className = 'live-status ' + cls;
  }
  // The page was rendered at this journal id: the stream replays what came after it.
  const since = document.querySelector('meta[name="fb-live-since"]')?.getAttribute('content');
  const es = new EventSource('/ui/events' + (since ? '?since=' + encodeURIComponent(since) : ''));
  // Too much happened since the render to patch the page: read it again.
  es.addEventListener('resync', () => window.location.reload());
  for (const name of ['boot', 'node', 'rollout', 'counters']) {
    es.addEventListener(name, (m) => {
      let detail;
      try {
        detail = JSON.parse(m.data);
      } catch {
        return;
      }
      document.dispatchEvent(new CustomEvent('fb:' + name, { detail }));
    });
  }
  es.addEventListener('open', () => show('live', 'on'));
  es.addEventListener('error', () => show(es.readyState === EventSource.CLOSED ? 'offline' : 'reconnecting', 'off'));
  window.addEventListener('pagehide', () => es.close());

  // Forms that change something ask first (data-confirm).
  document.addEventListener('submit', (e) => {
    const form = e.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) e.preventDefault();
  });

  /** fetch with the session's CSRF token (meta csrf-token), for page scripts. */
  window.fbPost = function (url, body) {
    const token = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token },
      body: JSON.stringify(body ?? {}),
    });
  };
})();
