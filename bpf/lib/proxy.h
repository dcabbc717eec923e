/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Handing a connection to the node's L7 proxy (src/proxy/), TPROXY-style without iptables: the
 * packet is assigned to the proxy's socket at tc ingress (bpf_sk_assign) and marked "to proxy";
 * the node's policy routing (fwmark 0x200/0xf00 -> table 2004, `local 0.0.0.0/0 dev lo`) then
 * delivers it locally, and the socket owns the original destination (getsockname() in the proxy).
 *
 *   proxy_assign()       the proxy's established socket of the flow, else its listener on the
 *                        proxy port (TCP); the listener (UDP). Only at tc ingress.
 *   mbr_proxy_lookup     (membrane.bpf.c, sk_lookup in the node's netns) the proxy's listener for a
 *                        redirected flow the stack looks a listener up for itself (a SYN on a
 *                        tuple the proxy holds in TIME_WAIT).
 *   proxy_upstream_sk()  a reply arriving from the network for an upstream connection of the
 *                        proxy bound to a pod's address (cross-node egress): the socket, if any.
 *   proxy_mark_*()       the marks of packets the proxy sends (SO_MARK on its upstream sockets):
 *                        from the ingress proxy 0x0A00, from the egress proxy 0x0B00, and the
 *                        identity of the connection's source in the other bits (mark_identity()).
 * proxy_assign() and proxy_upstream_reply() are global functions: the verifier checks each once,
 * not once per path of the program that calls it. Included by membrane.bpf.c.
 */
#ifndef MEMBRANE_LIB_PROXY_H
#define MEMBRANE_LIB_PROXY_H

#define MARK_MAGIC_MASK 0x0F00
/* MARK_MAGIC_TO_PROXY (0x0200) is defined by membrane.bpf.c. */
#define MARK_MAGIC_FROM_INGRESS_PROXY 0x0A00
#define MARK_MAGIC_FROM_EGRESS_PROXY 0x0B00

/* Cilium drop reasons of the redirect (src/monitor/event-types.ts DropReason): "Socket lookup
 * failed", "Socket assign failed", "Proxy redirection not supported for protocol". */
#define DROP_PROXY_LOOKUP_FAILED 178
#define DROP_PROXY_SET_FAILED 179
#define DROP_PROXY_UNKNOWN_PROTO 180

#ifndef BPF_TCP_LISTEN_
#define BPF_TCP_ESTABLISHED_ 1
#define BPF_TCP_TIME_WAIT_ 6
#define BPF_TCP_LISTEN_ 10
#endif

/* Which proxy sent a packet (0: none), from its mark. */
#define FROM_PROXY_NONE 0
#define FROM_PROXY_INGRESS 1
#define FROM_PROXY_EGRESS 2

static __always_inline __u8 mark_from_proxy(__u32 mark)
{
	__u32 magic = mark & MARK_MAGIC_MASK;
	if (magic == MARK_MAGIC_FROM_INGRESS_PROXY)
		return FROM_PROXY_INGRESS;
	if (magic == MARK_MAGIC_FROM_EGRESS_PROXY)
		return FROM_PROXY_EGRESS;
	return FROM_PROXY_NONE;
}

/* The identity a proxy mark carries: bits 0-15 in the mark's high half, bits 16-23 in its low
 * byte, bit 24 (local identities) at 0x1000. Mirrors src/proxy/proxy-marks.ts. */
static __always_inline __u32 mark_identity(__u32 mark)
{
	return (mark >> 16) | ((mark & 0xFF) << 16) | ((mark & 0x1000) << 12);
}

/* Not a drop: the flow's tuple is in TIME_WAIT at the proxy, the stack must see the packet itself. */
#define PROXY_TIME_WAIT 1

/* Assigns a TCP packet to sk if sk is usable: established lookups skip listeners (a listener of
 * the node on the original port is not the proxy) and report TIME_WAIT (PROXY_TIME_WAIT). 0, or a
 * drop reason. */
static __always_inline int assign_tcp(struct __sk_buff *skb, struct bpf_sock_tuple *t, int established)
{
	struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, t, sizeof(t->ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return DROP_PROXY_LOOKUP_FAILED;
	int rc = 0;
	if (established && sk->state == BPF_TCP_TIME_WAIT_)
		rc = PROXY_TIME_WAIT;
	else if (established && sk->state == BPF_TCP_LISTEN_)
		rc = DROP_PROXY_LOOKUP_FAILED;
	else if (bpf_sk_assign(skb, sk, 0) < 0)
		rc = DROP_PROXY_SET_FAILED;
	bpf_sk_release(sk);
	return rc;
}

static __always_inline int assign_udp(struct __sk_buff *skb, struct bpf_sock_tuple *t)
{
	struct bpf_sock *sk = bpf_sk_lookup_udp(skb, t, sizeof(t->ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return DROP_PROXY_LOOKUP_FAILED;
	int rc = bpf_sk_assign(skb, sk, 0) < 0 ? DROP_PROXY_SET_FAILED : 0;
	bpf_sk_release(sk);
	return rc;
}

/* Hands the packet (saddr:sport -> daddr:dport as on the wire) to the proxy listening on
 * proxy_port: the socket the proxy already has for this flow (TCP), else the listener bound to
 * 0.0.0.0:proxy_port. Sets the to-proxy mark. 0, or the drop reason when no socket takes it (the
 * proxy is down: L7-policed traffic fails closed). Only valid at tc ingress. */
__attribute__((noinline)) int proxy_assign(struct __sk_buff *skb, __u32 saddr, __u32 daddr, __u32 ports,
					   __u32 proto_port)
{
	/* ports: sport << 16 | dport; proto_port: protocol << 16 | proxy port (five arguments at most). */
	__u8 protocol = proto_port >> 16;
	__u16 proxy_port = proto_port & 0xffff;
	struct bpf_sock_tuple t = {};
	t.ipv4.saddr = saddr;
	t.ipv4.daddr = daddr;
	t.ipv4.sport = bpf_htons(ports >> 16);
	t.ipv4.dport = bpf_htons(ports & 0xffff);
	int rc;
	if (protocol == IPPROTO_TCP_) {
		rc = assign_tcp(skb, &t, 1);
		/* The proxy closed this tuple first and holds it in TIME_WAIT; a listener assigned a new
		 * SYN here could not insert its request (the kernel sees the duplicate tuple and drops
		 * it). Routed to the stack unassigned, the SYN takes the TIME_WAIT path, whose listener
		 * lookup mbr_proxy_lookup (sk_lookup) answers with the proxy's listener. */
		if (rc == PROXY_TIME_WAIT)
			rc = 0;
		else if (rc) {
			t.ipv4.daddr = 0;
			t.ipv4.dport = bpf_htons(proxy_port);
			rc = assign_tcp(skb, &t, 0);
		}
	} else if (protocol == IPPROTO_UDP_) {
		t.ipv4.daddr = 0;
		t.ipv4.dport = bpf_htons(proxy_port);
		rc = assign_udp(skb, &t);
	} else {
		rc = DROP_PROXY_UNKNOWN_PROTO;
	}
	if (rc)
		return rc;
	skb->mark = MARK_MAGIC_TO_PROXY | ((__u32)proxy_port << 16);
	bpf_skb_change_type(skb, 0 /* PACKET_HOST */);
	return 0;
}

/* A TCP packet from the network for an address of a local endpoint that belongs to one of the
 * proxy's upstream connections (bound transparently to the pod's address, marked by SO_MARK):
 * assigns it to that socket with the to-proxy mark and returns 1. Else 0 (the packet goes on). */
__attribute__((noinline)) int proxy_upstream_reply(struct __sk_buff *skb, __u32 saddr, __u32 daddr, __u16 sport,
						__u16 dport)
{
	struct bpf_sock_tuple t = {};
	t.ipv4.saddr = saddr;
	t.ipv4.daddr = daddr;
	t.ipv4.sport = bpf_htons(sport);
	t.ipv4.dport = bpf_htons(dport);
	struct bpf_sock *skc = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!skc)
		return 0;
	int done = 0;
	if (skc->state != BPF_TCP_LISTEN_ && skc->state != BPF_TCP_TIME_WAIT_) {
		struct bpf_sock *sk = bpf_sk_fullsock(skc);
		if (sk && mark_from_proxy(sk->mark) != FROM_PROXY_NONE && bpf_sk_assign(skb, skc, 0) == 0) {
			skb->mark = MARK_MAGIC_TO_PROXY;
			bpf_skb_change_type(skb, 0 /* PACKET_HOST */);
			done = 1;
		}
	}
	bpf_sk_release(skc);
	return done;
}

#endif /* MEMBRANE_LIB_PROXY_H */
