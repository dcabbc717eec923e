// SPDX-License-Identifier: GPL-2.0
/*
 * The Membrane per-endpoint datapath: two tc programs for each pod's host-side veth (tcx links).
 *   mbr_from_pod  tcx ingress of the host-side veth: packets leaving the pod, the pod's egress policy
 *   mbr_to_pod    tcx egress of the host-side veth: packets entering the pod, its ingress policy
 *   mbr_from_net  tcx ingress of the node's underlay device: L7 ingress redirects of traffic from
 *                 other nodes, replies to the egress proxy's transparent upstream sockets
 *   mbr_proxy_lookup  sk_lookup of the node's netns: the proxy's listener for redirected flows
 *                 the stack looks a listener up for (bpf/lib/proxy.h)
 *   mbr_pass      returns TCX_NEXT and nothing else: the benchmark's hook-cost floor
 * Per packet: endpoint lookup (by ifindex), one conntrack lookup; only new flows (and established
 * flows whose endpoint policy changed since they were last checked) take the ipcache LPM lookup of
 * the remote address and the two policy LPM lookups. Replies of admitted flows never do. A packet
 * between two endpoints of this node with known MACs is delivered by mbr_from_pod itself: it runs
 * the receiver's ingress half as mbr_to_pod would, then redirects into the receiving pod. ARP passes;
 * IPv6 and other L3 protocols are dropped (139), since only IPv4 is enforced. Trace events follow
 * the configured level (maps.h): at "connections" one report per flow direction and TCP milestone.
 * Layouts live in include/membrane/maps.h; user space reads every map named here.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "membrane/maps.h"

#define TCX_NEXT -1
#define TCX_DROP 2
#define TCX_REDIRECT 7
/* Not a tc verdict: the helpers below return it when the program goes on with the packet. */
#define GO_ON 0x100
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ETH_HLEN 14
#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_SCTP_ 132

/* Per-flow packet/byte counters in conntrack (`membrane bpf ct list`); build with
 * -DMBR_CT_ACCOUNTING=0 to drop them from the per-packet path. */
#ifndef MBR_CT_ACCOUNTING
#define MBR_CT_ACCOUNTING 1
#endif

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* Cilium drop reasons (src/datapath/event-types.ts DropReason). */
#define DROP_POLICY 133
#define DROP_INVALID 134
#define DROP_CT_INVALID_HDR 135
#define DROP_CT_CANT_CREATE 138
#define DROP_UNKNOWN_L3 139
#define DROP_FRAG_NOSUPPORT 157
#define DROP_POLICY_DENY 181
#define DROP_POLICY_AUTH_REQUIRED 189

/* Cilium TraceReason values carried as ct_state. */
#define CT_NEW 1
#define CT_ESTABLISHED 2
#define CT_REPLY 3
#define CT_RELATED 4
#define CT_REOPENED 5

/* Trace observation points. */
#define TRACE_TO_ENDPOINT 0
#define TRACE_TO_PROXY 1
#define TRACE_TO_STACK 3
#define TRACE_FROM_ENDPOINT 5

/* Match types. */
#define MATCH_NONE 0
#define MATCH_L3_ONLY 1
#define MATCH_L3_L4 2
#define MATCH_L4_ONLY 3
#define MATCH_ALL 4
#define MATCH_L3_PROTO 5
#define MATCH_PROTO_ONLY 6

/* Cilium's mark for "to proxy": magic 0x0200 in the low half, the proxy port in the high half. */
#define MARK_MAGIC_TO_PROXY 0x0200
#define TCX_PASS 0

#include "lib/proxy.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct mbr_ipcache_key);
	__type(value, struct mbr_ipcache_value);
} mbr_ipcache SEC(".maps");

struct mbr_policy_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 64);
	__type(key, struct mbr_policy_key);
	__type(value, struct mbr_policy_entry);
};

/* Two tries per endpoint, keyed endpoint_id << 1 | slot; MBR_EP_F_POLICY_SLOT_B picks one. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 2 * MBR_MAX_ENDPOINTS);
	__type(key, __u32);
	__array(values, struct mbr_policy_inner);
} mbr_policy SEC(".maps");

/* endpoint_id -> the slot its policy is published in (0 A, 1 B). The programs never read it (they
 * read MBR_EP_F_POLICY_SLOT_B of the endpoint's entry): it is user space's durable record of the
 * slot for an endpoint that has no mbr_endpoints entry yet, read by src/datapath/datapath.ts when
 * it re-opens the pins after a restart. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * MBR_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, __u32);
} mbr_policy_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MBR_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct mbr_endpoint_info);
} mbr_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct mbr_ct_key);
	__type(value, struct mbr_ct_entry);
} mbr_ct4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct mbr_auth_key);
	__type(value, struct mbr_auth_value);
} mbr_auth SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MBR_METRICS_ENTRIES);
	__type(key, __u32);
	__type(value, struct mbr_metrics_value);
} mbr_metrics SEC(".maps");

/* Ring reservations that failed: the events user space never saw (LostEvents 'datapath-ring'). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} mbr_lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mbr_config);
} mbr_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} mbr_events SEC(".maps");

/* Puts the complete shared structs in the object's BTF: the inner policy map's definition needs
 * them, and test/datapath/codec-layout test reads every layout from there. Never written. */
struct mbr_btf_anchor {
	struct mbr_event event;
	struct mbr_policy_key policy_key;
	struct mbr_policy_entry policy_entry;
} mbr_btf_anchor SEC(".bss");

/* An IPv4 5-tuple as on the wire (ICMP echo: the identifier as the requester's port). */
struct tuple {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 protocol;
};

struct pkt {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u16 policy_port; /* dport, or the ICMP type for ICMP */
	__u8 protocol;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 is_icmp_error;
	__u8 ttl;
	__u32 length;
	struct tuple inner; /* ICMP error: the tuple of the packet it reports on */
};

struct verdict {
	__s32 verdict;
	__u8 match_type;
	__u8 auth_type;
	__u16 proxy_port;
};

/* Read skb->data / data_end with one load each: clang otherwise hoists &skb->data into a
 * register, and the verifier refuses a load through a modified ctx pointer. */
static __always_inline void *skb_data(struct __sk_buff *skb)
{
	void *d;
	asm volatile("%0 = *(u32 *)(%1 + %2)" : "=r"(d) : "r"(skb), "i"(__builtin_offsetof(struct __sk_buff, data)));
	return d;
}

static __always_inline void *skb_data_end(struct __sk_buff *skb)
{
	void *d;
	asm volatile("%0 = *(u32 *)(%1 + %2)"
		     : "=r"(d)
		     : "r"(skb), "i"(__builtin_offsetof(struct __sk_buff, data_end)));
	return d;
}

static __always_inline void count(__u8 dir, __u8 reason, __u32 bytes)
{
	__u32 idx = ((__u32)dir << 8) | reason;
	struct mbr_metrics_value *m = bpf_map_lookup_elem(&mbr_metrics, &idx);
	if (m) {
		m->packets += 1;
		m->bytes += bytes;
	}
}

static __always_inline void emit(struct pkt *p, struct mbr_endpoint_info *ep, __u8 dir, __u32 remote_id,
				 __u8 type, __u8 subtype, __u16 flags, struct verdict *v, __u8 ct_state, __u32 ifindex)
{
	struct mbr_event *e = bpf_ringbuf_reserve(&mbr_events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&mbr_lost, &zero);
		if (lost)
			*lost += 1;
		return;
	}
	e->type = type;
	e->subtype = subtype;
	e->flags = flags | (dir == MBR_DIR_EGRESS ? MBR_EVENT_F_EGRESS : 0);
	e->endpoint_id = ep->endpoint_id;
	e->mono_ns = bpf_ktime_get_ns();
	e->ifindex = ifindex;
	e->src_identity = dir == MBR_DIR_EGRESS ? ep->identity : remote_id;
	e->dst_identity = dir == MBR_DIR_EGRESS ? remote_id : ep->identity;
	e->saddr = p->saddr;
	e->daddr = p->daddr;
	e->sport = p->sport;
	e->dport = p->dport;
	e->protocol = p->protocol;
	e->tcp_flags = p->tcp_flags;
	e->icmp_type = p->icmp_type;
	e->icmp_code = p->icmp_code;
	e->length = p->length;
	e->verdict = v ? v->verdict : 0;
	e->ct_state = ct_state;
	e->auth_type = v ? v->auth_type : 0;
	e->pad = 0;

	/* Wake the reader only when a lot is pending; otherwise its timer drains the ring. */
	__u64 wake = BPF_RB_NO_WAKEUP;
	__u32 zero = 0;
	struct mbr_config *cfg = bpf_map_lookup_elem(&mbr_config, &zero);
	if (cfg && bpf_ringbuf_query(&mbr_events, BPF_RB_AVAIL_DATA) > cfg->wakeup_bytes)
		wake = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, wake);
}

/* Returns 0 when the packet is parsed, else a drop reason. Only IPv4 reaches here. */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	void *data = skb_data(skb);
	void *end = skb_data_end(skb);
	struct iphdr *ip = data + ETH_HLEN;

	if ((void *)(ip + 1) > end)
		return DROP_INVALID;
	__u32 ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return DROP_INVALID;
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->protocol = ip->protocol;
	p->ttl = ip->ttl;
	p->length = skb->len;
	if (ip->frag_off & bpf_htons(0x1fff))
		return DROP_FRAG_NOSUPPORT;

	void *l4 = (void *)ip + ihl;
	switch (ip->protocol) {
	case IPPROTO_TCP_: {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end)
			return DROP_CT_INVALID_HDR;
		p->sport = bpf_ntohs(th->source);
		p->dport = bpf_ntohs(th->dest);
		p->tcp_flags = ((__u8 *)th)[13];
		p->policy_port = p->dport;
		break;
	}
	case IPPROTO_UDP_:
	case IPPROTO_SCTP_: {
		/* Both start with source and destination port. */
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > end)
			return DROP_CT_INVALID_HDR;
		p->sport = bpf_ntohs(uh->source);
		p->dport = bpf_ntohs(uh->dest);
		p->policy_port = p->dport;
		break;
	}
	case IPPROTO_ICMP_: {
		struct icmphdr *ih = l4;
		if ((void *)(ih + 1) > end)
			return DROP_CT_INVALID_HDR;
		p->icmp_type = ih->type;
		p->icmp_code = ih->code;
		p->policy_port = ih->type;
		if (ih->type == 8) { /* echo request: the identifier plays the source port */
			p->sport = bpf_ntohs(ih->un.echo.id);
		} else if (ih->type == 0) { /* echo reply */
			p->dport = bpf_ntohs(ih->un.echo.id);
		} else if (ih->type == 3 || ih->type == 11 || ih->type == 12) {
			/* Destination unreachable, time exceeded, parameter problem: related to the flow of
			 * the embedded header. */
			struct iphdr *in = (void *)(ih + 1);
			if ((void *)(in + 1) > end)
				return DROP_CT_INVALID_HDR;
			__u32 inl = in->ihl * 4;
			if (inl < sizeof(*in) || inl > 60)
				return DROP_CT_INVALID_HDR;
			__u16 *ports = (void *)in + inl;
			if ((void *)(ports + 2) > end)
				return DROP_CT_INVALID_HDR;
			p->is_icmp_error = 1;
			p->inner.saddr = in->saddr;
			p->inner.daddr = in->daddr;
			p->inner.protocol = in->protocol;
			if (in->protocol == IPPROTO_ICMP_) {
				struct icmphdr *ii = (void *)ports;
				if ((void *)(ii + 1) > end)
					return DROP_CT_INVALID_HDR;
				if (ii->type == 8)
					p->inner.sport = bpf_ntohs(ii->un.echo.id);
			} else {
				p->inner.sport = bpf_ntohs(ports[0]);
				p->inner.dport = bpf_ntohs(ports[1]);
			}
		}
		break;
	}
	default:
		break;
	}
	return 0;
}

static __always_inline __u8 match_type_of(int is_id, __u8 l4_prefix_len)
{
	if (l4_prefix_len == 0)
		return is_id ? MATCH_L3_ONLY : MATCH_ALL;
	if (l4_prefix_len <= 8)
		return is_id ? MATCH_L3_PROTO : MATCH_PROTO_ONLY;
	return is_id ? MATCH_L3_L4 : MATCH_L4_ONLY;
}

/* The lookup of src/policy/map-state-types.ts: exact-identity hit and ANY hit, deny wins, then the
 * longer L4 prefix (tie: identity), auth inherited from the loser when the winner has none. */
static __always_inline void policy_lookup(struct mbr_endpoint_info *ep, __u32 remote, __u8 dir, struct pkt *p,
					  struct verdict *v)
{
	__u32 slot_key = (ep->endpoint_id << 1) | ((ep->flags & MBR_EP_F_POLICY_SLOT_B) ? 1 : 0);
	void *inner = bpf_map_lookup_elem(&mbr_policy, &slot_key);
	if (!inner) {
		v->verdict = -DROP_POLICY;
		return;
	}
	struct mbr_policy_key k = {
		.prefixlen = MBR_POLICY_PREFIX_FULL,
		.identity = remote,
		.egress = dir,
		.protocol = p->protocol,
		.dport = bpf_htons(p->policy_port),
	};
	struct mbr_policy_entry *hid = bpf_map_lookup_elem(inner, &k);
	k.identity = 0;
	struct mbr_policy_entry *hany = bpf_map_lookup_elem(inner, &k);

	if (hid && (hid->flags & MBR_POLICY_F_DENY)) {
		v->verdict = -DROP_POLICY_DENY;
		v->match_type = match_type_of(1, hid->l4_prefix_len);
		return;
	}
	if (hany && (hany->flags & MBR_POLICY_F_DENY)) {
		v->verdict = -DROP_POLICY_DENY;
		v->match_type = match_type_of(0, hany->l4_prefix_len);
		return;
	}
	if (!hid && !hany) {
		v->verdict = -DROP_POLICY;
		return;
	}
	struct mbr_policy_entry *win = hid, *other = hany;
	int is_id = 1;
	if (!hid || (hany && hany->l4_prefix_len > hid->l4_prefix_len)) {
		win = hany;
		other = hid;
		is_id = 0;
	}
	if (!win)
		return;
	v->match_type = match_type_of(is_id, win->l4_prefix_len);
	v->auth_type = win->auth_type;
	if (!v->auth_type && other)
		v->auth_type = other->auth_type;
	v->proxy_port = win->proxy_port;
	v->verdict = win->proxy_port;
	if (v->auth_type) {
		struct mbr_auth_key ak = {
			.local_identity = ep->identity,
			.remote_identity = remote,
			.auth_type = v->auth_type,
		};
		struct mbr_auth_value *av = bpf_map_lookup_elem(&mbr_auth, &ak);
		if (!av || av->expiry_ns < bpf_ktime_get_ns())
			v->verdict = -DROP_POLICY_AUTH_REQUIRED;
	}
}

/* One endpoint's half of a packet's journey: its egress (mbr_from_pod) or its ingress (mbr_to_pod,
 * or mbr_from_pod delivering locally). decide() only reads maps; commit() writes conntrack, counts
 * and reports. The split lets local delivery check the receiver's half before committing to it. */
struct half {
	struct mbr_endpoint_info *ep;
	struct mbr_ct_entry *ct; /* the flow's entry as found (forward or reply), 0 when none */
	struct mbr_ct_key key;	 /* the flow's conntrack key at this endpoint */
	struct verdict v;
	__u32 ifindex;	    /* the endpoint's host-side veth: events carry it */
	__u32 remote;	    /* the remote end's identity */
	__u32 peer_ifindex; /* the remote endpoint's host-side veth when it is on this node, else 0 */
	__u8 dir;
	__u8 state;	    /* CT_* */
	__u8 check;	    /* the packet took a policy decision */
	__u8 remote_local;  /* the remote end is an endpoint of this node */
	__u8 drop;	    /* the decision's drop reason, 0 = pass */
	__u8 verdict_event; /* a policy-verdict event is due */
	__u8 audit;	    /* the verdict denies, the endpoint is in audit mode: reported, let through */
	__u8 from_proxy;    /* FROM_PROXY_*: the node's proxy sent the packet (its SO_MARK) */
	__u32 proxy_identity; /* from_proxy: the identity of the connection's source, from the mark */
};

/* The remote end's identity from the ipcache (world when no prefix matches), whether it is an
 * endpoint of this node, and that endpoint's host-side veth. */
static __always_inline void remote_identity(struct pkt *p, struct half *h)
{
	struct mbr_ipcache_key ik = { .prefixlen = 32, .addr = h->dir == MBR_DIR_EGRESS ? p->daddr : p->saddr };
	struct mbr_ipcache_value *iv = bpf_map_lookup_elem(&mbr_ipcache, &ik);
	if (!iv) {
		h->remote = MBR_IDENTITY_WORLD;
		return;
	}
	h->remote = iv->identity;
	h->remote_local = (iv->flags & MBR_IPCACHE_F_LOCAL_ENDPOINT) != 0;
	h->peer_ifindex = h->remote_local ? iv->ifindex : 0;
}

/* Whether a packet of a tracked flow is reported under MBR_TRACE_CONNECTIONS, and the bookkeeping
 * for it: a SYN/FIN/RST new to this direction, or the interval since the last report passed. Reads
 * flags_seen before the caller ORs this packet's flags in. */
static __always_inline int ct_should_report(__u8 flags_seen, __u32 *last_report, __u8 tcp_flags, __u32 now)
{
	if (!((tcp_flags & MBR_CT_REPORT_FLAGS) & ~flags_seen) && *last_report + MBR_CT_REPORT_INTERVAL >= now)
		return 0;
	*last_report = now;
	return 1;
}

static __always_inline __u32 tcp_lifetime(struct mbr_ct_entry *ct, __u32 now)
{
	if ((ct->flags & (MBR_CT_F_RX_CLOSING | MBR_CT_F_TX_CLOSING)) == (MBR_CT_F_RX_CLOSING | MBR_CT_F_TX_CLOSING))
		return now + MBR_CT_CLOSE_TIMEOUT;
	if (ct->flags & MBR_CT_F_SEEN_REPLY)
		return now + MBR_CT_TCP_TIMEOUT;
	return now + MBR_CT_SYN_TIMEOUT;
}

static __always_inline int drop(struct __sk_buff *skb, struct pkt *p, struct mbr_endpoint_info *ep, __u8 dir,
				__u32 remote, __u8 reason, __u8 ct_state, __u32 ifindex)
{
	count(dir, reason, skb->len);
	emit(p, ep, dir, remote, MBR_EVENT_DROP, reason, ct_state == CT_REPLY ? MBR_EVENT_F_REPLY : 0, 0, ct_state,
	     ifindex);
	return TCX_DROP;
}

/* The conntrack key of a flow at an endpoint: its own end first (local_is_src: it sent the packet). */
static __always_inline void ct_key_of(struct mbr_ct_key *k, __u32 saddr, __u32 daddr, __u16 sport, __u16 dport,
				      __u8 protocol, int local_is_src)
{
	k->local_addr = local_is_src ? saddr : daddr;
	k->remote_addr = local_is_src ? daddr : saddr;
	k->local_port = local_is_src ? sport : dport;
	k->remote_port = local_is_src ? dport : sport;
	k->protocol = protocol;
}

/* Conntrack state and, for new flows (and established flows whose endpoint policy changed since they
 * were last checked), the policy verdict. A local sender (src_ep, ingress half of local delivery)
 * gives the remote identity directly; everyone else takes it from the ipcache. Replies of admitted
 * flows never look at the ipcache or the policy. */
static __always_inline void decide(struct pkt *p, struct half *h, __u32 now, struct mbr_endpoint_info *src_ep,
				   __u32 src_ifindex)
{
	__u8 dir = h->dir;
	ct_key_of(&h->key, p->saddr, p->daddr, p->sport, p->dport, p->protocol, dir == MBR_DIR_EGRESS);
	h->state = CT_NEW;
	struct mbr_ct_entry *ct = bpf_map_lookup_elem(&mbr_ct4, &h->key);
	if (ct && ct->lifetime > now) {
		if (ct->dir != dir) {
			h->state = CT_REPLY;
		} else {
			h->state = CT_ESTABLISHED;
			if ((p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN &&
			    (ct->flags & (MBR_CT_F_RX_CLOSING | MBR_CT_F_TX_CLOSING)))
				h->state = CT_REOPENED;
		}
	} else {
		ct = 0;
		if (p->is_icmp_error) {
			/* The quoted packet went the other way: this endpoint sent it when the error comes
			 * in, and received it when the error goes out. */
			struct mbr_ct_key rk = {};
			struct tuple *in = &p->inner;
			ct_key_of(&rk, in->saddr, in->daddr, in->sport, in->dport, in->protocol, dir == MBR_DIR_INGRESS);
			struct mbr_ct_entry *rel = bpf_map_lookup_elem(&mbr_ct4, &rk);
			if (rel && rel->lifetime > now)
				h->state = CT_RELATED;
		}
	}
	h->ct = ct;

	struct mbr_endpoint_info *ep = h->ep;
	__u8 state = h->state;
	h->check = state == CT_NEW || state == CT_REOPENED ||
		   (state == CT_ESTABLISHED && ct && ct->policy_revision != ep->policy_revision);
	/* Packets of a tracked flow that need no policy decision take the remote identity the flow was
	 * admitted with (for events only) and skip the ipcache lookup. */
	if (h->check || !ct) {
		if (h->from_proxy && h->proxy_identity) {
			/* The proxy's upstream connection: its source is the node, the mark says whose
			 * connection it carries. */
			h->remote = h->proxy_identity;
		} else if (src_ep) {
			h->remote = src_ep->identity;
			h->remote_local = 1;
			h->peer_ifindex = src_ifindex;
		} else {
			remote_identity(p, h);
		}
	} else {
		h->remote = ct->src_sec_id;
		h->remote_local = (ct->flags & MBR_CT_F_REMOTE_LOCAL) != 0;
		h->peer_ifindex = ct->peer_ifindex;
	}
	int enforced = !(ep->flags & (dir == MBR_DIR_EGRESS ? MBR_EP_F_NO_ENFORCE_EGRESS : MBR_EP_F_NO_ENFORCE_INGRESS));
	/* The ingress proxy took this connection after the endpoint's ingress verdict: no second one. */
	if (h->from_proxy == FROM_PROXY_INGRESS && dir == MBR_DIR_INGRESS)
		h->check = 0;
	if (h->check && enforced) {
		policy_lookup(ep, h->remote, dir, p, &h->v);
		h->audit = h->v.verdict < 0 && (ep->flags & MBR_EP_F_AUDIT);
		h->verdict_event = state != CT_ESTABLISHED;
		if (h->v.verdict < 0 && !h->audit)
			h->drop = (__u8)(-h->v.verdict);
		if (h->v.verdict < 0)
			h->v.proxy_port = 0;
	}
	if (state == CT_ESTABLISHED && ct && ct->proxy_port)
		h->v.proxy_port = ct->proxy_port;
}

/* Carries out a decision: the policy-verdict event, the drop, or the conntrack update, metrics, the
 * proxy mark and the trace event. Returns TCX_NEXT or TCX_DROP. */
static __always_inline int commit(struct __sk_buff *skb, struct pkt *p, struct half *h, __u32 now,
				  __u32 trace_level)
{
	struct mbr_endpoint_info *ep = h->ep;
	struct mbr_ct_entry *ct = h->ct;
	__u8 dir = h->dir, state = h->state;
	__u32 remote = h->remote;
	if (h->verdict_event)
		emit(p, ep, dir, remote, MBR_EVENT_POLICY_VERDICT, h->v.match_type,
		     h->audit ? MBR_EVENT_F_AUDIT : 0, &h->v, state, h->ifindex);
	if (h->drop) {
		if (state == CT_ESTABLISHED) /* the flow lost its allow: forget it */
			bpf_map_delete_elem(&mbr_ct4, &h->key);
		return drop(skb, p, ep, dir, remote, h->drop, state, h->ifindex);
	}

	/* Flows not tracked here (ICMP errors, related or not) are always reported. */
	int report = 1;
	if (state == CT_NEW || state == CT_REOPENED) {
		struct mbr_ct_entry n = {
			.tx_packets = 1,
			.tx_bytes = skb->len,
			.src_sec_id = remote,
			.policy_revision = ep->policy_revision,
			.tx_flags_seen = p->tcp_flags,
			.proxy_port = h->v.proxy_port,
			.last_tx_report = now,
			.peer_ifindex = h->peer_ifindex,
			.dir = dir,
		};
		if (p->protocol == IPPROTO_TCP_) {
			if (!(p->tcp_flags & TCP_SYN))
				n.flags |= MBR_CT_F_SEEN_NON_SYN;
			if (p->tcp_flags & TCP_RST)
				n.flags |= MBR_CT_F_RX_CLOSING | MBR_CT_F_TX_CLOSING;
			n.lifetime = tcp_lifetime(&n, now);
		} else {
			n.lifetime = now + MBR_CT_ANY_TIMEOUT;
		}
		if (h->v.proxy_port)
			n.flags |= MBR_CT_F_PROXY_REDIRECT;
		if (h->remote_local)
			n.flags |= MBR_CT_F_REMOTE_LOCAL;
		if (bpf_map_update_elem(&mbr_ct4, &h->key, &n, BPF_ANY) < 0)
			return drop(skb, p, ep, dir, remote, DROP_CT_CANT_CREATE, state, h->ifindex);
	} else if (ct) {
		/* Write only what changes: both halves of a pod-to-pod flow are updated from two CPUs,
		 * and every store bounces the entry's cache line between them. */
		__u16 flags = ct->flags;
		if (state == CT_ESTABLISHED) {
#if MBR_CT_ACCOUNTING
			__sync_fetch_and_add(&ct->tx_packets, 1);
			__sync_fetch_and_add(&ct->tx_bytes, skb->len);
#endif
			report = trace_level == MBR_TRACE_CONNECTIONS &&
				 ct_should_report(ct->tx_flags_seen, &ct->last_tx_report, p->tcp_flags, now);
			if ((ct->tx_flags_seen | p->tcp_flags) != ct->tx_flags_seen)
				ct->tx_flags_seen |= p->tcp_flags;
			if (h->check) {
				ct->policy_revision = ep->policy_revision;
				ct->src_sec_id = remote;
			}
			if (p->tcp_flags & TCP_FIN)
				flags |= MBR_CT_F_TX_CLOSING;
		} else {
#if MBR_CT_ACCOUNTING
			__sync_fetch_and_add(&ct->rx_packets, 1);
			__sync_fetch_and_add(&ct->rx_bytes, skb->len);
#endif
			report = trace_level == MBR_TRACE_CONNECTIONS &&
				 ct_should_report(ct->rx_flags_seen, &ct->last_rx_report, p->tcp_flags, now);
			if ((ct->rx_flags_seen | p->tcp_flags) != ct->rx_flags_seen)
				ct->rx_flags_seen |= p->tcp_flags;
			flags |= MBR_CT_F_SEEN_REPLY;
			if (p->tcp_flags & TCP_FIN)
				flags |= MBR_CT_F_RX_CLOSING;
		}
		if (p->tcp_flags & TCP_RST)
			flags |= MBR_CT_F_RX_CLOSING | MBR_CT_F_TX_CLOSING;
		if (flags != ct->flags)
			ct->flags = flags;
		__u32 life = p->protocol == IPPROTO_TCP_ ? tcp_lifetime(ct, now) : now + MBR_CT_ANY_TIMEOUT;
		if (ct->lifetime != life)
			ct->lifetime = life;
	}

	if (h->v.proxy_port && state != CT_REPLY)
		skb->mark = MARK_MAGIC_TO_PROXY | ((__u32)h->v.proxy_port << 16);

	count(dir, 0, skb->len);
	__u16 ev_flags = state == CT_REPLY ? MBR_EVENT_F_REPLY : 0;
	if (trace_level == MBR_TRACE_ALL) {
		emit(p, ep, dir, remote, MBR_EVENT_TRACE, dir == MBR_DIR_EGRESS ? TRACE_FROM_ENDPOINT : TRACE_TO_ENDPOINT,
		     ev_flags, 0, state, h->ifindex);
	} else if (trace_level == MBR_TRACE_CONNECTIONS && report) {
		/* Leaving the pod towards another endpoint of this node: that endpoint's ingress half
		 * reports the packet as to-endpoint; one report per packet, as Cilium's. */
		if (h->v.proxy_port && state != CT_REPLY)
			emit(p, ep, dir, remote, MBR_EVENT_TRACE, TRACE_TO_PROXY, ev_flags, 0, state, h->ifindex);
		else if (dir == MBR_DIR_INGRESS)
			emit(p, ep, dir, remote, MBR_EVENT_TRACE, TRACE_TO_ENDPOINT, ev_flags, 0, state, h->ifindex);
		else if (!h->remote_local)
			emit(p, ep, dir, remote, MBR_EVENT_TRACE, TRACE_TO_STACK, ev_flags, 0, state, h->ifindex);
	}
	return TCX_NEXT;
}

/* ARP passes; IPv6 and other L3 protocols are dropped (139). Returns GO_ON for IPv4. */
static __always_inline int not_ipv4(struct __sk_buff *skb, struct mbr_endpoint_info *ep, __u8 dir)
{
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return GO_ON;
	if (skb->protocol == bpf_htons(ETH_P_ARP)) {
		count(dir, 0, skb->len);
		return TCX_NEXT;
	}
	/* This datapath enforces IPv4 only: IPv6 and other L3 protocols would bypass policy. */
	struct pkt p = { .length = skb->len, .sport = bpf_ntohs(skb->protocol) };
	count(dir, DROP_UNKNOWN_L3, skb->len);
	emit(&p, ep, dir, 0, MBR_EVENT_DROP, DROP_UNKNOWN_L3, MBR_EVENT_F_NOT_IPV4, 0, 0, skb->ifindex);
	return TCX_DROP;
}

/* Parses the IPv4 packet; a malformed one is dropped and reported (returns TCX_DROP, else GO_ON). */
static __always_inline int parse_or_drop(struct __sk_buff *skb, struct pkt *p, struct half *h)
{
	int err = parse(skb, p);
	/* Headers are nearly always in the linear part. Pull only when parsing ran past it and the
	 * packet is longer: pulling a cloned skb (every TCP segment) copies its head. */
	if ((err == DROP_INVALID || err == DROP_CT_INVALID_HDR) &&
	    skb_data(skb) + skb->len > skb_data_end(skb)) {
		bpf_skb_pull_data(skb, skb->len < 150 ? skb->len : 150);
		__builtin_memset(p, 0, sizeof(*p));
		err = parse(skb, p);
	}
	if (!err)
		return GO_ON;
	remote_identity(p, h);
	return drop(skb, p, h->ep, h->dir, h->remote, err, 0, h->ifindex);
}

static __always_inline __u32 trace_level(void)
{
	__u32 zero = 0;
	struct mbr_config *cfg = bpf_map_lookup_elem(&mbr_config, &zero);
	return cfg ? cfg->trace_level : MBR_TRACE_CONNECTIONS;
}

/* Conntrack times are whole seconds: the coarse clock (same epoch as CLOCK_MONOTONIC, which user
 * space compares lifetimes with) is a memory read, not a clock source read. */
static __always_inline __u32 now_seconds(void)
{
	return bpf_ktime_get_coarse_ns() / 1000000000ULL;
}

/* The node's routing of an IPv4 packet between two of its pods, done here: the MACs the host-side
 * veth would write, and the TTL decrement of forwarding (with the header checksum). The caller
 * checked p->ttl > 1. */
static __always_inline int rewrite_for_peer(struct __sk_buff *skb, struct pkt *p, struct mbr_endpoint_info *dst)
{
	__u8 macs[12];
	__builtin_memcpy(macs, dst->pod_mac, 6);
	__builtin_memcpy(macs + 6, dst->host_mac, 6);
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
		return -1;
	__u8 ttl = p->ttl - 1;
	if (bpf_skb_store_bytes(skb, ETH_HLEN + __builtin_offsetof(struct iphdr, ttl), &ttl, 1, 0) < 0)
		return -1;
	/* ttl and protocol are one 16-bit word of the header checksum. */
	__u16 old = bpf_htons(((__u16)p->ttl << 8) | p->protocol);
	__u16 new = bpf_htons(((__u16)ttl << 8) | p->protocol);
	return bpf_l3_csum_replace(skb, ETH_HLEN + __builtin_offsetof(struct iphdr, check), old, new, 2);
}

/* What both programs start with: the endpoint (else the packet is not Membrane's), non-IPv4 frames,
 * the parse. GO_ON with h and p filled in, else the tc verdict. */
static __always_inline int begin(struct __sk_buff *skb, struct pkt *p, struct half *h, __u8 dir)
{
	h->ifindex = skb->ifindex;
	h->dir = dir;
	h->ep = bpf_map_lookup_elem(&mbr_endpoints, &h->ifindex);
	if (!h->ep)
		return TCX_NEXT; /* not a Membrane endpoint (yet): leave it alone */
	int rc = not_ipv4(skb, h->ep, dir);
	if (rc != GO_ON)
		return rc;
	return parse_or_drop(skb, p, h);
}

/* ---- service load balancing (lib/lb.h: maps, NodePort and socket-LB programs) ---- */
#include "lib/lb.h"
/* ---- end of service load balancing ---- */

/* ---- L7 proxy redirect (lib/proxy.h) ---- */

/* Whether the half's decision hands the packet to the node's proxy: a pass with a proxy port,
 * not a reply (replies of a proxied flow come from the proxy's own socket). Assigns the proxy's
 * socket; when none takes it, the half drops instead (the proxy is down: fail closed) and this
 * returns 1 all the same, so the caller commits the drop. */
static __always_inline int redirect_to_proxy(struct __sk_buff *skb, struct pkt *p, struct half *h)
{
	if (h->drop || !h->v.proxy_port || h->state == CT_REPLY || p->is_icmp_error)
		return 0;
	int err = proxy_assign(skb, p->saddr, p->daddr, ((__u32)p->sport << 16) | p->dport,
			       ((__u32)p->protocol << 16) | h->v.proxy_port);
	if (err)
		h->drop = err;
	return 1;
}

/* mbr_from_pod after service translation: the sender's egress half, the L7 redirects and local
 * delivery. A global function (as the LB hooks): each part is verified once, and the stacks of the
 * call chains stay under 512 bytes. Returns TCX_REDIRECT only for local delivery. */
__attribute__((noinline)) int from_pod_translated(struct __sk_buff *skb)
{
	struct pkt p = {};
	struct half out = {};
	int rc = begin(skb, &p, &out, MBR_DIR_EGRESS);
	if (rc != GO_ON)
		return rc;
	struct mbr_endpoint_info *ep = out.ep;
	__u32 now = now_seconds();
	__u32 level = trace_level();
	decide(&p, &out, now, 0, 0);

	/* The endpoint's egress L7 proxy takes the flow (lib/proxy.h); no socket: fail closed. */
	int out_proxy = redirect_to_proxy(skb, &p, &out);

	/* The receiver when it is an endpoint of this node: its ingress L7 proxy takes the flow here
	 * (the only tc ingress it passes), or local delivery hands it over unless the TTL runs out
	 * (the node's stack answers with the ICMP error). */
	__u32 peer = out.peer_ifindex;
	struct mbr_endpoint_info *dst = 0;
	int deliver = 0;
	if (!out_proxy && !out.drop && out.remote_local && peer) {
		struct mbr_endpoint_info *d = bpf_map_lookup_elem(&mbr_endpoints, &peer);
		if (d && d->ipv4 == p.daddr) {
			dst = d;
			deliver = p.ttl > 1 && (ep->flags & MBR_EP_F_LOCAL_DELIVERY) && (d->flags & MBR_EP_F_LOCAL_DELIVERY);
		}
	}
	struct half in = { .ep = dst, .ifindex = peer, .dir = MBR_DIR_INGRESS };
	int in_proxy = 0;
	if (dst) {
		decide(&p, &in, now, ep, out.ifindex);
		in_proxy = redirect_to_proxy(skb, &p, &in);
	}
	rc = commit(skb, &p, &out, now, level);
	if (out_proxy)
		return rc == TCX_NEXT ? TCX_PASS : rc;
	if (rc != TCX_NEXT || !dst)
		return rc;
	if (!in_proxy && !deliver)
		return TCX_NEXT; /* through the node's stack: mbr_to_pod enforces the receiver's half */
	rc = commit(skb, &p, &in, now, level);
	if (rc != TCX_NEXT)
		return rc;
	if (in_proxy)
		return TCX_PASS; /* up the node's stack to the proxy's socket (never a reply) */
	if (rewrite_for_peer(skb, &p, dst) < 0)
		return drop(skb, &p, dst, MBR_DIR_INGRESS, in.remote, DROP_INVALID, in.state, peer);
	return bpf_redirect_peer(peer, 0);
}

SEC("tc")
int mbr_from_pod(struct __sk_buff *skb)
{
	/* Service LB first: the egress policy and the L7 redirect see the backend, as Cilium's. */
	int rc = mbr_lb4_from_pod(skb);
	if (rc != GO_ON)
		return rc;
	rc = from_pod_translated(skb);
	/* Local delivery, once the receiver's ingress half admitted the packet (the redirect happens
	 * when the program returns): a reply's backend address becomes the frontend. */
	if (rc == TCX_REDIRECT)
		mbr_lb4_rev_xlate(skb);
	return rc;
}

SEC("tc")
int mbr_to_pod(struct __sk_buff *skb)
{
	struct pkt p = {};
	struct half in = {};
	int rc = begin(skb, &p, &in, MBR_DIR_INGRESS);
	if (rc != GO_ON)
		return rc;
	__u32 now = now_seconds();
	/* The node's proxy connecting to this endpoint: the source identity is in the mark. */
	__u32 mark = skb->mark;
	in.from_proxy = mark_from_proxy(mark);
	if (in.from_proxy)
		in.proxy_identity = mark_identity(mark);
	decide(&p, &in, now, 0, 0);
	rc = commit(skb, &p, &in, now, trace_level());
	if (rc == TCX_NEXT)
		mbr_lb4_rev_xlate(skb); /* service LB: a reply's backend address becomes the frontend */
	return rc;
}

/*
 * tcx ingress of the node's underlay device: packets from other nodes and the outside. Only those
 * for an endpoint of this node are looked at, for two things the endpoint's own hooks cannot do
 * (sk_assign works only at tc ingress, and mbr_to_pod is tc egress):
 *   - a reply to an upstream connection of the node's egress proxy bound to a pod's address goes
 *     to that socket, not into the pod;
 *   - a flow the endpoint's ingress L7 policy redirects goes to the ingress proxy, after the
 *     endpoint's ingress verdict (committed here; mbr_to_pod never sees these packets).
 * Everything else goes on untouched (TCX_NEXT), conntrack and policy left to mbr_to_pod.
 */
SEC("tc")
int mbr_from_net(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TCX_NEXT;
	struct pkt p = {};
	if (parse(skb, &p))
		return TCX_NEXT;
	if (p.protocol != IPPROTO_TCP_ && p.protocol != IPPROTO_UDP_)
		return TCX_NEXT;
	struct mbr_ipcache_key ik = { .prefixlen = 32, .addr = p.daddr };
	struct mbr_ipcache_value *iv = bpf_map_lookup_elem(&mbr_ipcache, &ik);
	if (!iv || !(iv->flags & MBR_IPCACHE_F_LOCAL_ENDPOINT))
		return TCX_NEXT;
	if (p.protocol == IPPROTO_TCP_ && proxy_upstream_reply(skb, p.saddr, p.daddr, p.sport, p.dport))
		return TCX_PASS;
	__u32 ifindex = iv->ifindex;
	struct half in = { .ifindex = ifindex, .dir = MBR_DIR_INGRESS };
	in.ep = bpf_map_lookup_elem(&mbr_endpoints, &ifindex);
	if (!in.ep || in.ep->ipv4 != p.daddr)
		return TCX_NEXT;
	__u32 now = now_seconds();
	decide(&p, &in, now, 0, 0);
	if (!redirect_to_proxy(skb, &p, &in))
		return TCX_NEXT;
	int rc = commit(skb, &p, &in, now, trace_level());
	return rc == TCX_NEXT ? TCX_PASS : rc;
}

/* The proxy's listening sockets by proxy port, added by each proxy worker (a reuseport group
 * picks among the workers' listeners); a socket leaves the map when it closes. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} mbr_proxy_socks SEC(".maps");

/*
 * sk_lookup in the node's netns: when the stack looks up a listener for a packet of a flow whose
 * conntrack entry (at the client's endpoint for egress, at the server's for ingress) carries a
 * proxy port, the proxy's listener on that port answers. mbr_from_pod / mbr_from_net assign
 * sockets themselves; this covers what they leave to the stack (a SYN on a tuple in TIME_WAIT).
 */
SEC("sk_lookup")
int mbr_proxy_lookup(struct bpf_sk_lookup *ctx)
{
	if (ctx->family != 2 /* AF_INET */ || (ctx->protocol != IPPROTO_TCP_ && ctx->protocol != IPPROTO_UDP_))
		return SK_PASS;
	__u16 rport = bpf_ntohs(ctx->remote_port);
	__u16 lport = ctx->local_port;
	struct mbr_ct_key k = { .protocol = ctx->protocol };
	ct_key_of(&k, ctx->remote_ip4, ctx->local_ip4, rport, lport, ctx->protocol, 1);
	struct mbr_ct_entry *ct = bpf_map_lookup_elem(&mbr_ct4, &k);
	__u32 port = ct && ct->dir == MBR_DIR_EGRESS ? ct->proxy_port : 0;
	if (!port) {
		ct_key_of(&k, ctx->remote_ip4, ctx->local_ip4, rport, lport, ctx->protocol, 0);
		ct = bpf_map_lookup_elem(&mbr_ct4, &k);
		port = ct && ct->dir == MBR_DIR_INGRESS ? ct->proxy_port : 0;
	}
	if (!port)
		return SK_PASS;
	struct bpf_sock *sk = bpf_map_lookup_elem(&mbr_proxy_socks, &port);
	if (!sk)
		return SK_PASS;
	bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return SK_PASS;
}

SEC("tc")
int mbr_pass(struct __sk_buff *skb)
{
	return TCX_NEXT;
}

char LICENSE[] SEC("license") = "GPL";
