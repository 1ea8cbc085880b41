// Fragments a Relay front-end of the gateway writes: a box card refetched by its id (Node), a
// paginated list of an integration's boxes (@connection over `elements`), and a project with
// its own paginated boxes. `scripts/frontend-check` compiles them with relay-compiler against
// schema.graphql; the generated artifacts are committed, and tests/relay_fixture.rs runs their
// queries against the gateway.
import { graphql } from 'relay-runtime';

export const elementCard = graphql`
  fragment ElementCard_element on Element
  @refetchable(queryName: "ElementCardRefetchQuery") {
    fid
    name
    item
    splitters {
      fid
      kind
      ports {
        number
        status
      }
    }
  }
`;

export const integrationElements = graphql`
  fragment IntegrationElements_query on Query
  @refetchable(queryName: "IntegrationElementsPaginationQuery")
  @argumentDefinitions(
    integrationId: { type: "ID!" }
    count: { type: "Int", defaultValue: 20 }
    cursor: { type: "String" }
  ) {
    elements(integrationId: $integrationId, first: $count, after: $cursor)
      @connection(key: "IntegrationElements_elements") {
      totalCount
      edges {
        node {
          id
          ...ElementCard_element
        }
      }
    }
  }
`;

export const projectElements = graphql`
  fragment ProjectElements_project on Project
  @refetchable(queryName: "ProjectElementsPaginationQuery")
  @argumentDefinitions(
    count: { type: "Int", defaultValue: 20 }
    cursor: { type: "String" }
  ) {
    name
    elements(first: $count, after: $cursor)
      @connection(key: "ProjectElements_elements") {
      edges {
        node {
          fid
        }
      }
    }
  }
`;

export const appQuery = graphql`
  query AppQuery($integrationId: ID!) {
    ...IntegrationElements_query @arguments(integrationId: $integrationId)
    integration(id: $integrationId) {
      name
      project {
        ...ProjectElements_project
      }
    }
  }
`;
