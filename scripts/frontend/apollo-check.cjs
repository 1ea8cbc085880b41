// Apollo Client 3 against a running gateway, as a front-end uses it with its defaults:
//  1. pages an integration's element tree with `relayStylePagination` (a `typePolicies` entry
//     on `Query`) to `totalCount`;
//  2. automatic persisted queries with `useGETForHashedQueries`: a hash alone over GET, the
//     text sent once when the gateway does not know it, then the hash alone again;
//  3. a validation error read as a GraphQL error (`graphQLErrors`), not as a network error;
//  4. a lookup that misses is null beside the rest of `data`, with its NOT_FOUND error;
//  5. the cache's ways back: `Project.integration`, `Integration.syncRuns`, and a run cached from
//     `startSync` updated by `syncProgress { run }` over graphql-ws, without a refetch;
//  6. the socket's origin (another page's origin is refused), the client's close echoed (1000),
//     and a preflight from an allowed origin (ALLOWED_ORIGIN) passing `traceparent`.
//
// Usage: node apollo-check.cjs <gateway origin> <API key> <integration id> [allowed origin]
// Exit 0 when every check holds; each check prints one line.
'use strict';

const { ApolloClient, InMemoryCache, HttpLink, gql } = require('@apollo/client/core');
const { relayStylePagination } = require('@apollo/client/utilities');
const { createPersistedQueryLink } = require('@apollo/client/link/persisted-queries');
const { createHash } = require('node:crypto');
const { split } = require('@apollo/client/link/core');
const { getMainDefinition } = require('@apollo/client/utilities');
const { GraphQLWsLink } = require('@apollo/client/link/subscriptions');
const { createClient } = require('graphql-ws');
const WebSocket = require('ws');

const [origin, key, integrationId, allowedOrigin] = process.argv.slice(2);
const wsUrl = `${origin.replace(/^http/, 'ws')}/graphql/ws`;
if (!origin || !key || !integrationId) {
  console.error('usage: node apollo-check.cjs <gateway origin> <API key> <integration id>');
  process.exit(2);
}

// Every request the client makes, to check methods and bodies.
const sent = [];
const recordingFetch = (url, init) => {
  sent.push({ method: (init && init.method) || 'GET', url: String(url), body: init && init.body });
  return fetch(url, init);
};

function client(extraLink) {
  const http = new HttpLink({
    uri: `${origin}/graphql`,
    fetch: recordingFetch,
    headers: { Authorization: `Bearer ${key}` },
  });
  return new ApolloClient({
    link: extraLink ? extraLink.concat(http) : http,
    cache: new InMemoryCache({
      typePolicies: { Query: { fields: { elements: relayStylePagination(['integrationId']) } } },
    }),
  });
}

function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) process.exitCode = 1;
}

const ELEMENTS = gql`
  query Elements($i: ID!, $after: String) {
    elements(integrationId: $i, first: 7, after: $after) {
      totalCount
      edges { cursor node { id fid splitters { kind ports { number status } } } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;

async function paginates() {
  const apollo = client();
  const watch = apollo.watchQuery({ query: ELEMENTS, variables: { i: integrationId } });
  // As a UI would: subscribed while it pages, the first answer awaited.
  let subscription;
  let { data } = await new Promise((resolve, reject) => {
    subscription = watch.subscribe({
      next: (r) => !r.loading && resolve(r),
      error: reject,
    });
  });
  let pages = 1;
  while (data.elements.pageInfo.hasNextPage) {
    await watch.fetchMore({ variables: { after: data.elements.pageInfo.endCursor } });
    data = watch.getCurrentResult().data;
    pages += 1;
    if (pages > 1000) break;
  }
  subscription.unsubscribe();
  const ids = new Set(data.elements.edges.map((e) => e.node.id));
  check(
    ids.size === data.elements.totalCount && data.elements.edges.length === ids.size,
    `relayStylePagination merged ${pages} pages into ${ids.size} of ${data.elements.totalCount} elements`,
  );
}

async function persistedQueries() {
  const sha256 = (text) => createHash('sha256').update(text).digest('hex');
  const apq = createPersistedQueryLink({ sha256, useGETForHashedQueries: true });
  const apollo = client(apq);
  // A text of its own, so the gateway cannot know its hash yet.
  const query = gql`query Names${Date.now()} { integrations { id name } }`;
  const from = sent.length;
  const first = await apollo.query({ query, fetchPolicy: 'network-only' });
  const second = await apollo.query({ query, fetchPolicy: 'network-only' });
  const calls = sent.slice(from);
  const methods = calls.map((c) => c.method).join(',');
  check(
    first.data.integrations.length > 0 && second.data.integrations.length > 0,
    'persisted queries answer',
  );
  // Unknown hash over GET, its text once over POST, then the hash alone over GET.
  check(methods === 'GET,POST,GET', `requests were ${methods} (GET,POST,GET expected)`);
  check(
    !calls[2].url.includes('query=') && calls[2].url.includes('persistedQuery'),
    'the last request carried the hash alone',
  );
}

async function validationErrors() {
  const apollo = client();
  try {
    const result = await apollo.query({
      query: gql`query Bad { integrations { noSuchField } }`,
      errorPolicy: 'all',
    });
    const codes = (result.errors || []).map((e) => e.extensions && e.extensions.code);
    check(codes.includes('VALIDATION'), `a validation error is a GraphQL error (${codes})`);
  } catch (e) {
    check(false, `a validation error is a GraphQL error, got ${e.name}: ${e.message}`);
  }
}

async function nullLookups() {
  const apollo = client();
  const result = await apollo.query({
    query: gql`query Miss { gateways { kind } binding(id: "QmluZGluZzo5OTk5OQ") { id } }`,
    errorPolicy: 'all',
    fetchPolicy: 'network-only',
  });
  const codes = (result.errors || []).map((e) => e.extensions && e.extensions.code);
  check(
    result.data && result.data.binding === null && result.data.gateways.length > 0,
    `a missing binding is null beside the rest of data (${JSON.stringify(result.data)})`,
  );
  check(codes.join() === 'NOT_FOUND', `its error is NOT_FOUND (${codes})`);
}

async function cacheShapes() {
  const ws = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${key}` },
  });
  const http = new HttpLink({ uri: `${origin}/graphql`, headers: { Authorization: `Bearer ${key}` } });
  const link = split(
    ({ query }) => {
      const d = getMainDefinition(query);
      return d.kind === 'OperationDefinition' && d.operation === 'subscription';
    },
    new GraphQLWsLink(ws),
    http,
  );
  const apollo = new ApolloClient({
    link,
    cache: new InMemoryCache({
      typePolicies: { Integration: { fields: { syncRuns: relayStylePagination() } } },
    }),
  });
  const { data } = await apollo.query({
    query: gql`
      query Back($i: ID!) {
        integration(id: $i) {
          id
          project { id integration { id name } }
          syncRuns(first: 1) { totalCount edges { node { id status } } pageInfo { hasNextPage endCursor } }
        }
      }
    `,
    variables: { i: integrationId },
  });
  check(
    data.integration.project.integration.id === integrationId,
    'Project.integration leads back to the cached integration',
  );
  check(
    data.integration.syncRuns.totalCount >= 1 && data.integration.syncRuns.edges.length === 1,
    `Integration.syncRuns pages (${data.integration.syncRuns.totalCount} runs)`,
  );
  const started = await apollo.mutate({
    mutation: gql`mutation Start($i: ID!) { startSync(integrationId: $i, mode: INCREMENTAL) { id status } }`,
    variables: { i: integrationId },
  });
  const run = started.data.startSync;
  const runRef = apollo.cache.identify({ __typename: 'SyncRun', id: run.id });
  await new Promise((resolve, reject) => {
    apollo
      .subscribe({
        query: gql`
          subscription Follow($r: ID!) {
            syncProgress(runId: $r) { runPhase run { id status progress { phase } } }
          }
        `,
        variables: { r: run.id },
      })
      .subscribe({ complete: resolve, error: reject });
  });
  const cached = apollo.cache.readFragment({
    id: runRef,
    fragment: gql`fragment Cached on SyncRun { status progress { phase } }`,
  });
  check(
    cached && cached.status === 'SUCCEEDED' && cached.progress.phase === 'DONE',
    `the run cached from startSync ended in the cache from syncProgress (${JSON.stringify(cached)})`,
  );
  await ws.dispose();
}

function socket(options) {
  return new Promise((resolve) => {
    const s = new WebSocket(wsUrl, 'graphql-transport-ws', options);
    s.on('unexpected-response', (_, res) => resolve({ status: res.statusCode }));
    s.on('open', () => resolve({ status: 101, socket: s }));
    s.on('error', (e) => resolve({ status: 0, error: String(e) }));
  });
}

async function socketsAndPreflights() {
  const refused = await socket({ origin: 'https://refused.example' });
  check(refused.status === 403, `a socket from another page's origin is refused (${refused.status})`);
  const opened = await socket({});
  if (opened.socket) {
    const s = opened.socket;
    const code = await new Promise((resolve) => {
      s.on('message', (m) => {
        if (JSON.parse(m).type === 'connection_ack') s.close(1000);
      });
      s.on('close', (c) => resolve(c));
      s.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${key}` } }));
    });
    check(code === 1000, `the client's close is echoed (${code})`);
  } else {
    check(false, `a socket without Origin opens (${opened.status})`);
  }
  if (allowedOrigin) {
    const res = await fetch(`${origin}/graphql`, {
      method: 'OPTIONS',
      headers: {
        Origin: allowedOrigin,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,authorization,traceparent',
      },
    });
    const allowed = (res.headers.get('access-control-allow-headers') || '').toLowerCase();
    check(
      res.ok && allowed.includes('traceparent'),
      `a preflight from ${allowedOrigin} allows traceparent (${res.status} ${allowed})`,
    );
  }
}

(async () => {
  await paginates();
  await persistedQueries();
  await validationErrors();
  await nullLookups();
  await cacheShapes();
  await socketsAndPreflights();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
