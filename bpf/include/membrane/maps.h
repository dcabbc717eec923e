/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every struct the Membrane datapath shares with user space. This header is the only copy of these
 * layouts: the codecs in src/datapath/maps/ and src/datapath/event-codec.ts mirror it, and
 * test/datapath/codec-layout.test.ts checks the mirror against the BTF of bpf/membrane.bpf.o.
 *
 * Byte order: IPv4 addresses and the policy key's dport are network order (the LPM trie compares
 * bytes most-significant first, so a port prefix only works big-endian). Everything else is host
 * order. No struct has implicit padding: hashed keys are compared as raw bytes.
 */
#ifndef MEMBRANE_MAPS_H
#define MEMBRANE_MAPS_H

/* Pinned map names (user space opens them by these names under <pinDir>/maps/). */
#define MBR_MAX_ENDPOINTS 4096

/* Reserved identities the datapath itself uses. */
#define MBR_IDENTITY_WORLD 2

/* Direction as stored in keys and events: 0 ingress (to the pod), 1 egress (from the pod). */
#define MBR_DIR_INGRESS 0
#define MBR_DIR_EGRESS 1

/* mbr_ipcache: LPM trie. prefixlen counts bits of addr. Read by src/datapath/maps/ipcache-map.ts. */
struct mbr_ipcache_key {
	__u32 prefixlen;
	__u32 addr; /* network order */
};

/* The address is an endpoint of this node (its own to_pod hook reports what reaches it). */
#define MBR_IPCACHE_F_LOCAL_ENDPOINT 0x01

struct mbr_ipcache_value {
	__u32 identity;
	__u32 flags;   /* MBR_IPCACHE_F_* */
	__u32 ifindex; /* a local endpoint's host-side veth (local delivery), else 0 */
};

/*
 * mbr_policy (hash of maps: endpoint ID -> this endpoint's LPM trie). prefixlen counts bits after
 * itself: identity 32 + egress 8 + protocol 8 + dport 0..16. A key with protocol 0 has prefixlen 40
 * (any protocol, any port). Mirrors PolicyKey of src/policy/map-state-types.ts; codec in
 * src/datapath/maps/policy-map.ts.
 */
struct mbr_policy_key {
	__u32 prefixlen;
	__u32 identity; /* host order; always matched in full */
	__u8 egress;
	__u8 protocol;
	__u16 dport; /* network order */
};

#define MBR_POLICY_F_DENY 0x01

struct mbr_policy_entry {
	__u16 proxy_port; /* host order; 0 = no L7 redirect */
	__u8 flags;	  /* MBR_POLICY_F_* */
	__u8 auth_type;	  /* 0 none, 1 spire, 2 always-fail */
	__u8 l4_prefix_len; /* protocol bits + port bits of the key (0, 8, 9..24): the lookup needs it */
	__u8 pad[3];
};

/* Prefix lengths of the key's fixed part. */
#define MBR_POLICY_PREFIX_ID_DIR 40
#define MBR_POLICY_PREFIX_FULL 64

/*
 * mbr_endpoints: hash, host-side veth ifindex (in the node's netns) -> endpoint. Written by
 * src/datapath/maps/endpoint-map.ts when an endpoint is attached.
 */
#define MBR_EP_F_AUDIT 0x01		/* policy drops are reported and let through */
#define MBR_EP_F_NO_ENFORCE_INGRESS 0x02
#define MBR_EP_F_NO_ENFORCE_EGRESS 0x04
#define MBR_EP_F_LEGACY_TC 0x08 /* attached with cls_bpf, not tcx; the programs ignore it */
/* Both MACs are known: packets between two such endpoints skip the node's IP stack. mbr_from_pod
 * runs the sender's egress and the receiver's ingress enforcement, rewrites the MACs, decrements the
 * TTL and hands the packet to the receiver's eth0 (bpf_redirect_peer), as Cilium's local delivery. */
#define MBR_EP_F_LOCAL_DELIVERY 0x10
/* The endpoint's policy is the slot B trie: mbr_policy[endpoint_id << 1 | 1] (else slot A, | 0).
 * src/datapath/endpoint-policy.ts writes a change to the other slot, then flips this flag: a
 * policy change is published by one update of this entry, with no map-in-map write. */
#define MBR_EP_F_POLICY_SLOT_B 0x20

struct mbr_endpoint_info {
	__u32 endpoint_id;
	__u32 identity;
	__u32 ipv4; /* network order */
	__u32 flags;
	/* Bumped after each policy swap; conntrack entries checked against an older revision are
	 * re-checked against the policy on their next forward packet. */
	__u32 policy_revision;
	__u8 pod_mac[6];  /* the pod's eth0 */
	__u8 host_mac[6]; /* the host-side veth: the source MAC of what the node sends into the pod */
};

/*
 * mbr_ct4: LRU hash, one entry per (flow, endpoint). The key is the flow's tuple as the endpoint
 * sees it, its own address and port first: both directions of a flow find the entry with one
 * lookup, and the two halves of a pod-to-pod flow (the sender's and the receiver's) are two
 * entries. dir in the entry tells in which direction the flow was opened. ICMP echo uses the
 * identifier as the endpoint's port, remote port 0. Read by src/datapath/maps/ct-map.ts
 * (`membrane bpf ct list global`).
 */
struct mbr_ct_key {
	__u32 local_addr;  /* the endpoint's address, network order */
	__u32 remote_addr; /* network order */
	__u16 local_port;  /* host order */
	__u16 remote_port; /* host order */
	__u8 protocol;
	__u8 pad[3];
};

#define MBR_CT_F_RX_CLOSING 0x01
#define MBR_CT_F_TX_CLOSING 0x02
#define MBR_CT_F_SEEN_NON_SYN 0x04
#define MBR_CT_F_PROXY_REDIRECT 0x08
#define MBR_CT_F_SEEN_REPLY 0x10
#define MBR_CT_F_REMOTE_LOCAL 0x20 /* the remote is an endpoint of this node (ipcache flag at create) */

struct mbr_ct_entry {
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
	__u32 lifetime;	      /* CLOCK_MONOTONIC seconds at which the entry expires */
	__u32 src_sec_id;     /* remote identity when the flow was admitted */
	__u32 policy_revision; /* endpoint policy revision the flow was last checked against */
	__u16 flags;	      /* MBR_CT_F_* */
	__u8 tx_flags_seen;   /* TCP flags seen in the forward direction */
	__u8 rx_flags_seen;   /* TCP flags seen in the reply direction */
	__u16 proxy_port;
	__u8 dir;	      /* MBR_DIR_* the flow was opened in: tx is that direction, rx the reply */
	__u8 pad0;
	__u32 last_tx_report; /* CLOCK_MONOTONIC seconds of the last trace event per direction */
	__u32 last_rx_report;
	__u32 peer_ifindex; /* the remote endpoint's host-side veth when it is on this node, else 0 */
};

/* Timeouts in seconds (Cilium's defaults). */
#define MBR_CT_SYN_TIMEOUT 60
#define MBR_CT_TCP_TIMEOUT 21600
#define MBR_CT_CLOSE_TIMEOUT 10
#define MBR_CT_ANY_TIMEOUT 60
/* A direction of a flow is traced again after this many seconds without a report (Cilium's
 * CT_REPORT_INTERVAL), and at once when it carries a TCP flag of MBR_CT_REPORT_FLAGS not seen yet. */
#define MBR_CT_REPORT_INTERVAL 5
#define MBR_CT_REPORT_FLAGS 0x07 /* FIN, SYN, RST */

/* mbr_auth: hash, (local, remote identity, auth type) -> expiry in CLOCK_MONOTONIC ns. */
struct mbr_auth_key {
	__u32 local_identity;
	__u32 remote_identity;
	__u8 auth_type;
	__u8 pad[3];
};

struct mbr_auth_value {
	__u64 expiry_ns;
};

/*
 * mbr_metrics: per-CPU array indexed by (dir << 8) | reason, reason 0 = forwarded, else the drop
 * reason. Summed over CPUs by src/datapath/maps/metrics-map.ts.
 */
#define MBR_METRICS_ENTRIES 512
struct mbr_metrics_value {
	__u64 packets;
	__u64 bytes;
};

/* mbr_config: array of one. */
#define MBR_TRACE_NONE 0
/* Cilium's "medium" monitor aggregation: only to-endpoint (mbr_to_pod) and to-stack (mbr_from_pod,
 * remote not on this node) points, and only packets that open a flow, carry a SYN/FIN/RST not yet
 * seen in their direction, or come MBR_CT_REPORT_INTERVAL after the direction's last report. */
#define MBR_TRACE_CONNECTIONS 1
#define MBR_TRACE_ALL 2 /* every packet: from-endpoint at mbr_from_pod, to-endpoint at mbr_to_pod */
struct mbr_config {
	__u32 trace_level;
	__u32 wakeup_bytes; /* force a ring wakeup only above this many pending bytes */
};

/*
 * Ring buffer record (mbr_events). One layout for all kinds; decoded by
 * src/datapath/event-codec.ts into src/datapath/event-types.ts. Numbers follow Cilium's monitor API.
 */
#define MBR_EVENT_DROP 1
#define MBR_EVENT_TRACE 4
#define MBR_EVENT_POLICY_VERDICT 5

#define MBR_EVENT_F_EGRESS 0x01
#define MBR_EVENT_F_REPLY 0x02
#define MBR_EVENT_F_AUDIT 0x04
/* Not an IPv4 packet (drop 139): addresses, ports and protocol are 0, sport holds the EtherType. */
#define MBR_EVENT_F_NOT_IPV4 0x08

struct mbr_event {
	__u8 type;    /* MBR_EVENT_* */
	__u8 subtype; /* drop: reason; trace: observation point; verdict: match type */
	__u16 flags;  /* MBR_EVENT_F_* */
	__u32 endpoint_id;
	__u64 mono_ns;
	__u32 ifindex;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 saddr; /* network order */
	__u32 daddr; /* network order */
	__u16 sport; /* host order */
	__u16 dport; /* host order */
	__u8 protocol;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u32 length;
	__s32 verdict; /* policy verdict: 0 allow, < 0 -reason, > 0 proxy port */
	__u8 ct_state;
	__u8 auth_type;
	__u16 pad;
};

/* ---- Service load balancing (bpf/lib/lb.h; codecs in src/datapath/maps/lb-map.ts) ----------------
 * Shaped like Cilium's lb4 maps. A service frontend (address, port, protocol) has a master entry
 * (backend_slot 0: count, service ID, flags, algorithm, affinity timeout) and one entry per backend
 * slot 1..count naming a backend ID. Only active backends have slots: a terminating backend keeps its
 * mbr_lb4_backends entry (its connections drain) but takes no new connection. */
struct mbr_lb4_key {
	__u32 address;	    /* frontend address, network order */
	__u16 dport;	    /* frontend port, network order */
	__u16 backend_slot; /* 0: the master entry; 1..count: a backend slot */
	__u8 proto;	    /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad[3];
};

#define MBR_LB_F_NODE_PORT 0x01 /* the frontend is a NodePort on this node's address */
#define MBR_LB_F_AFFINITY 0x02 /* sessionAffinity: ClientIP */

#define MBR_LB_ALG_RANDOM 1
#define MBR_LB_ALG_MAGLEV 2

struct mbr_lb4_service {
	__u32 backend_id;	/* slot > 0: the backend; 0 in the master entry */
	__u32 affinity_timeout; /* master: seconds (sessionAffinityConfig.clientIP.timeoutSeconds) */
	__u16 count;		/* master: active backend slots */
	__u16 rev_nat_index;	/* the service ID: mbr_lb4_reverse_nat and mbr_lb4_maglev key */
	__u8 flags;		/* master: MBR_LB_F_* */
	__u8 algorithm;		/* master: MBR_LB_ALG_* */
	__u16 pad;
};

/* mbr_lb4_backends: hash, backend ID (host order u32) -> backend. */
#define MBR_LB_BACKEND_F_TERMINATING 0x01
struct mbr_lb4_backend {
	__u32 address; /* network order */
	__u16 port;    /* network order */
	__u8 proto;
	__u8 flags; /* MBR_LB_BACKEND_F_* */
};

/* mbr_lb4_reverse_nat: hash, service ID (host order u32) -> the frontend replies are rewritten to. */
struct mbr_lb4_reverse_nat {
	__u32 address; /* network order */
	__u16 port;    /* network order */
	__u16 pad;
};

/* mbr_lb4_affinity: LRU hash, (client, service ID) -> the backend and when it was last used. The
 * client is its IPv4 address (per-packet LB) or its network namespace cookie (socket LB). */
struct mbr_lb4_affinity_key {
	__u64 client_id;
	__u32 rev_nat_index;
	__u8 netns_cookie; /* 1: client_id is a netns cookie */
	__u8 pad[3];
};

struct mbr_lb4_affinity_value {
	__u32 backend_id;
	__u32 last_used; /* CLOCK_MONOTONIC seconds */
};

/*
 * mbr_lb4_ct: LRU hash keyed by struct mbr_ct_key (here with ports in network order) as the client
 * sees its flow (its own address and port first). Two entries per load-balanced flow: the forward
 * one (remote = the frontend) names the backend the flow was given, so established connections
 * never move while that backend exists; the reverse one (remote = the backend,
 * MBR_LB_CT_F_REVERSE) names the service whose frontend replies are rewritten to. A NodePort flow
 * to another node's backend is also source-translated to this node's address (MBR_LB_CT_F_SNAT):
 * its reverse entry is keyed as this node sees the reply and holds the client's address and port.
 */
#define MBR_LB_CT_F_REVERSE 0x01
#define MBR_LB_CT_F_SNAT 0x02
struct mbr_lb4_ct_entry {
	__u32 backend_id;
	__u32 client_addr; /* SNAT: the client's address, network order; else 0 */
	__u16 rev_nat_index;
	__u16 client_port; /* SNAT: the client's port, network order */
	__u8 flags;	   /* MBR_LB_CT_F_* */
	__u8 pad[3];
};

/* mbr_lb4_reverse_sk: LRU hash, (socket cookie, backend) -> frontend, for socket LB's recvmsg4 and
 * getpeername4 (the application sees the service address it connected to). */
struct mbr_lb4_sock_key {
	__u64 cookie;
	__u32 address; /* backend, network order */
	__u16 port;    /* backend, network order */
	__u16 pad;
};

struct mbr_lb4_sock_value {
	__u32 address; /* frontend, network order */
	__u16 port;    /* frontend, network order */
	__u16 rev_nat_index;
};

/* mbr_lb_config: array of one, written by src/datapath/lb-realizer.ts at open. */
struct mbr_lb_config {
	__u64 netns_cookie; /* the node's network namespace: socket LB acts only there (0: nowhere) */
	__u32 node_addr;    /* the node's underlay address, network order: NodePort SNAT source */
	__u32 maglev_size;  /* M, the size of every mbr_lb4_maglev table (a prime) */
};

/* mbr_lb4_maglev: hash of maps, service ID -> array of maglev_size backend IDs. */
#define MBR_LB_MAGLEV_DEFAULT_SIZE 16381

#endif /* MEMBRANE_MAPS_H */
