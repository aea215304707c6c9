/*
 * vbatch dashboard (docs/UI.md).  Plain JavaScript, no library, nothing
 * fetched from elsewhere.  It calls vbatch's own API with the key in an
 * "Authorization: Bearer" header; the key lives in sessionStorage only (gone
 * when the tab closes) and never in a URL.  Every value from the server is
 * put in the page as text (textContent, setAttribute of checked URLs):
 * there is no innerHTML anywhere.
 */
'use strict';
(function () {
  var KEY = 'vbatch.apiKey';
  var WS = 'vbatch.workspace';
  var main = document.getElementById('main');
  var errBox = document.getElementById('error');
  var timers = [];
  var generation = 0; /* bumped on every page change: late answers of the previous page are dropped */

  /* ---- small helpers ------------------------------------------------------ */
  function el(tag, attrs) {
    var e = document.createElement(tag);
    var k;
    for (k in attrs || {}) {
      if (!Object.prototype.hasOwnProperty.call(attrs, k) || attrs[k] === undefined || attrs[k] === null) continue;
      if (k === 'text') e.textContent = String(attrs[k]);
      else if (k === 'class') e.className = attrs[k];
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, String(attrs[k]));
    }
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }
  function add(parent, kid) {
    if (kid === null || kid === undefined || kid === false) return;
    if (Array.isArray(kid)) { kid.forEach(function (k) { add(parent, k); }); return; }
    parent.appendChild(typeof kid === 'object' ? kid : document.createTextNode(String(kid)));
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  function show(node) { clear(main); add(main, node); }
  /* Only http(s) and same-origin URLs become links or images. */
  function safeUrl(u) {
    u = String(u || '');
    return /^https?:\/\//i.test(u) || (u.charAt(0) === '/' && u.charAt(1) !== '/') ? u : null;
  }
  function fmtBytes(n) {
    if (typeof n !== 'number' || n < 0) return '…';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
  }
  function fmtTime(s) {
    if (!s) return '';
    var d = new Date(s);
    return isNaN(d.getTime()) ? String(s) : d.toLocaleString();
  }
  function pct(x) { return Math.round(Math.max(0, Math.min(1, Number(x) || 0)) * 100) + '%'; }
  function bar(x, id) {
    var inner = el('span');
    inner.style.width = pct(x);
    return el('span', {}, el('span', {class: 'bar'}, inner), el('span', {class: 'pct', id: id, text: pct(x)}));
  }
  function statusCell(s) { return el('span', {class: 'status-' + String(s), text: s}); }
  function table(headers, rows, attrs) {
    return el('table', attrs || {},
      el('thead', {}, el('tr', {}, headers.map(function (h) {
        return el('th', {class: /^(Files|Size|Progress|Tasks|Images|Count|Objects|Classes)$/.test(h) ? 'num' : null, text: h});
      }))),
      el('tbody', {}, rows));
  }
  function td(v, cls) { return el('td', {class: cls}, v); }
  function link(href, text) { return el('a', {href: href, text: text}); }
  function setError(msg) {
    if (!msg) { errBox.hidden = true; clear(errBox); return; }
    errBox.textContent = String(msg);
    errBox.hidden = false;
  }
  function every(ms, fn) { timers.push(setInterval(fn, ms)); }
  function stopTimers() { timers.forEach(clearInterval); timers = []; }

  /* ---- API ------------------------------------------------------------------ */
  function key() { return sessionStorage.getItem(KEY) || ''; }
  function ws() { return sessionStorage.getItem(WS) || ''; }
  function wsPath(prefix) { return prefix + '/' + encodeURIComponent(ws()); }
  function ds(rest) { return wsPath('/data-staging/v1/external') + '/batches' + rest; }
  function bp(rest) { return wsPath('/batch-processing/v1/external') + '/jobs' + rest; }
  function wf(rest) { return wsPath('/workflows/v1/external') + '/workflows' + rest; }
  function md(rest) { return wsPath('/models/v1/external') + '/models' + rest; }
  function enc(id) { return encodeURIComponent(id); }

  function api(method, path, query, apiKey) {
    var q = query ? '?' + new URLSearchParams(query).toString() : '';
    return fetch(path + q, {
      method: method, cache: 'no-store', credentials: 'omit',
      headers: {'Authorization': 'Bearer ' + (apiKey || key())}
    }).then(function (r) {
      return r.text().then(function (t) {
        var body = null;
        try { body = t ? JSON.parse(t) : null; } catch (e) { body = null; }
        if (!r.ok) {
          var err = new Error((body && body.error) || ('HTTP ' + r.status));
          err.status = r.status;
          if (r.status === 401 && !apiKey) signOut('The API key was refused: ' + err.message);
          throw err;
        }
        return body;
      });
    });
  }
  /* Run a page's loader; drop its answer if the user has moved on. */
  function guarded(fn) {
    var g = generation;
    return function (v) { if (g === generation) return fn(v); };
  }
  function fail(e) { if (e && e.status !== 401) setError(e.message || String(e)); }

  /* ---- sign in ---------------------------------------------------------------- */
  function signOut(msg) {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(WS);
    render();
    if (msg) setError(msg);
  }
  function signInPage() {
    var input = el('input', {id: 'apikey', type: 'password', autocomplete: 'off', placeholder: 'vb_…', required: 'required'});
    var form = el('form', {id: 'signin', class: 'signin'},
      el('h1', {text: 'Sign in'}),
      el('label', {for: 'apikey', text: 'API key of your workspace'}), input,
      el('button', {type: 'submit', text: 'Sign in'}),
      el('p', {class: 'muted', text: 'The key stays in this browser tab (session storage) and is sent in a header, never in a URL.'}));
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var k = input.value.trim();
      if (!k) return;
      api('GET', '/', null, k).then(function (b) {
        sessionStorage.setItem(KEY, k);
        sessionStorage.setItem(WS, b.workspace);
        setError(null);
        if (!location.hash || location.hash === '#/') location.hash = '#/batches';
        else render();
      }, function (e) { setError('Sign-in failed: ' + e.message); });
    });
    show(form);
    input.focus();
  }

  /* ---- batches ------------------------------------------------------------------ */
  function batchesPage() {
    var tbody = el('tbody');
    var more = el('button', {type: 'button', id: 'batches-more', text: 'More', hidden: 'hidden'});
    var token = null;
    show([el('h1', {text: 'Batches'}),
      el('table', {id: 'batches'},
        el('thead', {}, el('tr', {}, ['Batch', 'Name', 'Type', 'Content', 'Files', 'Size', 'Created', 'Expires'].map(function (h) {
          return el('th', {class: h === 'Files' || h === 'Size' ? 'num' : null, text: h});
        }))), tbody),
      el('p', {}, more)]);
    function load() {
      var q = {pageSize: 100};
      if (token) q.nextPageToken = token;
      api('GET', ds(''), q).then(guarded(function (b) {
        b.batches.forEach(function (x) {
          var size = el('td', {class: 'num', text: '…'});
          tbody.appendChild(el('tr', {'data-batch': x.batchId},
            td(link('#/batches/' + enc(x.batchId), x.batchId)), td(x.displayName), td(x.batchType),
            td(x.batchContentType), td(String(x.fileCount), 'num'), size,
            td(fmtTime(x.createdDate)), td(fmtTime(x.expiryDate))));
          sizes.push([x.batchId, size]);
        });
        if (!b.batches.length && !tbody.firstChild)
          tbody.appendChild(el('tr', {}, el('td', {colspan: 8, class: 'muted', text: 'No batches yet.'})));
        token = b.nextPageToken;
        more.hidden = !token;
        fillSizes();
      })).catch(fail);
    }
    /* The size of a batch is a sum over its items: asked per batch, 4 at a time. */
    var sizes = [], inflight = 0;
    function fillSizes() {
      while (inflight < 4 && sizes.length) {
        var s = sizes.shift();
        inflight++;
        api('GET', ds('/' + enc(s[0]))).then(guarded(function (cell) {
          return function (b) { cell.textContent = fmtBytes(b.batch.sizeBytes); };
        }(s[1]))).catch(function () {}).then(function () { inflight--; fillSizes(); });
      }
    }
    more.addEventListener('click', load);
    load();
  }

  function batchPage(id) {
    var head = el('div');
    var parts = el('div'), shards = el('div'), files = el('div', {class: 'files', id: 'files'});
    var partSel = el('select', {id: 'part-filter'}, el('option', {value: '', text: 'all parts'}));
    var more = el('button', {type: 'button', text: 'More files', hidden: 'hidden'});
    var token = null;
    show([el('h1', {}, 'Batch ', el('span', {id: 'batch-id', text: id})), head,
      el('h2', {text: 'Parts'}), parts, el('h2', {text: 'Shards'}), shards,
      el('h2', {text: 'Files'}), el('div', {class: 'actions'}, el('label', {text: 'Part '}), partSel), files, el('p', {}, more)]);
    api('GET', ds('/' + enc(id))).then(guarded(function (b) {
      var x = b.batch;
      add(head, table(['Name', 'Type', 'Content', 'Files', 'Size', 'Created', 'Expires'], [el('tr', {},
        td(x.displayName), td(x.batchType), td(x.batchContentType), td(String(x.fileCount), 'num'),
        td(fmtBytes(x.sizeBytes), 'num'), td(fmtTime(x.createdDate)), td(fmtTime(x.expiryDate)))]));
    })).catch(fail);
    api('GET', ds('/' + enc(id) + '/parts')).then(guarded(function (b) {
      var rows = (b.batchParts || []).map(function (p) {
        var cnt = el('td', {class: 'num', text: '…'});
        api('GET', ds('/' + enc(id) + '/count'), {partName: p.partName}).then(function (c) { cnt.textContent = String(c.count); }, function () {});
        partSel.appendChild(el('option', {value: p.partName, text: p.partName}));
        return el('tr', {}, td(p.partName), td(p.partType), td(p.contentType), td(p.nestedContentType || ''), cnt);
      });
      add(parts, rows.length ? table(['Part', 'Type', 'Content', 'Archives of', 'Count'], rows)
        : el('p', {class: 'muted', text: 'No named parts.'}));
    })).catch(fail);
    api('GET', ds('/' + enc(id) + '/shards'), {pageSize: 100}).then(guarded(function (b) {
      var rows = (b.shards || []).map(function (s) {
        return el('tr', {}, td(s.shardId), td(statusCell(s.statusName)), td(s.statusType),
          td(String(s.shardObjectsCount), 'num'), td(fmtTime(s.eventTimestamp)),
          td(s.statusMetadata && Object.keys(s.statusMetadata).length ? JSON.stringify(s.statusMetadata) : ''));
      });
      add(shards, rows.length ? table(['Shard', 'Status', 'Type', 'Objects', 'Updated', 'Details'], rows)
        : el('p', {class: 'muted', text: 'No shards (single uploads).'}));
    })).catch(fail);
    function loadFiles(reset) {
      if (reset) { clear(files); token = null; }
      var q = {pageSize: 60};
      if (token) q.nextPageToken = token;
      if (partSel.value) q.partName = partSel.value;
      api('GET', ds('/' + enc(id) + '/list'), q).then(guarded(function (b) {
        b.filesMetadata.forEach(function (f) { files.appendChild(fileCard(f)); });
        token = b.nextPageToken;
        more.hidden = !token;
      })).catch(fail);
    }
    partSel.addEventListener('change', function () { loadFiles(true); });
    more.addEventListener('click', function () { loadFiles(false); });
    loadFiles(true);
  }

  function fileCard(f) {
    var url = safeUrl(f.downloadURL);
    var thumb = f.contentType === 'image' && url
      ? el('img', {src: url, alt: f.fileName, loading: 'lazy'})
      : el('div', {class: 'thumb', text: f.contentType || 'file'});
    return el('div', {class: 'file'}, thumb,
      el('div', {text: f.fileName}),
      f.partName ? el('div', {class: 'muted', text: f.partName}) : null,
      url ? el('a', {href: url, download: f.fileName, class: 'download', text: 'download'}) : null);
  }

  /* ---- jobs ------------------------------------------------------------------------ */
  /* The job page's jobStatus words (docs/JOBS.md) from a listed JobMetadata. */
  function jobStatusOf(j) {
    var st = (j.lastNotification || {}).state;
    if (!j.isTerminal) return 'processing';
    if (st === 'succeeded') return 'completed';
    if (st === 'aborted') return 'aborted';
    return j.error ? 'failed' : String(st || 'completed');
  }
  /* The job list is a grid of div rows, not a table: a row's layout does not
   * depend on the others, and rows off screen are neither laid out nor
   * painted (content-visibility, app.css), so 1,000 rows render at once. */
  function jobsPage() {
    var tbody = el('div', {class: 'rows', role: 'rowgroup'});
    var more = el('button', {type: 'button', text: 'More', hidden: 'hidden'});
    var token = null;
    var cells = function (tag, kids) {
      return kids.map(function (k) { return el('span', {role: tag}, k); });
    };
    show([el('h1', {text: 'Jobs'}),
      el('div', {id: 'jobs', class: 'list', role: 'table'},
        el('div', {class: 'row head', role: 'row'}, cells('columnheader', ['Job', 'Name', 'Status', 'Stage', 'Progress', 'Images', 'Created'])),
        tbody), el('p', {}, more)]);
    var rows = {};
    function row(j) {
      var n = j.lastNotification || {};
      return el('div', {class: 'row', role: 'row', 'data-job': j.jobId}, cells('cell', [
        link('#/jobs/' + enc(j.jobId), j.jobId), j.name || '', statusCell(jobStatusOf(j)), j.currentStage || '', bar(n.progress),
        (n.imagesProcessed || 0) + ' / ' + (n.imagesTotal || 0) + (n.imagesFailed ? ' (' + n.imagesFailed + ' failed)' : ''),
        fmtTime(j.createdAt)]));
    }
    /* First page of up to 1000 jobs at once (newest first), then more on demand;
     * the running ones are refreshed every 2 s. */
    function load(first) {
      var q = {pageSize: 1000};
      if (!first && token) q.nextPageToken = token;
      api('GET', bp(''), q).then(guarded(function (b) {
        var frag = document.createDocumentFragment();
        b.jobs.forEach(function (j) { var r = row(j); rows[j.jobId] = r; frag.appendChild(r); });
        tbody.appendChild(frag);
        if (first && !b.jobs.length) tbody.appendChild(el('p', {class: 'muted', text: 'No jobs yet.'}));
        token = b.nextPageToken;
        more.hidden = !token;
        main.setAttribute('data-rendered', String(tbody.querySelectorAll('[data-job]').length));
        /* for bench/ui_bench.py: the rows are in the document, then painted */
        if (first && window.performance && performance.mark) {
          performance.mark('vbatch-jobs-rows');
          requestAnimationFrame(function () { requestAnimationFrame(function () { performance.mark('vbatch-jobs-painted'); }); });
        }
      })).catch(fail);
    }
    /* the newest 100 again: their rows are replaced, new jobs go on top */
    function refresh() {
      api('GET', bp(''), {pageSize: 100}).then(guarded(function (b) {
        var top = tbody.firstChild;
        setError(null);
        b.jobs.forEach(function (j) {
          var old = rows[j.jobId], r = row(j);
          rows[j.jobId] = r;
          if (old) old.parentNode.replaceChild(r, old);
          else tbody.insertBefore(r, top);
        });
        if (b.jobs.length && top && !top.getAttribute('data-job')) tbody.removeChild(top);
      })).catch(fail);
    }
    more.addEventListener('click', function () { load(false); });
    load(true);
    every(2000, refresh);
  }

  function jobPage(id) {
    var head = el('div', {id: 'job-head'});
    var stages = el('div', {id: 'stages'});
    var actions = el('div', {class: 'actions'});
    var sev = el('select', {id: 'log-severity'}, ['', 'info', 'warning', 'error'].map(function (s) {
      return el('option', {value: s, text: s || 'all severities'});
    }));
    var logs = el('div', {id: 'logs'});
    var exportBox = el('div', {id: 'export'});
    var abortBtn = el('button', {type: 'button', id: 'abort', class: 'danger', text: 'Abort'});
    var restartBtn = el('button', {type: 'button', id: 'restart', text: 'Restart'});
    var logsBtn = el('button', {type: 'button', id: 'show-logs', text: 'Show logs'});
    var logsOpen = false, exportShown = false, terminal = false;
    add(actions, [abortBtn, restartBtn]);
    show([el('h1', {}, 'Job ', el('span', {text: id})), head, actions,
      el('h2', {text: 'Stages'}), stages,
      el('h2', {text: 'Export'}), exportBox,
      el('h2', {text: 'Logs'}), el('div', {class: 'actions'}, logsBtn, el('label', {for: 'log-severity', text: 'Severity'}), sev), logs]);

    function refresh() {
      api('GET', bp('/' + enc(id))).then(guarded(function (b) {
        var j = b.job, n = j.lastNotification || {};
        setError(null);
        terminal = j.isTerminal;
        clear(head);
        add(head, table(['Status', 'Stage', 'Progress', 'Images', 'Created', 'Updated', 'Message'], [el('tr', {},
          td(el('span', {id: 'job-status', class: 'status-' + b.jobStatus, text: b.jobStatus})), td(j.currentStage || ''),
          td(bar(b.progress, 'job-progress')),
          td((n.imagesProcessed || 0) + ' / ' + (n.imagesTotal || 0) + (n.imagesFailed ? ' (' + n.imagesFailed + ' failed)' : ''), 'num'),
          td(fmtTime(j.createdAt)), td(fmtTime(j.lastUpdate)), td(n.message || ''))]));
        abortBtn.disabled = j.isTerminal;
        restartBtn.disabled = !j.isTerminal || b.jobStatus === 'completed';
        if (b.jobStatus === 'completed' && !exportShown) { exportShown = true; loadExport(); }
        if (!exportShown) { clear(exportBox); add(exportBox, el('p', {class: 'muted', text: 'The export is ready when the job has completed.'})); }
      })).catch(fail);
      api('GET', bp('/' + enc(id) + '/stages')).then(guarded(function (b) {
        var wrap = el('div');
        var pending = b.stages.map(function (s) {
          var n = s.notification || {};
          var box = el('div', {class: 'stage', 'data-stage': s.processingStageId},
            el('h2', {}, s.processingStageName + ' ', statusCell(s.statusType)),
            el('p', {}, bar(n.progress, 'stage-progress-' + s.processingStageId),
              (n.tasksDone || 0) + ' of ' + (n.tasksNumber || s.tasksNumber) + ' tasks done' +
              (n.tasksRunning ? ', ' + n.tasksRunning + ' running' : '')));
          wrap.appendChild(box);
          return api('GET', bp('/' + enc(id) + '/stages/' + enc(s.processingStageId) + '/tasks'), {pageSize: 100}).then(function (t) {
            add(box, table(['Task', 'State', 'Progress', 'Images', 'Attempts', 'Updated', 'Message'], t.tasks.map(function (k) {
              var tn = k.notification || {};
              return el('tr', {}, td(k.taskId), td(statusCell(tn.state || k.statusType)), td(bar(k.progress || 0)),
                td((tn.imagesProcessed || 0) + ' / ' + (tn.images || 0) + (tn.imagesFailed ? ' (' + tn.imagesFailed + ' failed)' : ''), 'num'),
                td(String(tn.attempts || 0), 'num'), td(fmtTime(k.eventTimestamp)), td(tn.message || ''));
            })));
          });
        });
        /* swap in one go once every task table is there: no flicker */
        Promise.all(pending).then(guarded(function () { clear(stages); add(stages, wrap); }), fail);
      })).catch(fail);
      if (logsOpen) loadLogs();
    }
    function loadLogs() {
      var q = {pageSize: 200};
      if (sev.value) q.severity = sev.value;
      api('GET', bp('/' + enc(id) + '/logs'), q).then(guarded(function (b) {
        clear(logs);
        add(logs, table(['Time', 'Severity', 'Type', 'Stage', 'Task', 'Details'], b.logs.map(function (l) {
          return el('tr', {class: 'log sev-' + l.severity, 'data-severity': l.severity},
            td(fmtTime(l.createdAt)), td(l.severity), td(l.logType), td(l.processingStageId || ''), td(l.taskId || ''),
            td(JSON.stringify(l.payload || {}), 'wrap'));
        }), {id: 'log-table'}));
        if (!b.logs.length) add(logs, el('p', {class: 'muted', text: 'No log entries' + (sev.value ? ' of severity ' + sev.value : '') + '.'}));
      })).catch(fail);
    }
    function loadExport() {
      api('GET', ds('/' + enc(id + '-export') + '/list'), {pageSize: 100}).then(guarded(function (b) {
        clear(exportBox);
        add(exportBox, table(['File', 'Part', 'Download'], b.filesMetadata.map(function (f) {
          var url = safeUrl(f.downloadURL);
          return el('tr', {}, td(f.fileName), td(f.partName || ''),
            td(url ? el('a', {href: url, download: f.fileName, class: 'export-download', text: 'download'}) : ''));
        }), {id: 'export-files'}));
      })).catch(fail);
    }
    function act(what, btn) {
      btn.disabled = true;
      api('POST', bp('/' + enc(id) + '/' + what)).then(function () { setError(null); exportShown = false; refresh(); }, function (e) { fail(e); refresh(); });
    }
    abortBtn.addEventListener('click', function () { if (confirm('Abort job ' + id + '?')) act('abort', abortBtn); });
    restartBtn.addEventListener('click', function () { act('restart', restartBtn); });
    logsBtn.addEventListener('click', function () { logsOpen = true; loadLogs(); });
    sev.addEventListener('change', function () { logsOpen = true; loadLogs(); });
    refresh();
    /* live progress: poll every second while the job runs, every 5 s after */
    var ticks = 0;
    every(1000, function () { ticks++; if (!terminal || ticks % 5 === 0) refresh(); });
  }

  /* ---- models and workflows --------------------------------------------------------- */
  function modelsPage() {
    var box = el('div');
    show([el('h1', {text: 'Models'}), box]);
    api('GET', md('')).then(guarded(function (b) {
      var rows = (b.models || []).map(function (m) {
        var sz = m.inputSize ? m.inputSize.width + '×' + m.inputSize.height : '';
        return el('tr', {}, td(m.modelId), td(m.scope || ''), td(m.task || ''), td(String(m.classCount === undefined ? '' : m.classCount), 'num'), td(sz));
      });
      add(box, rows.length ? table(['Model', 'Scope', 'Task', 'Classes', 'Input'], rows, {id: 'models'})
        : el('p', {class: 'muted', text: 'No models registered.'}));
    })).catch(fail);
  }

  function workflowsPage() {
    var box = el('div');
    show([el('h1', {text: 'Workflows'}), box]);
    api('GET', wf('')).then(guarded(function (b) {
      var rows = (b.workflows || []).map(function (w) {
        return el('tr', {}, td(link('#/workflows/' + enc(w.workflowId), w.workflowId)), td(fmtTime(w.createdAt)), td(fmtTime(w.updatedAt)));
      });
      add(box, rows.length ? table(['Workflow', 'Created', 'Updated'], rows, {id: 'workflows'})
        : el('p', {class: 'muted', text: 'No workflows.'}));
    })).catch(fail);
  }

  function workflowPage(id) {
    var box = el('div'), src = el('pre', {id: 'definition'});
    show([el('h1', {}, 'Workflow ', el('span', {text: id})), box, el('h2', {text: 'Definition'}), src]);
    api('GET', wf('/' + enc(id))).then(guarded(function (b) {
      src.textContent = JSON.stringify(b.definition, null, 2);
      add(box, workflowGraph(b.definition));
    })).catch(fail);
  }

  /* The graph of a definition: inputs, steps and outputs as boxes, an edge
   * for every selector ($inputs.x, $steps.y.z) found in a step's fields or
   * an output's selector; laid out in columns by longest path. */
  function workflowGraph(def) {
    var nodes = [], byKey = {}, edges = [];
    function node(kind, name, label) {
      var k = kind + ':' + name;
      if (!byKey[k]) { byKey[k] = {key: k, kind: kind, name: name, label: label || name, ins: []}; nodes.push(byKey[k]); }
      return byKey[k];
    }
    function refs(v, out) {
      if (typeof v === 'string') {
        var m = /^\$(inputs|steps)\.([A-Za-z0-9_-]+)/.exec(v);
        if (m) out.push((m[1] === 'inputs' ? 'input:' : 'step:') + m[2]);
      } else if (Array.isArray(v)) v.forEach(function (x) { refs(x, out); });
      else if (v && typeof v === 'object') Object.keys(v).forEach(function (k) { refs(v[k], out); });
      return out;
    }
    (def.inputs || []).forEach(function (i) { node('input', i.name, i.name + ' (' + String(i.type || '').replace(/^Workflow/, '') + ')'); });
    (def.steps || []).forEach(function (s) { node('step', s.name, s.name + ': ' + String(s.type || '').replace(/^roboflow_core\//, '')); });
    (def.outputs || []).forEach(function (o) { node('output', o.name); });
    function link2(from, to) {
      if (!byKey[from] || from === to.key) return;
      if (edges.some(function (e) { return e[0] === from && e[1] === to.key; })) return;
      edges.push([from, to.key]);
      to.ins.push(from);
    }
    (def.steps || []).forEach(function (s) {
      var me = byKey['step:' + s.name], r = {};
      Object.keys(s).forEach(function (k) { if (k !== 'type' && k !== 'name') r[k] = s[k]; });
      refs(r, []).forEach(function (f) { link2(f, me); });
    });
    (def.outputs || []).forEach(function (o) { refs(o.selector, []).forEach(function (f) { link2(f, byKey['output:' + o.name]); }); });
    /* columns: longest path from a node without inputs (cycles cut at the node count) */
    var depth = {};
    function d(n, seen) {
      if (depth[n.key] !== undefined) return depth[n.key];
      if (seen > nodes.length) return 0;
      var x = n.kind === 'input' ? 0 : 1;
      n.ins.forEach(function (f) { x = Math.max(x, d(byKey[f], seen + 1) + 1); });
      return (depth[n.key] = x);
    }
    var maxd = 0;
    nodes.forEach(function (n) { if (n.kind !== 'output') maxd = Math.max(maxd, d(n, 0)); });
    /* outputs in their own last column */
    nodes.forEach(function (n) { if (n.kind === 'output') depth[n.key] = maxd + 1; });
    var cols = [], W = 230, H = 44, GX = 70, GY = 18, pos = {};
    nodes.forEach(function (n) { (cols[depth[n.key]] = cols[depth[n.key]] || []).push(n); });
    var rowsMax = 0;
    cols.forEach(function (c, ci) {
      (c || []).forEach(function (n, ri) { pos[n.key] = {x: 10 + ci * (W + GX), y: 10 + ri * (H + GY)}; });
      rowsMax = Math.max(rowsMax, (c || []).length);
    });
    var NS = 'http://www.w3.org/2000/svg';
    function s(tag, attrs) {
      var e = document.createElementNS(NS, tag);
      Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
      for (var i = 2; i < arguments.length; i++) if (arguments[i]) e.appendChild(arguments[i]);
      return e;
    }
    var width = 20 + cols.length * (W + GX) - GX, height = 20 + rowsMax * (H + GY) - GY;
    var svg = s('svg', {class: 'graph', id: 'workflow-graph', width: width, height: height, viewBox: '0 0 ' + width + ' ' + height, role: 'img'});
    svg.appendChild(s('defs', {}, s('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto'},
      s('path', {d: 'M0,0 L10,5 L0,10 z'}))));
    edges.forEach(function (e) {
      var a = pos[e[0]], b = pos[e[1]];
      var x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
      svg.appendChild(s('path', {class: 'edge', 'data-from': e[0], 'data-to': e[1], 'marker-end': 'url(#arrow)',
        d: 'M' + x1 + ',' + y1 + ' C' + mx + ',' + y1 + ' ' + mx + ',' + y2 + ' ' + x2 + ',' + y2}));
    });
    nodes.forEach(function (n) {
      var p = pos[n.key];
      var label = n.label.length > 34 ? n.label.slice(0, 33) + '…' : n.label;
      var t = s('text', {x: p.x + 8, y: p.y + H / 2 + 4});
      t.textContent = label;
      var title = s('title');
      title.textContent = n.kind + ' ' + n.label;
      svg.appendChild(s('g', {class: 'node ' + n.kind, 'data-node': n.key},
        title, s('rect', {x: p.x, y: p.y, width: W, height: H}), t));
    });
    return svg;
  }

  /* ---- routing ---------------------------------------------------------------------- */
  function render() {
    generation++;
    stopTimers();
    setError(null);
    var signedIn = !!key();
    document.getElementById('nav').hidden = !signedIn;
    document.getElementById('signout').hidden = !signedIn;
    document.getElementById('who').textContent = signedIn ? 'workspace ' + ws() : '';
    if (!signedIn) { signInPage(); return; }
    var h = location.hash.replace(/^#\/?/, '');
    var parts = h.split('/').map(function (p) { try { return decodeURIComponent(p); } catch (e) { return p; } });
    var section = parts[0] || 'batches';
    Array.prototype.forEach.call(document.querySelectorAll('#nav a'), function (a) {
      a.className = a.getAttribute('data-section') === section ? 'active' : '';
    });
    var rest = parts.slice(1).join('/');
    if (section === 'batches') return rest ? batchPage(rest) : batchesPage();
    if (section === 'jobs') return rest ? jobPage(rest) : jobsPage();
    if (section === 'models') return modelsPage();
    if (section === 'workflows') return rest ? workflowPage(rest) : workflowsPage();
    show(el('p', {text: 'No such page.'}));
  }
  document.getElementById('signout').addEventListener('click', function () { signOut(null); });
  window.addEventListener('hashchange', render);
  render();
}());
