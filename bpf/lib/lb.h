/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Service load balancing (kube-proxy replacement), included by membrane.bpf.c after its helpers.
 * Layouts in include/membrane/maps.h (struct mbr_lb4_*); user space: src/datapath/lb-realizer.ts.
 *
 *   mbr_lb4_from_pod   called first in mbr_from_pod: a packet to a service frontend is given a
 *                      backend (conntrack-consistent: mbr_lb4_ct) and its destination rewritten
 *                      before the pod's egress policy sees it, so policy applies to the backend.
 *   mbr_lb4_rev_xlate  called once the client's ingress half admitted a reply (mbr_to_pod, and local
 *                      delivery in mbr_from_pod): the backend's address is rewritten to the frontend.
 *   mbr_from_netdev /  tcx ingress / egress of the node's underlay device: NodePort. A local backend
 *   mbr_to_netdev      keeps the client's address; a remote one (externalTrafficPolicy Cluster) is
 *                      reached with the node's address as source and its replies come back here.
 *   mbr_sock4_*        cgroup connect4 / sendmsg4 / recvmsg4 / getpeername4: socket LB for the node's
 *                      own processes (only in the netns whose cookie mbr_lb_config names).
 * No backend: a TCP SYN is answered with a RST and UDP with ICMP port unreachable (never a hang).
 */
#ifndef MEMBRANE_LB_H
#define MEMBRANE_LB_H

#define DROP_NO_SERVICE 158
#define AF_INET_ 2
#define LB_ICMP_PKT_LEN (ETH_HLEN + 20 + 8 + 28)
#define LB_RST_PKT_LEN (ETH_HLEN + 20 + 20)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mbr_lb4_key);
	__type(value, struct mbr_lb4_service);
} mbr_lb4_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct mbr_lb4_backend);
} mbr_lb4_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct mbr_lb4_reverse_nat);
} mbr_lb4_reverse_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mbr_lb4_affinity_key);
	__type(value, struct mbr_lb4_affinity_value);
} mbr_lb4_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct mbr_ct_key);
	__type(value, struct mbr_lb4_ct_entry);
} mbr_lb4_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mbr_lb4_sock_key);
	__type(value, struct mbr_lb4_sock_value);
} mbr_lb4_reverse_sk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mbr_lb_config);
} mbr_lb_config SEC(".maps");

/* BPF_F_INNER_MAP: every service's table is created by user space with the configured size. */
struct mbr_lb4_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, MBR_LB_MAGLEV_DEFAULT_SIZE);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__array(values, struct mbr_lb4_maglev_inner);
} mbr_lb4_maglev SEC(".maps");

/* Puts the LB structs the programs only use as keys or values of other structs in the BTF
 * (test/datapath/codec-layout.test.ts reads every layout from there). Never written. */
struct mbr_lb_btf_anchor {
	struct mbr_lb4_sock_key sock_key;
	struct mbr_lb4_sock_value sock_value;
} mbr_lb_btf_anchor SEC(".bss");

/* A TCP or UDP IPv4 packet's addresses and ports, all network order. */
struct lb4_pkt {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u32 l4_off;
	__u8 proto;
	__u8 tcp_flags;
	__u8 ihl_ok; /* the IP header has no options */
	__u8 pad;
	__u32 seq; /* TCP: network order */
	__u32 ack_seq;
};

/* 0 when the packet is IPv4 TCP/UDP, not a fragment, headers in the linear part. */
static __always_inline int lb4_parse(struct __sk_buff *skb, struct lb4_pkt *l)
{
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return -1;
	void *data = skb_data(skb);
	void *end = skb_data_end(skb);
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end)
		return -1;
	if (ip->protocol != IPPROTO_TCP_ && ip->protocol != IPPROTO_UDP_)
		return -1;
	if (ip->frag_off & bpf_htons(0x1fff))
		return -1;
	__u32 ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip) || ihl > 60)
		return -1;
	l->saddr = ip->saddr;
	l->daddr = ip->daddr;
	l->proto = ip->protocol;
	l->ihl_ok = ihl == sizeof(*ip);
	l->l4_off = ETH_HLEN + ihl;
	if (l->proto == IPPROTO_TCP_) {
		struct tcphdr *th = (void *)ip + ihl;
		if ((void *)(th + 1) > end)
			return -1;
		l->sport = th->source;
		l->dport = th->dest;
		l->tcp_flags = ((__u8 *)th)[13];
		l->seq = th->seq;
		l->ack_seq = th->ack_seq;
	} else {
		struct udphdr *uh = (void *)ip + ihl;
		if ((void *)(uh + 1) > end)
			return -1;
		l->sport = uh->source;
		l->dport = uh->dest;
	}
	return 0;
}

static __always_inline __u32 lb4_now(void)
{
	return bpf_ktime_get_coarse_ns() / 1000000000ULL;
}

/* A flow hash for Maglev: the same 5-tuple picks the same table cell on every node. */
static __always_inline __u32 lb4_hash(__u32 saddr, __u32 daddr, __u16 sport, __u16 dport, __u8 proto)
{
	__u32 h = saddr * 0x9e3779b1u;
	h ^= daddr + 0x7f4a7c15u + (h << 6) + (h >> 2);
	h ^= (((__u32)sport << 16) | dport) + 0x7f4a7c15u + (h << 6) + (h >> 2);
	h ^= proto;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static __always_inline struct mbr_lb_config *lb_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&mbr_lb_config, &zero);
}

/* An active backend ID for a new flow: the client's affinity entry while it holds, else Maglev or a
 * random slot. 0 when the service has no active backend. */
static __always_inline __u32 lb4_pick(struct mbr_lb4_key *fk, struct mbr_lb4_service *svc, __u32 hash,
				      __u64 client_id, __u8 is_cookie)
{
	if (svc->count == 0)
		return 0;
	__u32 now = lb4_now();
	struct mbr_lb4_affinity_key ak = { .client_id = client_id, .rev_nat_index = svc->rev_nat_index,
					   .netns_cookie = is_cookie };
	if (svc->flags & MBR_LB_F_AFFINITY) {
		struct mbr_lb4_affinity_value *av = bpf_map_lookup_elem(&mbr_lb4_affinity, &ak);
		if (av && av->last_used + svc->affinity_timeout >= now) {
			__u32 id = av->backend_id;
			struct mbr_lb4_backend *be = bpf_map_lookup_elem(&mbr_lb4_backends, &id);
			if (be && !(be->flags & MBR_LB_BACKEND_F_TERMINATING)) {
				if (av->last_used != now)
					av->last_used = now;
				return id;
			}
		}
	}
	__u32 id = 0;
	if (svc->algorithm == MBR_LB_ALG_MAGLEV) {
		struct mbr_lb_config *cfg = lb_config();
		__u32 rn = svc->rev_nat_index;
		void *table = bpf_map_lookup_elem(&mbr_lb4_maglev, &rn);
		if (cfg && table && cfg->maglev_size) {
			__u32 cell = hash % cfg->maglev_size;
			__u32 *bid = bpf_map_lookup_elem(table, &cell);
			if (bid)
				id = *bid;
		}
	}
	if (!id) {
		struct mbr_lb4_key sk = *fk;
		sk.backend_slot = (bpf_get_prandom_u32() % svc->count) + 1;
		struct mbr_lb4_service *slot = bpf_map_lookup_elem(&mbr_lb4_services, &sk);
		if (slot)
			id = slot->backend_id;
	}
	if (id && (svc->flags & MBR_LB_F_AFFINITY)) {
		struct mbr_lb4_affinity_value nv = { .backend_id = id, .last_used = now };
		bpf_map_update_elem(&mbr_lb4_affinity, &ak, &nv, BPF_ANY);
	}
	return id;
}

/* Rewrites the source (is_src) or destination address and port, with the IP and L4 checksums. */
static __always_inline int lb4_rewrite(struct __sk_buff *skb, struct lb4_pkt *l, int is_src, __u32 new_addr,
				       __u16 new_port)
{
	__u32 old_addr = is_src ? l->saddr : l->daddr;
	__u16 old_port = is_src ? l->sport : l->dport;
	__u32 csum_off = l->l4_off + (l->proto == IPPROTO_TCP_ ? 16 : 6);
	__u64 mangled = l->proto == IPPROTO_UDP_ ? BPF_F_MARK_MANGLED_0 : 0;
	if (old_addr != new_addr) {
		__u32 addr_off = ETH_HLEN + (is_src ? __builtin_offsetof(struct iphdr, saddr)
						   : __builtin_offsetof(struct iphdr, daddr));
		if (bpf_l4_csum_replace(skb, csum_off, old_addr, new_addr, BPF_F_PSEUDO_HDR | mangled | 4) < 0)
			return -1;
		if (bpf_l3_csum_replace(skb, ETH_HLEN + __builtin_offsetof(struct iphdr, check), old_addr, new_addr,
					4) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, &new_addr, 4, 0) < 0)
			return -1;
	}
	if (old_port != new_port) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port, mangled | 2) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, l->l4_off + (is_src ? 0 : 2), &new_port, 2, 0) < 0)
			return -1;
	}
	if (is_src) {
		l->saddr = new_addr;
		l->sport = new_port;
	} else {
		l->daddr = new_addr;
		l->dport = new_port;
	}
	return 0;
}

static __always_inline __u16 lb_csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~(__u16)sum;
}

struct lb_iph {
	__u8 ver_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

/* The answer to a packet for a service with no backend, sent back where it came from: a RST for a
 * TCP SYN (connection refused), ICMP port unreachable for UDP (the client's recv fails at once).
 * Rewrites the packet in place; returns 0 when it is ready to send back, -1 to drop it instead. */
static __always_inline int lb4_build_refusal(struct __sk_buff *skb, struct lb4_pkt *l)
{
	__u8 macs[12];
	if (bpf_skb_load_bytes(skb, 0, macs, 12) < 0)
		return -1;
	__u8 eth[14];
	__builtin_memcpy(eth, macs + 6, 6);
	__builtin_memcpy(eth + 6, macs, 6);
	eth[12] = 0x08;
	eth[13] = 0x00;
	struct lb_iph ip = { .ver_ihl = 0x45, .frag_off = bpf_htons(0x4000), .ttl = 64, .saddr = l->daddr,
			     .daddr = l->saddr };
	if (l->proto == IPPROTO_TCP_) {
		if ((l->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN)
			return -1;
		struct {
			__u32 saddr, daddr;
			__u8 zero, proto;
			__u16 len;
			__u16 sport, dport;
			__u32 seq, ack;
			__u8 doff, flags;
			__u16 win, check, urg;
		} t = { .saddr = l->daddr, .daddr = l->saddr, .proto = IPPROTO_TCP_, .len = bpf_htons(20),
			.sport = l->dport, .dport = l->sport, .ack = bpf_htonl(bpf_ntohl(l->seq) + 1), .doff = 5 << 4,
			.flags = TCP_RST | TCP_ACK };
		t.check = lb_csum_fold(bpf_csum_diff(0, 0, (void *)&t, sizeof(t), 0));
		ip.protocol = IPPROTO_TCP_;
		ip.tot_len = bpf_htons(40);
		ip.check = lb_csum_fold(bpf_csum_diff(0, 0, (void *)&ip, sizeof(ip), 0));
		if (bpf_skb_change_tail(skb, LB_RST_PKT_LEN, 0) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, 0, eth, 14, 0) < 0 || bpf_skb_store_bytes(skb, 14, &ip, 20, 0) < 0 ||
		    bpf_skb_store_bytes(skb, 34, (__u8 *)&t + 12, 20, 0) < 0)
			return -1;
		return 0;
	}
	if (!l->ihl_ok)
		return -1;
	/* ICMP header + the offending IP header + its first 8 bytes, checksummed together. */
	struct {
		__u8 type, code;
		__u16 check;
		__u32 unused;
		__u8 quoted[28];
	} ic = { .type = 3, .code = 3 };
	if (bpf_skb_load_bytes(skb, ETH_HLEN, ic.quoted, 28) < 0)
		return -1;
	ic.check = lb_csum_fold(bpf_csum_diff(0, 0, (void *)&ic, sizeof(ic), 0));
	ip.protocol = IPPROTO_ICMP_;
	ip.tot_len = bpf_htons(20 + sizeof(ic));
	ip.check = lb_csum_fold(bpf_csum_diff(0, 0, (void *)&ip, sizeof(ip), 0));
	if (bpf_skb_change_tail(skb, LB_ICMP_PKT_LEN, 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, 0, eth, 14, 0) < 0 || bpf_skb_store_bytes(skb, 14, &ip, 20, 0) < 0 ||
	    bpf_skb_store_bytes(skb, 34, &ic, sizeof(ic), 0) < 0)
		return -1;
	return 0;
}

#define LB_FROM_POD 0
#define LB_FROM_NETDEV 1

/* Sends a packet this program rewrote on without the node's stack: the FIB names the device and MACs. */
static __always_inline int lb4_fib_redirect(struct __sk_buff *skb, struct lb4_pkt *l)
{
	struct bpf_fib_lookup fib = {
		.family = AF_INET_,
		.l4_protocol = l->proto,
		.sport = l->sport,
		.dport = l->dport,
		.tot_len = bpf_htons(skb->len - ETH_HLEN),
		.ifindex = skb->ifindex,
		.ipv4_src = l->saddr,
		.ipv4_dst = l->daddr,
	};
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	/* No answer (a neighbour not resolved yet, or a kernel whose lookup refuses this context):
	 * the kernel routes it out of the device it came in on and resolves the neighbour itself.
	 * Never TCX_NEXT: the stack drops a packet whose source is its own address (a martian). */
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return bpf_redirect_neigh(skb->ifindex, 0, 0, 0);
	__u8 macs[12];
	__builtin_memcpy(macs, fib.dmac, 6);
	__builtin_memcpy(macs + 6, fib.smac, 6);
	if (bpf_skb_store_bytes(skb, 0, macs, 12, 0) < 0)
		return TCX_DROP;
	return bpf_redirect(fib.ifindex, 0);
}

/* Service translation of a packet from a client (a pod, or the world through a NodePort). GO_ON when
 * the packet goes on (translated or not a service's), else the tc verdict. */
static __always_inline int lb4_xlate_fwd(struct __sk_buff *skb, struct lb4_pkt *l, int from)
{
	struct mbr_lb4_key fk = { .address = l->daddr, .dport = l->dport, .proto = l->proto };
	struct mbr_lb4_service *svc = bpf_map_lookup_elem(&mbr_lb4_services, &fk);
	if (!svc) {
		/* A flow opened straight to an address a service flow from the same client port went
		 * to before: that flow's reverse entry must not rewrite this one's replies. TCP SYNs and
		 * UDP only: an established TCP flow never shares its 4-tuple with a service flow. */
		if (from == LB_FROM_POD &&
		    (l->proto == IPPROTO_UDP_ || (l->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)) {
			struct mbr_ct_key rk = { .local_addr = l->saddr, .remote_addr = l->daddr,
						 .local_port = l->sport, .remote_port = l->dport,
						 .protocol = l->proto };
			struct mbr_lb4_ct_entry *stale = bpf_map_lookup_elem(&mbr_lb4_ct, &rk);
			if (stale && (stale->flags & MBR_LB_CT_F_REVERSE))
				bpf_map_delete_elem(&mbr_lb4_ct, &rk);
		}
		return GO_ON;
	}
	struct mbr_ct_key ck = { .local_addr = l->saddr, .remote_addr = l->daddr, .local_port = l->sport,
				 .remote_port = l->dport, .protocol = l->proto };
	struct mbr_lb4_backend *be = 0;
	__u32 id = 0;
	struct mbr_lb4_ct_entry *ce = bpf_map_lookup_elem(&mbr_lb4_ct, &ck);
	if (ce && !(ce->flags & MBR_LB_CT_F_REVERSE)) {
		id = ce->backend_id;
		be = bpf_map_lookup_elem(&mbr_lb4_backends, &id);
		/* A TCP SYN opens a new connection: a terminating backend takes none. */
		if (be && (be->flags & MBR_LB_BACKEND_F_TERMINATING) && (l->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)
			be = 0;
	}
	int is_new = !be;
	if (!be) {
		id = lb4_pick(&fk, svc, lb4_hash(l->saddr, l->daddr, l->sport, l->dport, l->proto), l->saddr, 0);
		if (id)
			be = bpf_map_lookup_elem(&mbr_lb4_backends, &id);
		if (!be) {
			count(from == LB_FROM_POD ? MBR_DIR_EGRESS : MBR_DIR_INGRESS, DROP_NO_SERVICE, skb->len);
			if (lb4_build_refusal(skb, l) < 0)
				return TCX_DROP;
			if (from == LB_FROM_POD)
				return bpf_redirect_peer(skb->ifindex, 0);
			return bpf_redirect(skb->ifindex, 0);
		}
	}
	__u32 be_addr = be->address;
	__u16 be_port = be->port;
	__u16 rev = svc->rev_nat_index;
	/* NodePort to a backend on another node: the node's address as source, so replies return here. */
	int snat = 0;
	__u32 node_addr = 0;
	if (from == LB_FROM_NETDEV) {
		struct mbr_ipcache_key ik = { .prefixlen = 32, .addr = be_addr };
		struct mbr_ipcache_value *iv = bpf_map_lookup_elem(&mbr_ipcache, &ik);
		struct mbr_lb_config *cfg = lb_config();
		if (!(iv && (iv->flags & MBR_IPCACHE_F_LOCAL_ENDPOINT)) && cfg && cfg->node_addr) {
			snat = 1;
			node_addr = cfg->node_addr;
		}
	}
	struct mbr_ct_key rk = { .local_addr = snat ? node_addr : l->saddr, .remote_addr = be_addr,
				 .local_port = l->sport, .remote_port = be_port, .protocol = l->proto };
	/* A SYN (a new connection on a reused client port) and a UDP datagram whose reverse entry went
	 * (a direct flow on the same 4-tuple removed it) write the entries again. */
	if (!is_new && ((l->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN ||
			(l->proto == IPPROTO_UDP_ && !bpf_map_lookup_elem(&mbr_lb4_ct, &rk))))
		is_new = 1;
	if (is_new) {
		struct mbr_lb4_ct_entry fwd = { .backend_id = id, .rev_nat_index = rev };
		bpf_map_update_elem(&mbr_lb4_ct, &ck, &fwd, BPF_ANY);
		struct mbr_lb4_ct_entry re = { .backend_id = id, .rev_nat_index = rev, .flags = MBR_LB_CT_F_REVERSE };
		if (snat) {
			re.flags |= MBR_LB_CT_F_SNAT;
			re.client_addr = l->saddr;
			re.client_port = l->sport;
		}
		bpf_map_update_elem(&mbr_lb4_ct, &rk, &re, BPF_ANY);
	}
	if (lb4_rewrite(skb, l, 0, be_addr, be_port) < 0)
		return TCX_DROP;
	if (!snat)
		return GO_ON;
	if (lb4_rewrite(skb, l, 1, node_addr, l->sport) < 0)
		return TCX_DROP;
	return lb4_fib_redirect(skb, l);
}

/* Reverse translation of a reply the client's side admitted: the backend becomes the frontend. With
 * SNAT (NodePort, remote backend) the destination goes back to the client too; returns 1 then, so
 * the caller routes the packet out again. */
static __always_inline int lb4_xlate_rev(struct __sk_buff *skb, struct lb4_pkt *l, int snat_only)
{
	struct mbr_ct_key rk = { .local_addr = l->daddr, .remote_addr = l->saddr, .local_port = l->dport,
				 .remote_port = l->sport, .protocol = l->proto };
	struct mbr_lb4_ct_entry *re = bpf_map_lookup_elem(&mbr_lb4_ct, &rk);
	if (!re || !(re->flags & MBR_LB_CT_F_REVERSE))
		return 0;
	/* On the underlay's ingress only SNAT replies are ours: a pod client's reply is rewritten once
	 * its own ingress half admitted it (conntrack there knows the backend's address). */
	if (snat_only && !(re->flags & MBR_LB_CT_F_SNAT))
		return 0;
	__u32 rn = re->rev_nat_index;
	struct mbr_lb4_reverse_nat *fe = bpf_map_lookup_elem(&mbr_lb4_reverse_nat, &rn);
	if (!fe)
		return 0;
	__u32 client_addr = re->client_addr;
	__u16 client_port = re->client_port;
	int snat = (re->flags & MBR_LB_CT_F_SNAT) != 0;
	if (lb4_rewrite(skb, l, 1, fe->address, fe->port) < 0)
		return 0;
	if (snat && lb4_rewrite(skb, l, 0, client_addr, client_port) < 0)
		return 0;
	return snat;
}

/* ---- the hooks membrane.bpf.c calls ----
 * Global functions: the verifier checks each once, on its own, and the caller goes on with only
 * the return value (inlined, every path through the translation multiplied the states of the
 * policy, conntrack and L7 redirect code after it in mbr_from_pod past the 1M-instruction limit). */

__attribute__((noinline)) int mbr_lb4_from_pod(struct __sk_buff *skb)
{
	struct lb4_pkt l = {};
	if (lb4_parse(skb, &l) < 0)
		return GO_ON;
	return lb4_xlate_fwd(skb, &l, LB_FROM_POD);
}

__attribute__((noinline)) int mbr_lb4_rev_xlate(struct __sk_buff *skb)
{
	struct lb4_pkt l = {};
	if (lb4_parse(skb, &l) == 0)
		lb4_xlate_rev(skb, &l, 0);
	return 0;
}

/* ---- NodePort on the node's underlay device ---- */

SEC("tc")
int mbr_from_netdev(struct __sk_buff *skb)
{
	struct lb4_pkt l = {};
	if (lb4_parse(skb, &l) < 0)
		return TCX_NEXT;
	/* A reply of a source-translated NodePort flow: back to the client, out of the stack. */
	if (lb4_xlate_rev(skb, &l, 1))
		return lb4_fib_redirect(skb, &l);
	int rc = lb4_xlate_fwd(skb, &l, LB_FROM_NETDEV);
	return rc == GO_ON ? TCX_NEXT : rc;
}

SEC("tc")
int mbr_to_netdev(struct __sk_buff *skb)
{
	struct lb4_pkt l = {};
	if (lb4_parse(skb, &l) == 0)
		lb4_xlate_rev(skb, &l, 0);
	return TCX_NEXT;
}

/* ---- socket LB: the node's own processes connect straight to a backend ---- */

static __always_inline int sock4_in_node(struct bpf_sock_addr *ctx)
{
	struct mbr_lb_config *cfg = lb_config();
	return cfg && cfg->netns_cookie && bpf_get_netns_cookie(ctx) == cfg->netns_cookie;
}

/* Rewrites the socket's destination to a backend; 1 to go on, 0 refuses (no backend: EPERM). */
static __always_inline int sock4_xlate_fwd(struct bpf_sock_addr *ctx)
{
	if (!sock4_in_node(ctx))
		return 1;
	__u8 proto = ctx->protocol;
	if (proto != IPPROTO_TCP_ && proto != IPPROTO_UDP_)
		return 1;
	__u32 addr = ctx->user_ip4;
	__u16 port = (__u16)ctx->user_port;
	struct mbr_lb4_key fk = { .address = addr, .dport = port, .proto = proto };
	struct mbr_lb4_service *svc = bpf_map_lookup_elem(&mbr_lb4_services, &fk);
	if (!svc)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	__u32 id = lb4_pick(&fk, svc, (__u32)cookie ^ (__u32)(cookie >> 32), bpf_get_netns_cookie(ctx), 1);
	struct mbr_lb4_backend *be = id ? bpf_map_lookup_elem(&mbr_lb4_backends, &id) : 0;
	if (!be)
		return 0;
	struct mbr_lb4_sock_key sk = { .cookie = cookie, .address = be->address, .port = be->port };
	struct mbr_lb4_sock_value sv = { .address = addr, .port = port, .rev_nat_index = svc->rev_nat_index };
	bpf_map_update_elem(&mbr_lb4_reverse_sk, &sk, &sv, BPF_ANY);
	ctx->user_ip4 = be->address;
	ctx->user_port = be->port;
	return 1;
}

static __always_inline int sock4_xlate_rev(struct bpf_sock_addr *ctx)
{
	if (!sock4_in_node(ctx))
		return 1;
	struct mbr_lb4_sock_key sk = { .cookie = bpf_get_socket_cookie(ctx), .address = ctx->user_ip4,
				       .port = (__u16)ctx->user_port };
	struct mbr_lb4_sock_value *sv = bpf_map_lookup_elem(&mbr_lb4_reverse_sk, &sk);
	if (sv) {
		ctx->user_ip4 = sv->address;
		ctx->user_port = sv->port;
	}
	return 1;
}

SEC("cgroup/connect4")
int mbr_sock4_connect(struct bpf_sock_addr *ctx)
{
	return sock4_xlate_fwd(ctx);
}

SEC("cgroup/sendmsg4")
int mbr_sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock4_xlate_fwd(ctx);
}

SEC("cgroup/recvmsg4")
int mbr_sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	return sock4_xlate_rev(ctx);
}

SEC("cgroup/getpeername4")
int mbr_sock4_getpeername(struct bpf_sock_addr *ctx)
{
	return sock4_xlate_rev(ctx);
}

#endif /* MEMBRANE_LB_H */
