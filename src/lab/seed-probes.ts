// For each seed policy file, connections in the demo world that it must allow and must deny when
// applied on its own. The tests assert them on real traffic; the demo runs them stage by stage.
// Why each one holds is in the comment beside it. Kafka rules are enforced per request by the node
// proxy's Kafka handler; HTTP requests an L7 rule refuses are `l7Denied`: the node's proxy answers
// them `403` and the server never sees them; toFQDNs allows what the DNS proxy learned.
import type { Probe } from './probes.js';

export interface SeedCase {
  readonly file: string;
  readonly allowed: readonly Probe[];
  readonly denied: readonly Probe[];
  /** HTTP requests on an L7-policed port that the rules refuse: `403 Access denied` from the proxy. */
  readonly l7Denied?: readonly Probe[];
}

const http = (from: string, to: string, port = 8080, path = '/', method?: string): Probe => ({
  from,
  to,
  port,
  kind: 'http',
  path,
  ...(method ? { method } : {}),
});
/** A produce of one message to the lab's broker (default/kafka:9092). */
const kafka = (from: string, topic: string): Probe => ({ from, to: 'default/kafka', port: 9092, kind: 'kafka', topic });
const dns = (from: string, name: string): Probe => ({ from, to: 'kube-system/coredns', port: 53, kind: 'dns', name });

export const SEED_CASES: readonly SeedCase[] = [
  {
    file: '01-np-default-deny-ingress.yaml',
    // Only production's ingress is closed; shop is untouched.
    allowed: [http('production/frontend', 'shop/backend')],
    denied: [http('production/frontend', 'production/backend')],
  },
  {
    file: '02-np-allow-frontend-to-backend.yaml',
    allowed: [http('production/frontend', 'production/backend')],
    denied: [http('production/reporting', 'production/backend')],
  },
  {
    file: '03-np-allow-monitoring-namespace.yaml',
    allowed: [http('monitoring/prometheus', 'production/my-service')],
    denied: [http('production/frontend', 'production/my-service')],
  },
  {
    file: '04-cnp-allow-get-api-only.yaml',
    allowed: [http('production/frontend', 'production/my-api', 8080, '/api/v1/items')],
    denied: [http('production/reporting', 'production/my-api', 8080, '/api/v1/items')],
    l7Denied: [
      http('production/frontend', 'production/my-api', 8080, '/api/v1/items', 'DELETE'),
      http('production/frontend', 'production/my-api', 8080, '/admin'),
      http('production/frontend', 'production/my-api', 8080, '/api/v1/orders', 'POST'),
    ],
  },
  {
    file: '05-cnp-allow-external-dns.yaml',
    // Egress is enforced with no DNS rule: the lookup itself is dropped (the trap the seed names).
    // Ingress to my-service is not policed by it.
    allowed: [http('production/frontend', 'production/my-service')],
    denied: [dns('production/my-service', 'api.example.com')],
  },
  {
    file: '06-cnp-kafka-egress-orders.yaml',
    allowed: [kafka('production/order-client', 'orders')],
    // The produce role names topic "orders" only: the L7 proxy refuses another topic.
    denied: [http('production/order-client', 'production/backend'), kafka('production/order-client', 'payment-events')],
  },
  {
    file: '07-cnp-allow-specific-api-headers.yaml',
    allowed: [http('default/frontend', 'default/backend-api', 8080, '/api/v1/public/x')],
    denied: [http('default/order-processor', 'default/backend-api', 8080, '/api/v1/public/x')],
    // POST /api/v1/users needs `X-API-Key: required`, which curl does not send.
    l7Denied: [
      http('default/frontend', 'default/backend-api', 8080, '/api/v1/users', 'POST'),
      http('default/frontend', 'default/backend-api', 8080, '/api/v1/private/x'),
    ],
  },
  {
    file: '08-np-payment-service-ingress.yaml',
    allowed: [http('checkout/checkout-service', 'payments/payment-service')],
    denied: [http('checkout/cart', 'payments/payment-service')],
  },
  {
    file: '09-cnp-payment-service-l7.yaml',
    allowed: [http('checkout/checkout-service', 'payments/payment-service', 8080, '/api/v1/payments/1')],
    denied: [http('checkout/cart', 'payments/payment-service', 8080, '/api/v1/payments/1')],
    l7Denied: [
      http('checkout/checkout-service', 'payments/payment-service', 8080, '/api/v1/payments/1', 'DELETE'),
      http('checkout/checkout-service', 'payments/payment-service', 8080, '/api/v1/payments/1', 'POST'),
      http('checkout/checkout-service', 'payments/payment-service', 8080, '/api/v1/refunds'),
    ],
  },
  {
    file: '10-cnp-kafka-order-processor.yaml',
    // order-processor may produce orders.processed (and consume orders.created); the L7 proxy
    // refuses its produce to payment-events; order-client is not selected at all.
    allowed: [kafka('default/order-processor', 'orders.processed')],
    denied: [kafka('default/order-processor', 'payment-events'), kafka('production/order-client', 'orders.processed')],
  },
  {
    file: '11-cnp-payment-service-egress.yaml',
    allowed: [dns('payments/payment-service', 'api.stripe.com')],
    denied: [kafka('payments/payment-service', 'payment-events')],
  },
  {
    file: '12-ccnp-zero-trust-baseline.yaml',
    // Every endpoint is default-deny both ways; the node itself still reaches its pods (health
    // checks), as with Cilium's allow-localhost.
    allowed: [http('node:n1', 'production/backend')],
    denied: [http('shop/frontend', 'shop/backend')],
  },
  {
    file: '13-cnp-mutual-auth.yaml',
    // Ingress from world needs authentication that never happens in the lab: dropped. The pod's
    // egress is not policed by this policy.
    allowed: [kafka('default/payment-service', 'payment-events')],
    denied: [http('world', 'default/payment-service')],
  },
  {
    file: '14-cnp-microservices-l3l4-and-get.yaml',
    allowed: [http('microservices/frontend', 'microservices/backend')],
    denied: [http('microservices/ci-runner', 'microservices/backend'), http('microservices/ci-runner', 'world', 443)],
  },
  {
    file: '15-cnp-shop.yaml',
    // The file's `default-deny` has empty ingress and egress lists, which in Cilium apply in
    // neither direction; backend's egress is enforced by egress-stripe (DNS + toFQDNs only).
    // By name on 443: api.stripe.com resolves through the DNS proxy, which puts its address in
    // the ipcache before the answer, so the connection is allowed; api.github.com is refused.
    allowed: [
      dns('shop/backend', 'api.stripe.com'),
      http('shop/frontend', 'shop/backend', 8080, '/api/v1/items'),
      http('shop/backend', 'name:api.stripe.com', 443),
    ],
    denied: [kafka('shop/backend', 'orders'), http('shop/backend', 'name:api.github.com', 443)],
    l7Denied: [
      http('shop/frontend', 'shop/backend', 8080, '/api/v1/items', 'DELETE'),
      http('shop/frontend', 'shop/backend', 8080, '/'),
    ],
  },
];
