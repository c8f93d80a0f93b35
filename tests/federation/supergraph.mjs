// A supergraph for tests/federation/test_apollo_gateway.py: a small CRM subgraph
// (@apollo/subgraph) and a real @apollo/gateway composing it with the finance gateway
// (IntrospectAndCompose), each served by @apollo/server on a free loopback port.
//
// Environment:
//   LEDGER_URL              the finance gateway's /graphql
//   SUBGRAPH_AUTHORIZATION  credential for the gateway's own requests (the `_service` query
//                           at start-up); a client's Authorization header is forwarded instead
//   CRM_NOTES               JSON: Customer global id -> notes
//   CRM_FOLLOW_UPS          JSON: [{note, customerId}] (a customer id as the CRM stored it)
//
// Prints `READY {"gateway": url, "crm": url}` once both answer (Apollo's own messages may come
// before it on stdout); runs until killed.
import { ApolloGateway, IntrospectAndCompose, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';

const notes = JSON.parse(process.env.CRM_NOTES ?? '{}');
const followUps = JSON.parse(process.env.CRM_FOLLOW_UPS ?? '[]');

const crmTypeDefs = parse(`
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])

  type Customer @key(fields: "id") {
    id: ID!
    crmNotes: [String!]!
  }

  type FollowUp {
    note: String!
    customer: Customer
  }

  type Query {
    crmFollowUps: [FollowUp!]!
  }
`);

const crmResolvers = {
  Customer: {
    __resolveReference: (reference) => ({ id: reference.id }),
    crmNotes: (customer) => notes[customer.id] ?? [],
  },
  Query: {
    crmFollowUps: () =>
      followUps.map(({ note, customerId }) => ({ note, customer: { id: customerId } })),
  },
};

const crm = new ApolloServer({
  schema: buildSubgraphSchema([{ typeDefs: crmTypeDefs, resolvers: crmResolvers }]),
  plugins: [ApolloServerPluginInlineTraceDisabled()],
});
const { url: crmUrl } = await startStandaloneServer(crm, {
  listen: { host: '127.0.0.1', port: 0 },
});

// Forward the caller's credential to every subgraph; the gateway's own requests (loading
// the subgraphs' SDL) carry SUBGRAPH_AUTHORIZATION.
class ForwardAuthorization extends RemoteGraphQLDataSource {
  willSendRequest({ request, context }) {
    const authorization = context?.authorization ?? process.env.SUBGRAPH_AUTHORIZATION;
    if (authorization) {
      request.http.headers.set('authorization', authorization);
    }
  }
}

const gateway = new ApolloGateway({
  supergraphSdl: new IntrospectAndCompose({
    subgraphs: [
      { name: 'ledger', url: process.env.LEDGER_URL },
      { name: 'crm', url: crmUrl },
    ],
  }),
  buildService: ({ url }) => new ForwardAuthorization({ url }),
});

const server = new ApolloServer({ gateway });
const { url: gatewayUrl } = await startStandaloneServer(server, {
  listen: { host: '127.0.0.1', port: 0 },
  context: async ({ req }) => ({ authorization: req.headers.authorization }),
});

process.stdout.write(`READY ${JSON.stringify({ gateway: gatewayUrl, crm: crmUrl })}\n`);
