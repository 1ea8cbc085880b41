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

  // A shared link (`/graphql?query=…&variables=…&operationName=…`) opens what it links; the
  // address follows the editors, so the address bar is always a link to what is on screen.
  var linked = new URLSearchParams(window.location.search);

  function welcome(hasKey) {
    return [
      '# Welcome to mapping-gateway.',
      '#',
      hasKey
        ? '# 1. Your key is in Headers below: the docs\n#    on the left load with it.'
        : '# 1. Put your API key after "Bearer " in\n#    Headers below; the docs on the left\n#    load once it is accepted.',
      '# 2. Run this query (Ctrl-Enter) to list',
      '#    the integrations; then ask for the',
      '#    elements of one of them:',
      '#    elements(integrationId: "…", first: 20)',
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
  }

  function follow(name) {
    return function (value) {
      var now = new URLSearchParams(window.location.search);
      if (value) now.set(name, value);
      else now.delete(name);
      var search = now.toString();
      window.history.replaceState(
        null,
        '',
        window.location.pathname + (search ? '?' + search : '') + window.location.hash
      );
    };
  }

  // The schema is fetched here rather than by GraphiQL: with the key of the headers editor, as
  // soon as it changes (a pause in typing), and not at all without one. Until a key is accepted
  // the page says where to put it instead of showing the refusal.
  var GQL = GraphiQL.GraphQL;
  // A key handed over in the URL's fragment (`#key=mgw_…`, the link the demo prints): never
  // sent to the server, and taken out of the address bar and history once read.
  var demoKey = '';
  var fragment = /(?:^#|&)key=([A-Za-z0-9_]+)(?:&|$)/.exec(window.location.hash || '');
  if (fragment) {
    demoKey = fragment[1];
    window.history.replaceState(null, '', window.location.pathname + window.location.search);
  }
  var startHeaders = '{\n  "Authorization": "Bearer ' + demoKey + '"\n}';

  // The headers of the editor's text, or null while it is not a JSON object.
  function parseHeaders(text) {
    try {
      var h = JSON.parse(text || '{}');
      return h && typeof h === 'object' && !Array.isArray(h) ? h : null;
    } catch (_) {
      return null;
    }
  }

  function keyOf(headers) {
    var value = String(headers.Authorization || headers.authorization || '');
    var m = /^Bearer\s+(\S+)\s*$/i.exec(value);
    return m ? m[1] : '';
  }

  var notes = {
    'no-key': [
      'Welcome to mapping-gateway. Put your API key in ',
      'Headers',
      ' (below the query): "Authorization": "Bearer mgw_…". The documentation and ' +
        'autocompletion load as soon as the key is accepted. No key yet? Run ' +
        '`mapping-gateway keys create --role VIEWER --name me`.'
    ],
    loading: ['Checking the key…'],
    refused: [
      'That key was refused (UNAUTHENTICATED): check it in ',
      'Headers',
      ', or make one with `mapping-gateway keys create`.'
    ]
  };

  function Welcome(props) {
    var parts = notes[props.state] || ['The schema could not be loaded: ' + props.message];
    return React.createElement(
      'div',
      { className: 'mgw-welcome', role: 'status', 'data-state': props.state },
      parts.map(function (p, i) {
        return i % 2 === 1 ? React.createElement('strong', { key: i }, p) : p;
      })
    );
  }

  function App() {
    var pair = React.useState({ schema: null, state: 'no-key', message: '' });
    var view = pair[0];
    var setView = pair[1];
    var asked = React.useRef(undefined);
    var timer = React.useRef(null);

    var load = React.useCallback(function (text) {
      var headers = parseHeaders(text);
      if (!headers) return;
      var key = keyOf(headers);
      if (key === asked.current) return;
      asked.current = key;
      if (!key) {
        setView({ schema: null, state: 'no-key', message: '' });
        return;
      }
      setView(function (v) { return { schema: v.schema, state: 'loading', message: '' }; });
      post({ query: GQL.getIntrospectionQuery(), operationName: 'IntrospectionQuery' }, headers).then(
        function (result) {
          if (asked.current !== key) return;
          if (result && result.data && result.data.__schema) {
            setView({ schema: GQL.buildClientSchema(result.data), state: 'ready', message: '' });
            return;
          }
          var error = (result && result.errors && result.errors[0]) || {};
          var code = error.extensions && error.extensions.code;
          // A schema already loaded stays: the documentation does not depend on the key.
          setView(function (v) {
            return {
              schema: v.schema,
              state: code === 'UNAUTHENTICATED' ? 'refused' : 'failed',
              message: error.message || 'no answer'
            };
          });
        },
        function (e) {
          if (asked.current === key) setView({ schema: null, state: 'failed', message: String(e) });
        }
      );
    }, []);

    React.useEffect(function () { load(startHeaders); }, [load]);

    function onEditHeaders(text) {
      clearTimeout(timer.current);
      timer.current = setTimeout(function () { load(text); }, 300);
    }

    return React.createElement(
      React.Fragment,
      null,
      view.state === 'ready' ? null : React.createElement(Welcome, view),
      React.createElement(GraphiQL, {
        fetcher: fetcher,
        schema: view.schema,
        onEditHeaders: onEditHeaders,
        defaultQuery: welcome(!!demoKey),
        query: linked.get('query') || undefined,
        variables: linked.get('variables') || undefined,
        operationName: linked.get('operationName') || undefined,
        onEditQuery: follow('query'),
        onEditVariables: follow('variables'),
        onEditOperationName: follow('operationName'),
        defaultHeaders: startHeaders,
        defaultEditorToolsVisibility: 'headers',
        shouldPersistHeaders: false
      })
    );
  }

  ReactDOM.createRoot(document.getElementById('graphiql')).render(React.createElement(App));
})();
