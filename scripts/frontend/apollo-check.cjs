// Apollo Client 3 against a running gateway, as a front-end uses it with its defaults:
//  1. pages an integration's element tree with `relayStylePagination` (a `typePolicies` entry
//     on `Query`) to `totalCount`;
//  2. automatic persisted queries with `useGETForHashedQueries`: a hash alone over GET, the
//     text sent once when the gateway does not know it, then the hash alone again;
//  3. a validation error read as a GraphQL error (`graphQLErrors`), not as a network error.
//
// Usage: node apollo-check.cjs <gateway origin> <API key> <integration id>
// Exit 0 when every check holds; each check prints one line.
'use strict';

const { ApolloClient, InMemoryCache, HttpLink, gql } = require('@apollo/client/core');
const { relayStylePagination } = require('@apollo/client/utilities');
const { createPersistedQueryLink } = require('@apollo/client/link/persisted-queries');
const { createHash } = require('node:crypto');

const [origin, key, integrationId] = process.argv.slice(2);
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

(async () => {
  await paginates();
  await persistedQueries();
  await validationErrors();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
