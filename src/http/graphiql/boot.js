// mapping-gateway's GraphiQL start-up, served by the gateway itself (no inline script, so the
// page's Content-Security-Policy can refuse every script that is not one of its own files).
//
// The fetcher sends the headers editor's headers with every HTTP operation and, for
// subscriptions, as the graphql-transport-ws `connection_init` payload: browsers cannot set
// headers on a WebSocket, and the gateway reads `Authorization` from that payload.
(function () {
  'use strict';

  // Content-Security-Policy refusals are kept where a test (or a curious user) can read them.
  window.mgwCspViolations = [];
  document.addEventListener('securitypolicyviolation', function (e) {
    window.mgwCspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
  });

  var base = document.body.getAttribute('data-base') || '';
  var httpUrl = base + '/graphql';
  var wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + base + '/graphql/ws';

  // One WebSocket client per set of headers: editing the key opens a new connection.
  var ws = { key: null, client: null };
  function wsClient(headers) {
    var key = JSON.stringify(headers || {});
    if (ws.key !== key) {
      if (ws.client) ws.client.dispose();
      ws.key = key;
      ws.client = graphqlWs.createClient({
        url: wsUrl,
        connectionParams: headers || {},
        lazy: true,
        retryAttempts: 0
      });
    }
    return ws.client;
  }

  // The operations of a document: each top-level definition's type and name, read with a small
  // scanner (comments and strings skipped, braces counted). GraphiQL works out the operation
  // name a moment after an edit, so a query run right after typing may come with the name of
  // the previous document; with a single operation in the document, that one is meant.
  function operations(query) {
    var text = query
      .replace(/"""[\s\S]*?"""/g, '""')
      .replace(/"(?:[^"\\\n]|\\.)*"/g, '""')
      .replace(/#[^\n\r]*/g, '');
    var found = [];
    var depth = 0;
    var re = /[{}]|\b(query|mutation|subscription|fragment)\b\s*([_A-Za-z][_0-9A-Za-z]*)?/g;
    var m;
    while ((m = re.exec(text)) !== null) {
      if (m[0] === '{') {
        if (depth === 0 && (found.length === 0 || found[found.length - 1].open)) {
          found.push({ type: 'query', name: null, open: false });
        }
        if (depth === 0) found[found.length - 1].open = true;
        depth++;
      } else if (m[0] === '}') {
        depth = Math.max(0, depth - 1);
      } else if (depth === 0) {
        found.push({ type: m[1], name: m[2] || null, open: false });
      }
    }
    return found.filter(function (d) { return d.type !== 'fragment'; });
  }

  // The operation that will run, with the name to send for it.
  function chosen(params) {
    var ops = operations(params.query || '');
    var named = ops.filter(function (d) { return d.name && d.name === params.operationName; });
    if (named.length) return named[0];
    return ops.length === 1 ? ops[0] : { type: 'query', name: params.operationName || null };
  }

  function closeMessage(e) {
    if (e && typeof e.code === 'number') {
      return 'WebSocket closed: ' + e.code + (e.reason ? ' ' + e.reason : '');
    }
    return (e && e.message) || String(e);
  }

  function subscribe(params, headers) {
    return {
      subscribe: function (observer) {
        var done = false;
        var stop = wsClient(headers).subscribe(params, {
          next: function (value) { observer.next(value); },
          error: function (e) {
            if (done) return;
            done = true;
            observer.next({ errors: [{ message: closeMessage(e) }] });
            observer.complete();
          },
          complete: function () { done = true; observer.complete(); }
        });
        return { unsubscribe: function () { done = true; stop(); } };
      }
    };
  }

  function post(params, headers) {
    var sent = { 'Content-Type': 'application/json', Accept: 'application/json' };
    Object.keys(headers || {}).forEach(function (k) { sent[k] = headers[k]; });
    return fetch(httpUrl, {
      method: 'POST',
      headers: sent,
      body: JSON.stringify(params),
      credentials: 'omit'
    }).then(function (r) {
      return r.text().then(function (text) {
        try {
          return JSON.parse(text);
        } catch (_) {
          return { errors: [{ message: 'HTTP ' + r.status + ': ' + text }] };
        }
      });
    });
  }

  function fetcher(params, opts) {
    var headers = (opts && opts.headers) || {};
    var op = chosen(params);
    var sent = { query: params.query, variables: params.variables };
    if (op.name) sent.operationName = op.name;
    return op.type === 'subscription' ? subscribe(sent, headers) : post(sent, headers);
  }

  var firstQuery = [
    '# Welcome to mapping-gateway.',
    '#',
    '# 1. Open "Headers" below and put your API key after "Bearer ".',
    '# 2. Run this query (Ctrl-Enter) to see your integrations, then',
    '#    query their elements, e.g.',
    '#    { elements(integrationId: "<an id from the list>", first: 20) {',
    '#        edges { node { fid name item } } } }',
    '',
    'query Integrations {',
    '  integrations {',
    '    id',
    '    name',
    '    active',
    '  }',
    '}',
    ''
  ].join('\n');

  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: firstQuery,
      defaultHeaders: '{\n  "Authorization": "Bearer "\n}',
      defaultEditorToolsVisibility: 'headers',
      shouldPersistHeaders: false
    })
  );
})();
