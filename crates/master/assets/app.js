// Baton dashboard: a dependency-free single-page app served by `baton master` at `/`.
// Hash routes: #/executions (list), #/executions/{id} (live DAG), #/workflows (list + run).
// It only talks to the master's HTTP API (see /openapi.json); no CDN, no build step.
'use strict';

(() => {
  const TOKEN_KEY = 'baton.apiToken';
  const POLL_MS = 2000;
  const PAGE_SIZE = 50;
  const EXECUTION_STATUSES = ['running', 'completed', 'failed', 'halted'];

  // ------------------------------------------------------------------------------------------
  // DOM helpers
  // ------------------------------------------------------------------------------------------

  /** Creates an HTML element: h('a', {href: '#', class: 'x', onclick: fn}, 'text', child). */
  function h(tag, attrs, ...children) {
    return fill(document.createElement(tag), attrs, children);
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  /** Creates an SVG element, same conventions as h(). */
  function s(tag, attrs, ...children) {
    return fill(document.createElementNS(SVG_NS, tag), attrs, children);
  }

  function fill(el, attrs, children) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') el.setAttribute('class', value);
      else if (key === 'dataset') {
        for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) el.dataset[k] = v;
      } else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  const $ = (selector, root = document) => root.querySelector(selector);

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  }

  /** Pretty-printed, syntax-coloured JSON as a <pre>. */
  function jsonBlock(value, attrs) {
    const pre = h('pre', Object.assign({ class: 'json' }, attrs || {}));
    const text = value === undefined ? 'undefined' : JSON.stringify(value, null, 2);
    const token = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
    let html = '';
    let last = 0;
    for (const m of text.matchAll(token)) {
      html += escapeHtml(text.slice(last, m.index));
      const kind = m[1] ? (m[2] ? 'key' : 'str') : m[3] ? 'lit' : 'num';
      html += `<span class="j-${kind}">${escapeHtml(m[1] || m[0])}</span>${m[2] ? escapeHtml(m[2]) : ''}`;
      last = m.index + m[0].length;
    }
    pre.innerHTML = html + escapeHtml(text.slice(last));
    return pre;
  }

  function toast(message, kind) {
    const el = h('div', { class: `toast ${kind || ''}`, role: 'status' }, message);
    $('#toasts').append(el);
    setTimeout(() => el.remove(), kind === 'ok' ? 3000 : 6000);
  }

  // ------------------------------------------------------------------------------------------
  // Formatting
  // ------------------------------------------------------------------------------------------

  function parseTime(value) {
    if (!value) return null;
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? null : ms;
  }

  function formatDuration(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
    if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
    const sec = ms / 1000;
    if (sec < 60) return `${sec.toFixed(sec < 10 ? 2 : 1)} s`;
    const min = Math.floor(sec / 60);
    if (min < 60) return `${min} min ${String(Math.floor(sec % 60)).padStart(2, '0')} s`;
    return `${Math.floor(min / 60)} h ${String(min % 60).padStart(2, '0')} min`;
  }

  function formatAgo(value) {
    const ms = parseTime(value);
    if (ms === null) return '—';
    const sec = Math.round((Date.now() - ms) / 1000);
    if (sec < 5) return 'just now';
    if (sec < 60) return `${sec} s ago`;
    if (sec < 3600) return `${Math.floor(sec / 60)} min ago`;
    if (sec < 86400) return `${Math.floor(sec / 3600)} h ago`;
    return new Date(ms).toLocaleString();
  }

  function formatTime(value) {
    const ms = parseTime(value);
    return ms === null ? '—' : new Date(ms).toLocaleString();
  }

  /** The duration of an execution: the recorded one, or the time since it started. */
  function executionDuration(exec) {
    if (exec.duration_ms !== null && exec.duration_ms !== undefined) return exec.duration_ms;
    const started = parseTime(exec.started_at);
    if (started === null) return null;
    const end = parseTime(exec.completed_at) ?? Date.now();
    return end - started;
  }

  function pill(status, extraClass) {
    return h('span', { class: `pill ${extraClass || ''}`, dataset: { status } }, status);
  }

  // ------------------------------------------------------------------------------------------
  // API client and token
  // ------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, problems) {
      super(message);
      this.status = status;
      this.code = code;
      this.problems = problems || [];
    }
  }

  function getToken() {
    try {
      return localStorage.getItem(TOKEN_KEY) || '';
    } catch {
      return '';
    }
  }

  function setToken(token) {
    try {
      if (token) localStorage.setItem(TOKEN_KEY, token);
      else localStorage.removeItem(TOKEN_KEY);
    } catch {
      // Private mode without storage: the token then lives for this page only.
    }
    memoryToken = token;
    $('#token-button').classList.toggle('has-token', Boolean(token));
  }
  let memoryToken = '';
  const currentToken = () => getToken() || memoryToken;

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const token = currentToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'network', `Cannot reach the master (${e.message}).`);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    if (response.status === 401) {
      openTokenDialog(token ? 'The master rejected the saved token. Enter a valid one.' : null);
    }
    if (!response.ok) {
      const err = (data && typeof data === 'object' && data.error) || {};
      throw new ApiError(
        response.status,
        err.code || `http_${response.status}`,
        err.message || `${method} ${path} answered HTTP ${response.status}`,
        err.problems,
      );
    }
    return data;
  }

  function describeError(e) {
    if (!(e instanceof ApiError)) return String(e && e.message ? e.message : e);
    const problems = (e.problems || []).map((p) => `${p.path}: ${p.message}`);
    return [e.message, ...problems].join('\n');
  }

  function openTokenDialog(reason) {
    const dialog = $('#token-dialog');
    if (dialog.open) return;
    if (reason) $('#token-reason').textContent = reason;
    $('#token-input').value = currentToken();
    dialog.showModal();
    $('#token-input').focus();
  }

  function setUpTokenDialog() {
    const dialog = $('#token-dialog');
    $('#token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      setToken($('#token-input').value.trim());
      dialog.close();
      route();
    });
    $('#token-cancel').addEventListener('click', () => dialog.close());
    $('#token-clear').addEventListener('click', () => {
      setToken('');
      $('#token-input').value = '';
      dialog.close();
      route();
    });
    $('#token-button').addEventListener('click', () => openTokenDialog(null));
    $('#token-button').classList.toggle('has-token', Boolean(currentToken()));
  }

  // ------------------------------------------------------------------------------------------
  // Router and view lifetimes
  // ------------------------------------------------------------------------------------------

  /** What a view owns: timers and streams stopped when the user navigates away. */
  function makeLifetime() {
    const life = {
      alive: true,
      cleanups: [],
      onEnd(fn) {
        life.cleanups.push(fn);
      },
      /** Runs fn now and every ms while the view lives (skipping hidden tabs). */
      poll(fn, ms) {
        let timer = null;
        let stopped = false;
        const tick = async () => {
          if (!life.alive || stopped) return;
          if (!document.hidden) {
            try {
              await fn();
            } catch (e) {
              if (life.alive && !(e instanceof ApiError && e.status === 401)) life.error(e);
            }
          }
          if (life.alive && !stopped) timer = setTimeout(tick, ms);
        };
        tick();
        const stop = () => {
          stopped = true;
          clearTimeout(timer);
        };
        life.onEnd(stop);
        return stop;
      },
      error(e) {
        console.warn(e);
      },
      end() {
        life.alive = false;
        for (const fn of life.cleanups) {
          try {
            fn();
          } catch (e) {
            console.warn(e);
          }
        }
      },
    };
    return life;
  }

  const routes = [
    [/^\/executions\/([^/]+)$/, (m, query, root, life) => executionView(decodeURIComponent(m[1]), root, life)],
    [/^\/executions\/?$/, (m, query, root, life) => executionsView(query, root, life)],
    [/^\/workflows\/?$/, (m, query, root, life) => workflowsView(root, life)],
    [/^\/dead-letters\/?$/, (m, query, root, life) => deadLettersView(root, life)],
  ];

  let currentLife = null;

  function route() {
    if (currentLife) currentLife.end();
    const life = makeLifetime();
    currentLife = life;
    const hash = location.hash.replace(/^#/, '') || '/executions';
    const [path, queryString] = hash.split('?');
    const query = new URLSearchParams(queryString || '');
    const section = path.split('/')[1] || 'executions';
    for (const link of document.querySelectorAll('[data-nav]')) {
      link.classList.toggle('active', link.dataset.nav === section);
    }
    const root = $('#app');
    root.replaceChildren();
    for (const [pattern, view] of routes) {
      const m = path.match(pattern);
      if (m) {
        Promise.resolve(view(m, query, root, life)).catch((e) => {
          if (life.alive) showPageError(root, e);
        });
        return;
      }
    }
    root.append(h('div', { class: 'card error-state' }, h('h2', {}, 'Not found'),
      h('p', {}, 'No page at ', h('code', {}, hash), '. ', h('a', { href: '#/executions' }, 'Go to executions'))));
  }

  function showPageError(root, e) {
    const title = e instanceof ApiError && e.status === 404 ? 'Not found' : 'Something went wrong';
    root.replaceChildren(h('div', { class: 'card error-state', id: 'page-error' },
      h('h2', {}, title), h('pre', { class: 'json error' }, describeError(e)),
      h('p', {}, h('button', { type: 'button', onclick: () => route() }, 'Retry'))));
  }

  // ------------------------------------------------------------------------------------------
  // Executions list
  // ------------------------------------------------------------------------------------------

  async function executionsView(query, root, life) {
    const filter = { workflow: query.get('workflow') || '', status: query.get('status') || '' };
    let firstPage = [];
    let olderPages = [];
    let nextCursor = null;

    const workflowSelect = h('select', { id: 'filter-workflow', onchange: () => applyFilter() },
      h('option', { value: '' }, 'All workflows'));
    if (filter.workflow) workflowSelect.append(h('option', { value: filter.workflow }, filter.workflow));
    workflowSelect.value = filter.workflow;
    const statusSelect = h('select', { id: 'filter-status', onchange: () => applyFilter() },
      h('option', { value: '' }, 'Any status'),
      EXECUTION_STATUSES.map((st) => h('option', { value: st }, st)));
    statusSelect.value = filter.status;
    const live = h('span', { class: 'live-dot', id: 'live-indicator', dataset: { state: 'polling' } }, `refreshing every ${POLL_MS / 1000} s`);
    const tbody = h('tbody', { id: 'executions-body' });
    const moreButton = h('button', { type: 'button', id: 'load-more', hidden: true, onclick: () => loadMore() }, 'Load older executions');
    const table = h('table', { class: 'list', id: 'executions-table' },
      h('thead', {}, h('tr', {}, ['Status', 'Workflow', 'Execution', 'Started', 'Duration', 'Trigger'].map((t) => h('th', {}, t)))),
      tbody);
    const emptyState = h('div', { class: 'empty', id: 'executions-empty', hidden: true },
      'No executions yet. ', h('a', { href: '#/workflows' }, 'Run a workflow'), ' to see it here.');

    root.append(
      h('div', { class: 'page-head' }, h('h1', {}, 'Executions'), live, h('span', { class: 'spacer' }),
        h('div', { class: 'filters' },
          h('label', {}, 'Workflow', workflowSelect),
          h('label', {}, 'Status', statusSelect))),
      h('div', { class: 'card' }, table, emptyState, h('div', { class: 'list-foot' }, moreButton)),
    );

    api('GET', '/workflows').then((data) => {
      const ids = ((data && data.workflows) || []).map((w) => w.workflow_id).sort();
      for (const id of ids) {
        if (id !== filter.workflow) workflowSelect.append(h('option', { value: id }, id));
      }
      workflowSelect.value = filter.workflow;
    }).catch(() => { /* the filter still works by typing a URL */ });

    function applyFilter() {
      filter.workflow = workflowSelect.value;
      filter.status = statusSelect.value;
      const q = new URLSearchParams();
      if (filter.workflow) q.set('workflow', filter.workflow);
      if (filter.status) q.set('status', filter.status);
      history.replaceState(null, '', `#/executions${q.toString() ? `?${q}` : ''}`);
      firstPage = [];
      olderPages = [];
      nextCursor = null;
      tbody.replaceChildren();
      refresh().catch((e) => life.error(e));
    }

    function queryString(cursor) {
      const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (filter.workflow) q.set('workflow', filter.workflow);
      if (filter.status) q.set('status', filter.status);
      if (cursor) q.set('cursor', cursor);
      return q.toString();
    }

    async function refresh() {
      const data = await api('GET', `/executions?${queryString(null)}`);
      if (!life.alive) return;
      firstPage = (data && data.executions) || [];
      if (!olderPages.length) nextCursor = data ? data.next_cursor : null;
      live.dataset.state = 'live';
      render();
    }

    async function loadMore() {
      if (!nextCursor) return;
      moreButton.disabled = true;
      try {
        const data = await api('GET', `/executions?${queryString(nextCursor)}`);
        olderPages = olderPages.concat((data && data.executions) || []);
        nextCursor = data ? data.next_cursor : null;
        render();
      } finally {
        moreButton.disabled = false;
      }
    }

    function render() {
      const seen = new Set();
      const rows = [];
      for (const exec of firstPage.concat(olderPages)) {
        if (seen.has(exec.execution_id)) continue;
        seen.add(exec.execution_id);
        rows.push(executionRow(exec));
      }
      tbody.replaceChildren(...rows);
      emptyState.hidden = rows.length > 0;
      table.hidden = rows.length === 0;
      moreButton.hidden = !nextCursor;
    }

    life.error = (e) => {
      live.dataset.state = 'error';
      live.textContent = describeError(e);
    };
    life.poll(refresh, POLL_MS);
  }

  // Dead letters: what the workers could not process (GET /dead-letters); replay and purge
  // are `baton dlq` commands.
  async function deadLettersView(root, life) {
    const data = await api('GET', '/dead-letters?limit=1000');
    if (!life.alive) return;
    const rows = data.dead_letters || [];
    const table = h('table', { class: 'list', id: 'dead-letters' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Dead-lettered'), h('th', {}, 'Execution'), h('th', {}, 'Node'),
        h('th', {}, 'Reason'), h('th', {}, 'Id'))),
      h('tbody', {}, ...rows.map((d) => h('tr', { class: 'dead-letter' },
        h('td', { title: d.dead_lettered_at || '' }, formatTime(d.dead_lettered_at)),
        h('td', {}, d.execution_id
          ? h('a', { href: `#/executions/${encodeURIComponent(d.execution_id)}` }, shortId(d.execution_id))
          : '—'),
        h('td', {}, d.node_id || '—'),
        h('td', { class: 'reason' }, d.reason || '—'),
        h('td', {}, h('code', {}, d.id))))));
    root.append(h('section', { class: 'card' },
      h('h1', {}, 'Dead letters'),
      h('p', { class: 'muted' }, rows.length
        ? `${rows.length} of the first ${data.read} messages of the dead-letter queue. Inspect one with `
        : 'The dead-letter queue is empty. ',
        h('code', {}, 'baton dlq show ID'), ', replay after a fix with ', h('code', {}, 'baton dlq replay ID'), '.'),
      rows.length ? table : ''));
  }

  function executionRow(exec) {
    const href = `#/executions/${encodeURIComponent(exec.execution_id)}`;
    return h('tr', {
      class: 'row-link',
      dataset: { executionId: exec.execution_id, status: exec.status },
      onclick: (event) => {
        if (!event.target.closest('a')) location.hash = href;
      },
    },
    h('td', {}, pill(exec.status)),
    h('td', {}, h('strong', {}, exec.workflow_id), ' ', h('span', { class: 'muted' }, `v${exec.version ?? '?'}`)),
    h('td', {}, h('a', { href, class: 'mono', title: exec.execution_id }, shortId(exec.execution_id))),
    h('td', { title: formatTime(exec.started_at) }, formatAgo(exec.started_at)),
    h('td', { class: 'num' }, formatDuration(executionDuration(exec))),
    h('td', {}, h('span', { class: 'tag' }, exec.trigger || '—')));
  }

  function shortId(id) {
    const text = String(id);
    return text.length > 13 ? `${text.slice(0, 8)}…${text.slice(-4)}` : text;
  }

  // ------------------------------------------------------------------------------------------
  // Workflows list and the run dialog
  // ------------------------------------------------------------------------------------------

  async function workflowsView(root, life) {
    const tbody = h('tbody', { id: 'workflows-body' });
    const emptyState = h('div', { class: 'empty', id: 'workflows-empty', hidden: true },
      'No workflows yet. Post one: ', h('code', {}, 'curl -X POST -H "Content-Type: application/json" --data @workflow.json …/workflows'));
    const table = h('table', { class: 'list', id: 'workflows-table' },
      h('thead', {}, h('tr', {}, ['Workflow', 'Id', 'Version', 'Updated', ''].map((t) => h('th', {}, t)))),
      tbody);
    root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Workflows')),
      h('div', { class: 'card' }, table, emptyState));

    async function refresh() {
      const data = await api('GET', '/workflows');
      if (!life.alive) return;
      const workflows = ((data && data.workflows) || []).slice()
        .sort((a, b) => String(a.name || a.workflow_id).localeCompare(String(b.name || b.workflow_id)));
      tbody.replaceChildren(...workflows.map((wf) => h('tr', { dataset: { workflowId: wf.workflow_id } },
        h('td', {}, h('strong', {}, wf.name || wf.workflow_id)),
        h('td', {}, h('code', {}, wf.workflow_id)),
        h('td', {}, h('span', { class: 'tag', title: `hash ${wf.hash || ''}` }, `v${wf.version}`)),
        h('td', { title: formatTime(wf.created_at) }, formatAgo(wf.created_at)),
        h('td', { style: 'text-align:right; white-space:nowrap' },
          h('a', { href: `#/executions?workflow=${encodeURIComponent(wf.workflow_id)}`, style: 'margin-right:14px' }, 'Executions'),
          h('button', {
            type: 'button', class: 'primary small run-open', dataset: { workflowId: wf.workflow_id },
            onclick: () => openRunDialog(wf),
          }, '▶ Run')))));
      emptyState.hidden = workflows.length > 0;
      table.hidden = workflows.length === 0;
    }
    // Workflows change rarely; a slow refresh keeps several people's tabs in step.
    life.poll(refresh, POLL_MS * 5);
  }

  let runTarget = null;

  function openRunDialog(wf) {
    runTarget = wf;
    const dialog = $('#run-dialog');
    $('#run-title').textContent = `Run ${wf.name || wf.workflow_id}`;
    const input = $('#run-input');
    if (input.dataset.workflowId !== wf.workflow_id) {
      input.value = '{}';
      input.dataset.workflowId = wf.workflow_id;
    }
    showRunError(null);
    $('#run-button').disabled = false;
    const preview = $('#run-preview');
    preview.replaceChildren();
    api('GET', `/workflows/${encodeURIComponent(wf.workflow_id)}`).then((data) => {
      if (runTarget !== wf || !data || !data.latest) return;
      const dag = drawDag(data.latest.definition, { compact: true });
      preview.replaceChildren(dag.svg);
    }).catch(() => { /* the preview is a nicety */ });
    dialog.showModal();
    input.focus();
  }

  function showRunError(message) {
    const error = $('#run-error');
    error.hidden = !message;
    error.textContent = message || '';
    $('#run-input').classList.toggle('invalid', Boolean(message));
  }

  /** The input as JSON, or null after showing why it is not. */
  function parseRunInput() {
    const text = $('#run-input').value.trim();
    if (!text) return {};
    try {
      return { value: JSON.parse(text) };
    } catch (e) {
      showRunError(`Input is not valid JSON: ${e.message}`);
      return null;
    }
  }

  function setUpRunDialog() {
    const dialog = $('#run-dialog');
    const input = $('#run-input');
    let validateTimer = null;
    input.addEventListener('input', () => {
      clearTimeout(validateTimer);
      validateTimer = setTimeout(() => {
        if (parseRunInput()) showRunError(null);
      }, 300);
    });
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        $('#run-form').requestSubmit();
      }
    });
    $('#run-cancel').addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      runTarget = null;
      $('#run-preview').replaceChildren();
    });
    $('#run-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const wf = runTarget;
      if (!wf) return;
      const parsed = parseRunInput();
      if (!parsed) return;
      const body = { input: parsed.value === undefined ? {} : parsed.value };
      const button = $('#run-button');
      button.disabled = true;
      showRunError(null);
      try {
        const started = await api('POST', `/workflows/${encodeURIComponent(wf.workflow_id)}/executions`, body);
        dialog.close();
        toast(`Started ${wf.name || wf.workflow_id}`, 'ok');
        location.hash = `#/executions/${encodeURIComponent(started.execution_id)}`;
      } catch (e) {
        showRunError(describeError(e));
      } finally {
        button.disabled = false;
      }
    });
  }

  // ------------------------------------------------------------------------------------------
  // DAG: layout and drawing
  // ------------------------------------------------------------------------------------------

  const NODE_W = 190;
  const NODE_H = 58;
  const GAP_X = 90;
  const GAP_Y = 26;
  const PAD = 20;

  /** The definition's edges as {id, src, dst, route}; route is the label the edge is taken on. */
  function definitionEdges(def) {
    const nodes = Array.isArray(def && def.nodes) ? def.nodes : [];
    const byId = new Map(nodes.filter((n) => n && n.id !== undefined).map((n) => [String(n.id), n]));
    const raw = Array.isArray(def && def.edges) ? def.edges : [];
    return raw.filter((e) => e && typeof e === 'object').map((e, index) => {
      const src = String(e.src ?? e.source ?? e.from ?? '');
      const dst = String(e.dst ?? e.target ?? e.to ?? '');
      const id = e.id === undefined ? `#${index}` : String(e.id);
      return { id, src, dst, route: edgeRoute(e, id, byId.get(src)) };
    });
  }

  /** Baton's `on`, or Rune's ways of typing an edge: conditional/switch parameters, error_edge. */
  function edgeRoute(edge, id, srcNode) {
    if (edge.on !== undefined && edge.on !== null && edge.on !== '') return String(edge.on);
    if (!srcNode) return 'success';
    if (srcNode.error && srcNode.error.error_edge === id) return 'error';
    const params = srcNode.parameters || {};
    if (params.true_edge_id === id) return 'true';
    if (params.false_edge_id === id) return 'false';
    if (Array.isArray(params.routes)) {
      const at = params.routes.indexOf(id);
      if (at >= 0) {
        const rules = Array.isArray(params.rules) ? params.rules : [];
        if (at === params.routes.length - 1 && at >= rules.length) return 'fallback';
        const rule = rules[at] || {};
        return String(rule.name ?? rule.case ?? rule.label ?? at);
      }
    }
    return 'success';
  }

  /**
   * Layered layout, left to right: each node's layer is its longest path from a start node
   * (no incoming edge), so every edge points rightwards; nodes in a layer are ordered by the
   * mean position of their neighbours (a few sweeps) to limit crossings.
   */
  function layoutDag(def) {
    const nodes = (Array.isArray(def && def.nodes) ? def.nodes : [])
      .filter((n) => n && n.id !== undefined)
      .map((n) => ({ id: String(n.id), name: String(n.name ?? n.id), type: String(n.type ?? ''), def: n }));
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const edges = definitionEdges(def).filter((e) => byId.has(e.src) && byId.has(e.dst) && e.src !== e.dst);
    const outgoing = new Map(nodes.map((n) => [n.id, []]));
    const incoming = new Map(nodes.map((n) => [n.id, []]));
    for (const e of edges) {
      outgoing.get(e.src).push(e.dst);
      incoming.get(e.dst).push(e.src);
    }

    // Longest-path layering in topological order (Kahn); nodes left over sit on a cycle,
    // which a valid workflow never has: put them after everything else.
    const layer = new Map(nodes.map((n) => [n.id, 0]));
    const indegree = new Map(nodes.map((n) => [n.id, incoming.get(n.id).length]));
    const queue = nodes.filter((n) => indegree.get(n.id) === 0).map((n) => n.id);
    const placed = new Set();
    while (queue.length) {
      const id = queue.shift();
      placed.add(id);
      for (const dst of outgoing.get(id)) {
        layer.set(dst, Math.max(layer.get(dst), layer.get(id) + 1));
        indegree.set(dst, indegree.get(dst) - 1);
        if (indegree.get(dst) === 0) queue.push(dst);
      }
    }
    let maxLayer = Math.max(0, ...[...placed].map((id) => layer.get(id)));
    for (const n of nodes) if (!placed.has(n.id)) layer.set(n.id, ++maxLayer);
    // The on_failure handler has no incoming edge; draw it after the graph, not at its start.
    const onFailure = def && def.on_failure !== undefined ? String(def.on_failure) : null;
    if (onFailure && byId.has(onFailure) && incoming.get(onFailure).length === 0 && outgoing.get(onFailure).length === 0) {
      maxLayer = Math.max(0, ...nodes.filter((n) => n.id !== onFailure).map((n) => layer.get(n.id)));
      layer.set(onFailure, maxLayer + 1);
    }

    const layerCount = Math.max(0, ...nodes.map((n) => layer.get(n.id))) + 1;
    const layers = Array.from({ length: nodes.length ? layerCount : 0 }, () => []);
    for (const n of nodes) layers[layer.get(n.id)].push(n.id);
    const position = new Map();
    const renumber = () => layers.forEach((ids) => ids.forEach((id, i) => position.set(id, i)));
    renumber();
    const mean = (ids) => (ids.length ? ids.reduce((sum, id) => sum + position.get(id), 0) / ids.length : null);
    for (let sweep = 0; sweep < 4; sweep++) {
      const down = sweep % 2 === 0;
      const order = down ? layers.slice(1) : layers.slice(0, -1).reverse();
      for (const ids of order) {
        const key = new Map(ids.map((id) => [id, mean(down ? incoming.get(id) : outgoing.get(id)) ?? position.get(id)]));
        ids.sort((a, b) => key.get(a) - key.get(b) || position.get(a) - position.get(b));
        ids.forEach((id, i) => position.set(id, i));
      }
    }

    const tallest = Math.max(1, ...layers.map((ids) => ids.length));
    const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
    const width = PAD * 2 + layers.length * NODE_W + Math.max(0, layers.length - 1) * GAP_X;
    layers.forEach((ids, li) => {
      const columnHeight = ids.length * NODE_H + (ids.length - 1) * GAP_Y;
      const top = (height - columnHeight) / 2;
      ids.forEach((id, i) => {
        const n = byId.get(id);
        n.x = PAD + li * (NODE_W + GAP_X);
        n.y = top + i * (NODE_H + GAP_Y);
        n.onFailure = id === onFailure;
      });
    });
    return { nodes, edges, byId, width: Math.max(width, NODE_W + PAD * 2), height };
  }

  function truncate(text, max) {
    return text.length > max ? `${text.slice(0, max - 1)}…` : text;
  }

  const ICONS = {
    success: 'M-4 0.5 L-1.2 3.3 L4.2 -2.6',
    failed: 'M-3.2 -3.2 L3.2 3.2 M3.2 -3.2 L-3.2 3.2',
    running: 'M0 -4.2 A4.2 4.2 0 1 1 -4.2 0',
    waiting: 'M0 -3.6 L0 0 L2.6 1.8',
    skipped: 'M-3.4 0 L3.4 0',
    pending: '',
  };

  /**
   * Draws the workflow. Returns {svg, update(statusById), select(id)}; statusById maps node id
   * to {status, counts} (see nodeDisplay).
   */
  function drawDag(def, options) {
    const opts = options || {};
    const layout = layoutDag(def);
    const uid = Math.random().toString(36).slice(2, 8);
    const svg = s('svg', {
      id: opts.id,
      class: 'dag',
      width: layout.width,
      height: layout.height,
      // Shrinks to fit its box (CSS max-width) down to this, then scrolls: text stays legible.
      style: `min-width: ${Math.round(layout.width * (opts.compact ? 0.5 : 0.7))}px`,
      viewBox: `0 0 ${layout.width} ${layout.height}`,
      role: 'img',
      'aria-label': 'workflow graph',
    });
    const marker = (name, cls) => s('marker', {
      id: `arrow-${name}-${uid}`, viewBox: '0 0 10 10', refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse',
    }, s('path', { d: 'M0 0 L10 5 L0 10 z', class: `dag-arrow ${cls}` }));
    svg.append(s('defs', {}, marker('plain', ''), marker('taken', 'taken'), marker('error', 'error')));

    const edgeLayer = s('g', { class: 'dag-edges' });
    const labelLayer = s('g', { class: 'dag-edge-labels' });
    const nodeLayer = s('g', { class: 'dag-nodes' });
    svg.append(edgeLayer, labelLayer, nodeLayer);

    const edgeEls = [];
    for (const e of layout.edges) {
      const a = layout.byId.get(e.src);
      const b = layout.byId.get(e.dst);
      const x1 = a.x + NODE_W;
      const y1 = a.y + NODE_H / 2;
      const x2 = b.x - 2;
      const y2 = b.y + NODE_H / 2;
      const dx = Math.max(30, (x2 - x1) / 2);
      const route = e.route === 'error' ? 'error' : e.route === 'success' ? 'success' : 'branch';
      const path = s('path', {
        class: 'dag-edge',
        d: `M${x1} ${y1} C${x1 + dx} ${y1}, ${x2 - dx} ${y2}, ${x2} ${y2}`,
        dataset: { edgeId: e.id, src: e.src, dst: e.dst, route },
        'marker-end': `url(#arrow-${route === 'error' ? 'error' : 'plain'}-${uid})`,
      });
      edgeLayer.append(path);
      edgeEls.push({ edge: e, path, route });
      if (e.route !== 'success') {
        // Label past the middle, where the branches of one node have spread apart.
        const t = 0.62;
        const lx = (1 - t) ** 3 * x1 + 3 * (1 - t) ** 2 * t * (x1 + dx) + 3 * (1 - t) * t ** 2 * (x2 - dx) + t ** 3 * x2;
        const ly = (1 - t) ** 3 * y1 + 3 * (1 - t) ** 2 * t * y1 + 3 * (1 - t) * t ** 2 * y2 + t ** 3 * y2;
        const label = truncate(e.route, 14);
        const w = label.length * 6.4 + 8;
        labelLayer.append(s('g', { transform: `translate(${lx},${ly})` },
          s('rect', { class: 'dag-edge-label-bg', x: -w / 2, y: -8, width: w, height: 16, rx: 4 }),
          s('text', { class: 'dag-edge-label', 'text-anchor': 'middle', y: 4 }, label)));
      }
    }

    const nodeEls = new Map();
    for (const n of layout.nodes) {
      const title = s('title', {}, '');
      const badge = s('circle', { class: 'node-badge', cx: 0, cy: 0, r: 9 });
      const icon = s('path', { class: 'node-icon', d: '' });
      const counts = s('text', { class: 'node-counts', x: NODE_W - 34, y: 44, 'text-anchor': 'end' }, '');
      const g = s('g', {
        class: `dag-node${opts.compact ? ' definition' : ''}`,
        transform: `translate(${n.x},${n.y})`,
        tabindex: opts.onSelect ? 0 : null,
        role: opts.onSelect ? 'button' : null,
        dataset: { nodeId: n.id, nodeName: n.name, status: 'pending' },
      },
      title,
      s('rect', { class: 'node-box', width: NODE_W, height: NODE_H, rx: 10 }),
      s('rect', { class: 'node-bar', x: 0, y: 10, width: 4, height: NODE_H - 20, rx: 2 }),
      s('text', { class: 'node-name', x: 16, y: 24 }, truncate(n.name, 21)),
      s('text', { class: 'node-type', x: 16, y: 43 }, truncate(n.onFailure ? `${n.type} · on failure` : n.type, n.onFailure ? 26 : 17)),
      s('g', { transform: `translate(${NODE_W - 20},${NODE_H / 2})` }, badge, icon),
      counts);
      if (opts.onSelect) {
        g.addEventListener('click', () => opts.onSelect(n.id));
        g.addEventListener('keydown', (event) => {
          if (event.key === 'Enter' || event.key === ' ') {
            event.preventDefault();
            opts.onSelect(n.id);
          }
        });
      }
      nodeLayer.append(g);
      nodeEls.set(n.id, { g, title, icon, counts, node: n });
    }

    function update(displayById) {
      const statusOf = (id) => (displayById.get(id) || { status: 'pending' }).status;
      for (const [id, el] of nodeEls) {
        const shown = displayById.get(id) || { status: 'pending', countsText: '' };
        el.g.dataset.status = shown.status;
        el.icon.setAttribute('d', ICONS[shown.status] || '');
        el.counts.textContent = shown.countsText || '';
        el.title.textContent = `${el.node.name} (${el.node.type}) — ${shown.status}${shown.countsText ? ` ${shown.countsText}` : ''}`;
      }
      const ran = (st) => st !== 'pending' && st !== 'skipped';
      for (const { edge, path, route } of edgeEls) {
        const taken = ran(statusOf(edge.src)) && ran(statusOf(edge.dst)) && route !== 'error'
          ? true : route === 'error' && statusOf(edge.src) === 'failed' && ran(statusOf(edge.dst));
        path.dataset.taken = String(Boolean(taken));
        const arrow = route === 'error' ? 'error' : taken ? 'taken' : 'plain';
        path.setAttribute('marker-end', `url(#arrow-${arrow}-${uid})`);
      }
    }

    function select(id) {
      for (const [nodeId, el] of nodeEls) el.g.classList.toggle('selected', nodeId === id);
    }

    update(new Map());
    return { svg, update, select, layout };
  }

  // ------------------------------------------------------------------------------------------
  // Execution page
  // ------------------------------------------------------------------------------------------

  const definitionCache = new Map();

  async function fetchDefinition(workflowId, version) {
    const key = `${workflowId}@${version}`;
    if (!definitionCache.has(key)) {
      const q = version === null || version === undefined ? '' : `?version=${encodeURIComponent(version)}`;
      const data = await api('GET', `/workflows/${encodeURIComponent(workflowId)}${q}`);
      definitionCache.set(key, data);
    }
    return definitionCache.get(key);
  }

  /** The view of a node that ran (the master also lists never-run nodes, as skipped). */
  const ran = (view) => Boolean(view) && !(view.status === 'skipped' && countTotal(view.counts) === 0 && !view.executed_at);

  const countTotal = (c) => (c ? (c.running || 0) + (c.success || 0) + (c.failed || 0) + (c.waiting || 0) + (c.cancelled || 0) : 0);

  /**
   * How a node is shown: its status, plus run counts when it ran more than once (splits).
   * A node with no run yet is pending, or skipped once the execution finished; except a
   * trigger node, which reports no status of its own: it fired, since the execution exists
   * (unless this execution is a replay starting further on).
   */
  function nodeDisplay(view, exec, defNode) {
    if (!ran(view)) {
      if (defNode && defNode.trigger === true && exec.trigger !== 'replay') return { status: 'success', countsText: '', fired: true };
      return { status: exec.status !== 'running' ? 'skipped' : 'pending', countsText: '' };
    }
    const c = Object.assign({ running: 0, success: 0, failed: 0, waiting: 0, cancelled: 0 }, view.counts || {});
    if (exec.status !== 'running') {
      // Nothing runs or waits in a finished execution: such runs were interrupted (a halt,
      // a cancel) or were an aggregator's intermediate arrivals. Show what finished.
      c.running = 0;
      c.waiting = 0;
      if (c.success + c.failed + c.cancelled === 0) {
        const interrupted = view.status === 'running' || view.status === 'waiting';
        return { status: interrupted ? 'skipped' : view.status || 'skipped', countsText: '', interrupted };
      }
    }
    const total = countTotal(c);
    if (total <= 1) {
      const status = exec.status !== 'running' && (view.status === 'running' || view.status === 'waiting')
        ? (c.failed ? 'failed' : 'success') : view.status || 'pending';
      return { status, countsText: '' };
    }
    let status = 'success';
    if (c.running) status = 'running';
    else if (c.waiting) status = 'waiting';
    else if (c.failed) status = 'failed';
    else if (c.cancelled) status = 'cancelled';
    let text = `✓ ${c.success}/${total}`;
    if (c.failed) text += `  ✗ ${c.failed}`;
    if (c.cancelled) text += `  ⊘ ${c.cancelled}`;
    return { status, countsText: text };
  }

  /** GET /executions/{id}, waiting a little for a record that was just started to appear. */
  async function fetchExecution(executionId, life) {
    const givingUpAt = Date.now() + 5000;
    for (;;) {
      try {
        return await api('GET', `/executions/${encodeURIComponent(executionId)}`);
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 404) || Date.now() > givingUpAt || !life.alive) throw e;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    }
  }

  async function executionView(executionId, root, life) {
    let exec = await fetchExecution(executionId, life);
    if (!life.alive) return;
    let workflow = null;
    let definitionMissing = false;
    try {
      workflow = await fetchDefinition(exec.workflow_id, exec.version);
    } catch (e) {
      // A deleted workflow still has its executions: draw the nodes that ran, without edges.
      if (!(e instanceof ApiError && e.status === 404)) throw e;
      definitionMissing = true;
    }
    if (!life.alive) return;
    const definition = (workflow && workflow.latest && workflow.latest.definition) || {
      nodes: Object.values(exec.nodes || {}).map((n) => ({ id: n.node_id, name: n.node_name, type: n.node_type })),
      edges: [],
    };
    const definitionNodes = new Map((Array.isArray(definition.nodes) ? definition.nodes : [])
      .filter((n) => n && n.id !== undefined).map((n) => [String(n.id), n]));
    let nodes = Object.assign({}, exec.nodes || {});
    let selected = null;

    // --- header
    const statusPill = pill(exec.status, 'big');
    statusPill.id = 'execution-status';
    const durationEl = h('dd', { id: 'execution-duration' }, '—');
    const cancelButton = h('button', { type: 'button', class: 'danger', id: 'cancel-button', onclick: () => cancel() }, '■ Cancel');
    const live = h('span', { class: 'live-dot', id: 'live-indicator', dataset: { state: 'connecting' } }, 'connecting…');
    const banner = h('div', { class: 'banner', id: 'failure-reason', hidden: true });
    const workflowName = (workflow && workflow.name) || definition.name || exec.workflow_id;
    root.append(
      h('div', { class: 'exec-head' },
        h('div', { class: 'exec-title' },
          h('div', { class: 'crumbs' }, h('a', { href: '#/executions' }, 'Executions'), ' / ',
            h('a', { href: `#/executions?workflow=${encodeURIComponent(exec.workflow_id)}` }, exec.workflow_id)),
          h('h1', {}, workflowName, h('span', { class: 'tag' }, `v${exec.version ?? '?'}`), statusPill),
          h('code', { class: 'muted', id: 'execution-id' }, exec.execution_id)),
        h('dl', { class: 'facts' },
          h('div', {}, h('dt', {}, 'Started'), h('dd', { title: exec.started_at || '' }, formatTime(exec.started_at))),
          h('div', {}, h('dt', {}, 'Duration'), durationEl),
          h('div', {}, h('dt', {}, 'Trigger'), h('dd', {}, exec.trigger || '—'))),
        h('div', { class: 'exec-actions' }, live, cancelButton)),
      banner);
    if (definitionMissing) {
      root.append(h('div', { class: 'banner info' },
        `The definition of ${exec.workflow_id} v${exec.version ?? '?'} is no longer stored: only the nodes that ran are drawn.`));
    }

    // --- graph and panel
    const dag = drawDag(definition, { id: 'dag', onSelect: (id) => selectNode(id) });
    const panel = h('aside', { class: 'card', id: 'node-panel', hidden: true });
    const body = h('div', { class: 'exec-body' },
      h('section', { class: 'card dag-card' },
        h('div', { class: 'dag-toolbar' }, h('h2', { style: 'margin:0' }, 'Graph'), h('span', { class: 'spacer' }), legend()),
        h('div', { class: 'dag-scroll' }, dag.svg)),
      panel);
    const timeline = h('section', { class: 'card timeline', id: 'timeline' });
    const inputBlock = h('details', { class: 'card', id: 'execution-input' }, h('summary', {}, 'Input'));
    const contextBlock = h('details', { class: 'card', id: 'execution-context' }, h('summary', {}, 'Final context'));
    root.append(body, timeline, inputBlock, contextBlock);
    if (exec.status === 'failed') showDeadLetters();

    // A failed execution's dead letters (a worker could not process one of its messages).
    async function showDeadLetters() {
      let data;
      try {
        data = await api('GET', `/dead-letters?execution=${encodeURIComponent(exec.execution_id)}&limit=1000`);
      } catch (e) {
        return;
      }
      if (!life.alive || !data.dead_letters || !data.dead_letters.length) return;
      banner.after(...data.dead_letters.map((d) => h('div', { class: 'banner', id: `dead-letter-${d.id}` },
        `Dead-lettered: ${d.reason} (node ${d.node_id || '—'}, ${formatTime(d.dead_lettered_at)}; `,
        h('code', {}, `baton dlq show ${d.id}`), ')')));
    }

    const finished = () => exec.status !== 'running';

    function render() {
      statusPill.dataset.status = exec.status;
      statusPill.textContent = exec.status;
      cancelButton.hidden = finished();
      durationEl.textContent = formatDuration(executionDuration(exec));
      banner.hidden = !exec.failure_reason;
      banner.textContent = exec.failure_reason ? `Failure: ${exec.failure_reason}` : '';
      const display = new Map();
      for (const [id, defNode] of definitionNodes) display.set(id, nodeDisplay(nodes[id], exec, defNode));
      dag.update(display);
      renderTimeline();
      replaceJson(inputBlock, exec.input, 'execution-input-json');
      replaceJson(contextBlock, exec.final_context, 'execution-context-json');
      contextBlock.hidden = exec.final_context === null || exec.final_context === undefined;
      if (selected) renderPanel();
      if (finished()) {
        live.dataset.state = 'idle';
        live.textContent = exec.completed_at ? `finished ${formatAgo(exec.completed_at)}` : 'finished';
      }
    }

    function replaceJson(details, value, id) {
      const old = details.querySelector('pre');
      const pre = jsonBlock(value === undefined ? null : value, { id });
      if (old) old.replaceWith(pre);
      else details.append(pre);
    }

    function renderTimeline() {
      const runs = Object.values(nodes)
        .map((v) => {
          const end = parseTime(v.executed_at);
          const start = parseTime(v.started_at) ?? (end !== null && v.duration_ms !== null ? end - v.duration_ms : null);
          const open = v.status === 'running' || v.status === 'waiting';
          const stop = open ? parseTime(exec.completed_at) ?? Date.now() : end ?? start;
          return { v, start, stop };
        })
        .filter((r) => r.start !== null)
        .sort((a, b) => a.start - b.start);
      timeline.hidden = runs.length === 0;
      if (!runs.length) return;
      const from = Math.min(parseTime(exec.started_at) ?? Infinity, ...runs.map((r) => r.start));
      const to = Math.max(from + 1, parseTime(exec.completed_at) ?? 0, ...runs.map((r) => r.stop ?? r.start));
      const span = to - from;
      timeline.replaceChildren(h('h2', {}, 'Timeline'), ...runs.map(({ v, start, stop }) => {
        const left = Math.min(99.5, ((start - from) / span) * 100);
        const width = Math.max(0.4, (((stop ?? start) - start) / span) * 100);
        return h('div', { class: 'tl-row', dataset: { nodeId: v.node_id }, onclick: () => selectNode(v.node_id) },
          h('span', { class: 'tl-name', title: v.node_name }, v.node_name || v.node_id),
          h('div', { class: 'tl-track' }, h('div', {
            class: 'tl-bar', dataset: { status: v.status },
            style: `left:${left.toFixed(2)}%; width:${Math.min(width, 100 - left).toFixed(2)}%`,
          })),
          h('span', { class: 'tl-dur' }, formatDuration(v.duration_ms)));
      }));
    }

    function selectNode(id) {
      selected = id;
      dag.select(id);
      panel.hidden = false;
      body.classList.add('with-panel');
      renderPanel();
    }

    function closePanel() {
      selected = null;
      dag.select(null);
      panel.hidden = true;
      body.classList.remove('with-panel');
    }

    function renderPanel() {
      const view = ran(nodes[selected]) ? nodes[selected] : null;
      const def = definitionNodes.get(selected) || {};
      const shown = nodeDisplay(view, exec, def);
      panel.dataset.nodeId = selected;
      panel.dataset.status = shown.status;
      const c = (view && view.counts) || null;
      const sections = [];
      if (shown.interrupted) {
        sections.push(h('p', { class: 'muted' }, `Interrupted: the execution ended (${exec.status}) while this node was ${view.status}.`));
      }
      if (view && view.error) {
        sections.push(h('h3', {}, 'Error'), jsonBlock(view.error, { class: 'json error', dataset: { field: 'error' } }));
      }
      if (view) {
        if (view.parameters !== null && view.parameters !== undefined) {
          sections.push(h('h3', {}, 'Input parameters'), jsonBlock(view.parameters, { dataset: { field: 'parameters' } }));
        } else {
          // Workers may not report the resolved parameters: show what the definition says.
          sections.push(h('h3', {}, 'Parameters ', h('span', { class: 'muted' }, '(as defined)')),
            jsonBlock(def.parameters ?? {}, { dataset: { field: 'parameters' } }));
        }
        sections.push(h('h3', {}, 'Output'), jsonBlock(view.output ?? null, { dataset: { field: 'output' } }));
      } else if (shown.fired) {
        sections.push(h('p', { class: 'muted' }, `This trigger started the execution (${exec.trigger || 'api'}); its output is the execution's input.`),
          h('h3', {}, 'Output'), jsonBlock(exec.input ?? null, { dataset: { field: 'output' } }));
      } else {
        sections.push(h('p', { class: 'muted' }, shown.status === 'skipped' ? 'This node did not run in this execution.' : 'This node has not run yet.'),
          h('h3', {}, 'Parameters (as defined)'), jsonBlock(def.parameters ?? {}, { dataset: { field: 'parameters' } }));
      }
      const actions = [];
      if (!finished() && view && shown.status === 'waiting') sections.push(signalForm());
      if (finished() && view) {
        actions.push(h('button', { type: 'button', id: 'replay-button', onclick: () => replayFrom(selected) }, '↻ Replay from here'));
      }
      // Live updates re-render the panel while someone may be typing in its signal form (kept
      // across renders): give the focus and the caret back, or the next keys would be lost.
      const focused = panel.contains(document.activeElement) ? document.activeElement : null;
      const caret = focused && 'selectionStart' in focused ? [focused.selectionStart, focused.selectionEnd] : null;
      panel.replaceChildren(
        h('header', {}, h('h2', {}, (view && view.node_name) || def.name || selected),
          h('button', { type: 'button', class: 'ghost close', id: 'node-panel-close', 'aria-label': 'Close', onclick: closePanel }, '×')),
        h('div', { class: 'sub' }, pill(shown.status), h('code', {}, (view && view.node_type) || def.type || ''),
          h('span', { class: 'muted mono' }, selected)),
        view ? h('dl', { class: 'facts' },
          h('div', {}, h('dt', {}, 'Duration'), h('dd', { dataset: { field: 'duration' } }, formatDuration(view.duration_ms))),
          h('div', {}, h('dt', {}, 'Attempts'), h('dd', {}, String(view.attempts ?? 1))),
          h('div', {}, h('dt', {}, 'Started'), h('dd', { title: view.started_at || '' }, formatTime(view.started_at))),
          h('div', {}, h('dt', {}, 'Finished'), h('dd', { title: view.executed_at || '' }, formatTime(view.executed_at))),
          c && countTotal(c) > 1
            ? h('div', {}, h('dt', {}, 'Runs'), h('dd', { dataset: { field: 'counts' } },
              `${c.success || 0} ok · ${c.failed || 0} failed · ${c.running || 0} running · ${c.waiting || 0} waiting`))
            : null) : '',
        ...sections,
        actions.length ? h('div', { class: 'panel-actions' }, actions) : '');
      if (focused && panel.contains(focused) && document.activeElement !== focused) {
        focused.focus();
        if (caret) {
          try {
            focused.setSelectionRange(caret[0], caret[1]);
          } catch {
            // Not a text field.
          }
        }
      }
    }

    /** A waiting node may be waiting for a signal: send one (name + JSON data). */
    let signalFormCache = null;
    function signalForm() {
      // Reused across re-renders so a refresh never wipes what the user is typing.
      if (signalFormCache && signalFormCache.nodeId === selected) return signalFormCache.form;
      // The wait node names the signal it waits for: start from that.
      const waitsFor = definitionNodes.get(selected)?.parameters?.signal;
      const name = h('input', { id: 'signal-name', placeholder: 'signal name', spellcheck: 'false', style: 'width:100%' });
      if (typeof waitsFor === 'string' && !waitsFor.includes('{{')) name.value = waitsFor;
      const data = h('textarea', { id: 'signal-data', rows: 3, spellcheck: 'false' }, '{}');
      const error = h('p', { class: 'field-error', id: 'signal-error', hidden: true });
      const send = h('button', { type: 'submit', class: 'primary small', id: 'signal-button' }, 'Send signal');
      const form = h('form', {
        class: 'signal-form',
        onsubmit: async (event) => {
          event.preventDefault();
          error.hidden = true;
          let payload;
          try {
            payload = JSON.parse(data.value.trim() || 'null');
          } catch (e) {
            error.textContent = `Data is not valid JSON: ${e.message}`;
            error.hidden = false;
            return;
          }
          if (!name.value.trim()) {
            error.textContent = 'Name the signal the node waits for.';
            error.hidden = false;
            return;
          }
          send.disabled = true;
          try {
            await api('POST', `/executions/${encodeURIComponent(exec.execution_id)}/signals/${encodeURIComponent(name.value.trim())}`, { data: payload });
            toast(`Signal ${name.value.trim()} sent`, 'ok');
            scheduleRefresh();
          } catch (e) {
            error.textContent = describeError(e);
            error.hidden = false;
          } finally {
            send.disabled = false;
          }
        },
      }, h('h3', {}, 'Signal'), name, data, error, h('div', { class: 'panel-actions' }, send));
      signalFormCache = { nodeId: selected, form };
      return form;
    }

    async function cancel() {
      cancelButton.disabled = true;
      try {
        await api('POST', `/executions/${encodeURIComponent(exec.execution_id)}/cancel`);
        toast('Cancel requested', 'ok');
        scheduleRefresh();
      } catch (e) {
        toast(describeError(e));
      } finally {
        cancelButton.disabled = false;
      }
    }

    async function replayFrom(nodeId) {
      try {
        const started = await api('POST', `/executions/${encodeURIComponent(exec.execution_id)}/replay?from=${encodeURIComponent(nodeId)}`);
        toast(`Replaying from ${nodeId}`, 'ok');
        location.hash = `#/executions/${encodeURIComponent(started.execution_id)}`;
      } catch (e) {
        toast(describeError(e));
      }
    }

    // --- live updates: the event stream drives immediate colour changes; a (debounced) fetch
    // of the execution brings the authoritative view (counts, outputs, timings).
    async function refresh() {
      const fresh = await api('GET', `/executions/${encodeURIComponent(executionId)}`);
      if (!life.alive) return;
      exec = fresh;
      nodes = Object.assign({}, fresh.nodes || {});
      render();
      if (finished()) stopLive();
    }

    let refreshTimer = null;
    function scheduleRefresh() {
      if (refreshTimer) return;
      refreshTimer = setTimeout(() => {
        refreshTimer = null;
        refresh().catch((e) => life.error(e));
      }, 250);
    }
    life.onEnd(() => clearTimeout(refreshTimer));

    function applyStatusEvent(event) {
      if (!event || !event.node_id) return;
      const previous = nodes[event.node_id];
      const counts = previous && previous.counts;
      // Inside a split the server's counts are authoritative; keep them until the refresh.
      nodes[event.node_id] = Object.assign({}, previous || {}, {
        node_id: event.node_id,
        node_name: event.node_name,
        node_type: event.node_type,
        status: event.status,
        parameters: event.parameters ?? (previous && previous.parameters),
        output: event.output ?? null,
        error: event.error ?? null,
        executed_at: event.executed_at,
        duration_ms: event.duration_ms,
        attempts: event.attempt ?? (previous && previous.attempts),
        counts: counts || { [event.status]: 1 },
      });
      render();
      scheduleRefresh();
    }

    let source = null;
    let stopFallback = null;
    function startFallbackPolling() {
      if (!stopFallback) stopFallback = life.poll(refresh, POLL_MS);
      if (live.dataset.state !== 'idle') {
        live.dataset.state = 'polling';
        live.textContent = `polling every ${POLL_MS / 1000} s`;
      }
    }
    function stopLive() {
      if (source) source.close();
      source = null;
      if (stopFallback) stopFallback();
      stopFallback = null;
      live.dataset.state = 'idle';
    }
    life.onEnd(stopLive);

    function connect() {
      if (typeof EventSource === 'undefined') {
        startFallbackPolling();
        return;
      }
      const token = currentToken();
      const url = `/executions/${encodeURIComponent(executionId)}/events${token ? `?access_token=${encodeURIComponent(token)}` : ''}`;
      source = new EventSource(url);
      source.addEventListener('open', () => {
        live.dataset.state = 'live';
        live.textContent = 'live';
        if (stopFallback) stopFallback();
        stopFallback = null;
      });
      source.addEventListener('status', (message) => {
        try {
          applyStatusEvent(JSON.parse(message.data));
        } catch (e) {
          console.warn('bad status event', e);
        }
      });
      source.addEventListener('completion', (message) => {
        try {
          const completion = JSON.parse(message.data);
          exec.status = completion.status || exec.status;
          exec.completed_at = completion.completed_at || exec.completed_at;
          exec.duration_ms = completion.total_duration_ms ?? exec.duration_ms;
          exec.failure_reason = completion.failure_reason ?? exec.failure_reason;
          render();
        } catch (e) {
          console.warn('bad completion event', e);
        }
        // The stream ends here; without closing, EventSource would reconnect and replay.
        if (source) source.close();
        source = null;
        live.dataset.state = 'idle';
        refresh().catch((e) => life.error(e));
      });
      source.addEventListener('error', () => {
        if (!life.alive) return;
        if (source && source.readyState === EventSource.CLOSED) source = null;
        // While the stream is down (reconnecting, or refused), polling keeps the page current;
        // a 401 surfaces there and opens the token prompt.
        startFallbackPolling();
      });
    }

    life.error = (e) => {
      live.dataset.state = 'error';
      live.textContent = describeError(e);
    };
    // The duration of a running execution ticks even when nothing else happens.
    const ticker = setInterval(() => {
      if (!finished()) durationEl.textContent = formatDuration(executionDuration(exec));
    }, 1000);
    life.onEnd(() => clearInterval(ticker));

    render();
    if (!finished()) connect();
  }

  function legend() {
    return h('div', { class: 'legend' }, ['pending', 'running', 'success', 'failed', 'waiting', 'cancelled', 'skipped'].map((st) =>
      h('span', {}, h('i', { style: `background: var(--st-${st}-bg); border-color: var(--st-${st}-fg);${st === 'skipped' ? ' border-style: dashed;' : ''}` }), st)));
  }

  // ------------------------------------------------------------------------------------------
  // Start
  // ------------------------------------------------------------------------------------------

  setUpTokenDialog();
  setUpRunDialog();
  window.addEventListener('hashchange', route);
  // Expose the layout for debugging in the console; the page itself never needs it.
  window.baton = { layoutDag, definitionEdges };
  route();
})();
