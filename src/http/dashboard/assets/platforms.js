// The platforms page: the table (nodes booting and running each platform) is re-fetched when
// the live feed reports a node's change, at most once a second; the imports section is
// re-fetched on every counters tick (2 s), and every second while an import runs, since an
// import runs in the CLI's own process and reaches the head node only through the registry.
// When an import ends, the table is re-fetched too: the new platform appears in it.
(function () {
  'use strict';
  const table = document.getElementById('platforms-table');
  const imports = document.getElementById('imports');
  if (!table || !imports) return;

  /** Fetches a fragment into `el` when it changed; resolves to whether it did. */
  async function load(el, url) {
    const res = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    if (!res.ok) return false;
    const text = await res.text();
    if (text === el.innerHTML) return false;
    el.innerHTML = text;
    return true;
  }

  let tablePending = null;
  function refreshTable(delay) {
    if (tablePending) return;
    tablePending = setTimeout(async () => {
      try {
        await load(table, '/ui/platforms/table');
      } finally {
        tablePending = null;
      }
    }, delay);
  }

  const running = () => imports.querySelector('table.imports.active tr[data-import]') !== null;
  let importsBusy = false;
  let fast = null;
  async function refreshImports() {
    if (importsBusy) return;
    importsBusy = true;
    const wasRunning = running();
    try {
      await load(imports, '/ui/platforms/imports');
    } finally {
      importsBusy = false;
    }
    if (wasRunning && !running()) refreshTable(0);
    if (running() && !fast) {
      fast = setTimeout(() => {
        fast = null;
        void refreshImports();
      }, 1000);
    }
  }

  document.addEventListener('fb:node', () => refreshTable(1000));
  document.addEventListener('fb:counters', () => void refreshImports());
  if (running()) void refreshImports();
})();
