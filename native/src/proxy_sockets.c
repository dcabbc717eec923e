// The sockets of the node's L7 proxy (src/proxy/proxy-sockets.ts types them). No policy here:
// socket options Node cannot set, and the two operations libuv does not offer.
//   tcpListen(netns, ip, port, backlog, transparent) -> fd   IP_TRANSPARENT, SO_REUSEADDR/PORT,
//       listening, non-blocking: Node takes it with net.Server.listen({ fd }).
//   tcpConnect(netns, dstIp, dstPort, srcIp, mark, cb(errno, fd)) -> handle   SO_MARK, and with a
//       srcIp a transparent bind to it (the original client's address); the connect completes on
//       the libuv loop (uv_poll) and cb gets the connected fd for new net.Socket({ fd }).
//   tcpConnectCancel(handle)   closes a connect that has not completed (cb is not called).
//   udpOpen(netns, ip, port, transparent, mark, cb(data, srcIp, srcPort, dstIp, dstPort)) -> handle
//       a UDP socket with IP_RECVORIGDSTADDR (every datagram with its original destination);
//       transparent: IP_TRANSPARENT + SO_REUSEADDR/PORT (the proxy port's listener); mark: SO_MARK.
//   udpSend(handle, data, fromIp, fromPort, toIp, toPort, mark)   sends from any source address
//       (a transparent socket bound to it for the one datagram).
//   udpSendTo(handle, data, toIp, toPort)   sends from the socket itself (an upstream query).
//   udpClose(handle)
//   socketPair() -> [fd, fd]   a connected AF_UNIX stream pair.
//   netnsAttach(progFd, netns) -> linkFd   the sk_lookup program on a network namespace.
// netns: '' for the calling thread's own, else a path (/run/netns/X) the socket is created in;
// sockets stay in their namespace whatever thread uses them later.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <bpf/bpf.h>

#include "addon.h"

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IP_RECVORIGDSTADDR
#define IP_RECVORIGDSTADDR 20
#endif
#ifndef IP_ORIGDSTADDR
#define IP_ORIGDSTADDR 20
#endif

static int parse_addr(const char *ip, int64_t port, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (!*ip) {
		sa->sin_addr.s_addr = htonl(INADDR_ANY);
		return 1;
	}
	return inet_pton(AF_INET, ip, &sa->sin_addr) == 1 && port >= 0 && port <= 65535;
}

// Creates a socket inside netns (or the thread's own). Returns the fd, or -1 with errno.
static int socket_in(const char *netns, int type)
{
	int self = -1;
	if (*netns) {
		self = netns_enter(netns);
		if (self < 0)
			return -1;
	}
	int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int e = errno;
	if (self >= 0)
		netns_leave(self);
	errno = e;
	return fd;
}

static int set_int(int fd, int level, int opt, int v)
{
	return setsockopt(fd, level, opt, &v, sizeof(v));
}

static napi_value fail_close(napi_env env, int fd, const char *what)
{
	int e = errno;
	if (fd >= 0)
		close(fd);
	return throw_errno(env, what, e, NULL);
}

static napi_value tcp_listen(napi_env env, napi_callback_info info)
{
	ARGS(5);
	char netns[256], ip[64];
	int64_t port, backlog;
	bool transparent = false;
	if (!arg_str(env, argv[0], netns, sizeof(netns)) || !arg_str(env, argv[1], ip, sizeof(ip)) ||
	    !arg_i64(env, argv[2], &port) || !arg_i64(env, argv[3], &backlog) ||
	    napi_get_value_bool(env, argv[4], &transparent) != napi_ok)
		return throw_type(env, "tcpListen(netns, ip, port, backlog, transparent)");
	struct sockaddr_in sa;
	if (!parse_addr(ip, port, &sa))
		return throw_type(env, "tcpListen: ip must be an IPv4 address and port 0..65535");
	int fd = socket_in(netns, SOCK_STREAM);
	if (fd < 0)
		return fail_close(env, -1, "tcpListen socket");
	if (set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0 || set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0)
		return fail_close(env, fd, "tcpListen SO_REUSEADDR/SO_REUSEPORT");
	if (transparent && set_int(fd, IPPROTO_IP, IP_TRANSPARENT, 1) < 0)
		return fail_close(env, fd, "tcpListen IP_TRANSPARENT");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return fail_close(env, fd, "tcpListen bind");
	if (listen(fd, (int)backlog) < 0)
		return fail_close(env, fd, "tcpListen listen");
	return mk_i64(env, fd);
}

// ---- asynchronous connect ----
struct conn {
	napi_env env;
	napi_ref cb;
	napi_ref resource;
	napi_async_context actx;
	uv_poll_t poll;
	int fd;
	int done;
};

static void conn_free(uv_handle_t *h)
{
	free(h->data);
}

static void conn_finish(struct conn *c, int err)
{
	napi_env env = c->env;
	c->done = 1;
	uv_poll_stop(&c->poll);
	int fd = c->fd;
	if (err) {
		close(fd);
		fd = -1;
	}
	c->fd = -1;
	napi_handle_scope scope;
	napi_open_handle_scope(env, &scope);
	napi_value cb, recv, args[2], res;
	napi_get_reference_value(env, c->cb, &cb);
	napi_get_reference_value(env, c->resource, &recv);
	napi_create_int32(env, err, &args[0]);
	napi_create_int32(env, fd, &args[1]);
	if (napi_make_callback(env, c->actx, recv, cb, 2, args, &res) != napi_ok) {
		napi_value exc;
		if (napi_get_and_clear_last_exception(env, &exc) == napi_ok)
			napi_fatal_exception(env, exc);
	}
	napi_close_handle_scope(env, scope);
	napi_delete_reference(env, c->cb);
	napi_delete_reference(env, c->resource);
	napi_async_destroy(env, c->actx);
	uv_close((uv_handle_t *)&c->poll, conn_free);
}

static void conn_on_poll(uv_poll_t *h, int status, int events)
{
	struct conn *c = h->data;
	if (c->done)
		return;
	int err = 0;
	socklen_t len = sizeof(err);
	if (status < 0)
		err = -status;
	else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	conn_finish(c, err);
}

static void conn_finalize(napi_env env, void *data, void *hint)
{
	// The handle object is only a token: the loop owns the struct until the connect ends.
}

static napi_value tcp_connect(napi_env env, napi_callback_info info)
{
	ARGS(6);
	char netns[256], dst[64], src[64];
	int64_t dport, mark;
	if (!arg_str(env, argv[0], netns, sizeof(netns)) || !arg_str(env, argv[1], dst, sizeof(dst)) ||
	    !arg_i64(env, argv[2], &dport) || !arg_str(env, argv[3], src, sizeof(src)) || !arg_i64(env, argv[4], &mark))
		return throw_type(env, "tcpConnect(netns, dstIp, dstPort, srcIp, mark, cb)");
	napi_valuetype t;
	napi_typeof(env, argv[5], &t);
	if (t != napi_function)
		return throw_type(env, "tcpConnect: cb must be a function");
	struct sockaddr_in to, from;
	if (!parse_addr(dst, dport, &to) || !*dst)
		return throw_type(env, "tcpConnect: dstIp must be an IPv4 address and dstPort 0..65535");
	if (*src && !parse_addr(src, 0, &from))
		return throw_type(env, "tcpConnect: srcIp must be an IPv4 address or ''");
	int fd = socket_in(netns, SOCK_STREAM);
	if (fd < 0)
		return fail_close(env, -1, "tcpConnect socket");
	if (mark && set_int(fd, SOL_SOCKET, SO_MARK, (int)mark) < 0)
		return fail_close(env, fd, "tcpConnect SO_MARK");
	if (*src) {
		if (set_int(fd, IPPROTO_IP, IP_TRANSPARENT, 1) < 0 || set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0)
			return fail_close(env, fd, "tcpConnect IP_TRANSPARENT");
		if (bind(fd, (struct sockaddr *)&from, sizeof(from)) < 0)
			return fail_close(env, fd, "tcpConnect bind");
	}
	if (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0 && errno != EINPROGRESS)
		return fail_close(env, fd, "tcpConnect connect");

	uv_loop_t *loop;
	CHECK(napi_get_uv_event_loop(env, &loop));
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return throw_errno(env, "tcpConnect", ENOMEM, NULL);
	}
	c->env = env;
	c->fd = fd;
	if (uv_poll_init(loop, &c->poll, fd) < 0) {
		close(fd);
		free(c);
		return throw_errno(env, "tcpConnect uv_poll_init", EINVAL, NULL);
	}
	c->poll.data = c;
	napi_value handle, name;
	CHECK(napi_create_object(env, &handle));
	CHECK(napi_wrap(env, handle, c, conn_finalize, NULL, NULL));
	CHECK(napi_create_reference(env, argv[5], 1, &c->cb));
	CHECK(napi_create_reference(env, handle, 1, &c->resource));
	CHECK(napi_create_string_utf8(env, "membrane:tcpConnect", NAPI_AUTO_LENGTH, &name));
	CHECK(napi_async_init(env, handle, name, &c->actx));
	uv_poll_start(&c->poll, UV_WRITABLE, conn_on_poll);
	return handle;
}

static napi_value tcp_connect_cancel(napi_env env, napi_callback_info info)
{
	ARGS(1);
	struct conn *c;
	if (napi_unwrap(env, argv[0], (void **)&c) != napi_ok || !c)
		return throw_type(env, "tcpConnectCancel(handle)");
	if (c->done)
		return NULL;
	c->done = 1;
	uv_poll_stop(&c->poll);
	close(c->fd);
	c->fd = -1;
	napi_remove_wrap(env, argv[0], NULL);
	napi_delete_reference(env, c->cb);
	napi_delete_reference(env, c->resource);
	napi_async_destroy(env, c->actx);
	uv_close((uv_handle_t *)&c->poll, conn_free);
	return NULL;
}

// ---- transparent UDP ----
struct udp {
	napi_env env;
	napi_ref cb;
	napi_ref resource;
	napi_async_context actx;
	uv_poll_t poll;
	int fd;
	int netns_fd; /* the socket's netns, for the per-datagram send sockets; -1: the thread's own */
	int closing;
	char buf[65536];
};

static void udp_free(uv_handle_t *h)
{
	struct udp *u = h->data;
	if (u->netns_fd >= 0)
		close(u->netns_fd);
	free(u);
}

static void udp_on_poll(uv_poll_t *h, int status, int events)
{
	struct udp *u = h->data;
	napi_env env = u->env;
	// Bounded per wakeup: the poll is level-triggered, the rest comes on the next turn.
	for (int i = 0; i < 64 && !u->closing; i++) {
		struct sockaddr_in src;
		char ctl[256];
		struct iovec iov = { .iov_base = u->buf, .iov_len = sizeof(u->buf) };
		struct msghdr msg = {
			.msg_name = &src,
			.msg_namelen = sizeof(src),
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = ctl,
			.msg_controllen = sizeof(ctl),
		};
		ssize_t n = recvmsg(u->fd, &msg, 0);
		if (n < 0)
			return; /* EAGAIN, or an error the next datagram will not have */
		struct sockaddr_in dst = { 0 };
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_ORIGDSTADDR)
				memcpy(&dst, CMSG_DATA(cm), sizeof(dst));
		char sip[INET_ADDRSTRLEN], dip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &src.sin_addr, sip, sizeof(sip));
		inet_ntop(AF_INET, &dst.sin_addr, dip, sizeof(dip));
		napi_handle_scope scope;
		napi_open_handle_scope(env, &scope);
		napi_value cb, recv, args[5], res;
		void *data;
		napi_get_reference_value(env, u->cb, &cb);
		napi_get_reference_value(env, u->resource, &recv);
		napi_create_buffer_copy(env, (size_t)n, u->buf, &data, &args[0]);
		args[1] = mk_str(env, sip);
		napi_create_uint32(env, ntohs(src.sin_port), &args[2]);
		args[3] = mk_str(env, dip);
		napi_create_uint32(env, ntohs(dst.sin_port), &args[4]);
		if (napi_make_callback(env, u->actx, recv, cb, 5, args, &res) != napi_ok) {
			napi_value exc;
			if (napi_get_and_clear_last_exception(env, &exc) == napi_ok)
				napi_fatal_exception(env, exc);
		}
		napi_close_handle_scope(env, scope);
	}
}

static void udp_finalize(napi_env env, void *data, void *hint)
{
}

static napi_value udp_open(napi_env env, napi_callback_info info)
{
	ARGS(6);
	char netns[256], ip[64];
	int64_t port, mark;
	bool transparent = false;
	if (!arg_str(env, argv[0], netns, sizeof(netns)) || !arg_str(env, argv[1], ip, sizeof(ip)) ||
	    !arg_i64(env, argv[2], &port) || napi_get_value_bool(env, argv[3], &transparent) != napi_ok ||
	    !arg_i64(env, argv[4], &mark))
		return throw_type(env, "udpOpen(netns, ip, port, transparent, mark, cb)");
	napi_valuetype t;
	napi_typeof(env, argv[5], &t);
	if (t != napi_function)
		return throw_type(env, "udpOpen: cb must be a function");
	struct sockaddr_in sa;
	if (!parse_addr(ip, port, &sa))
		return throw_type(env, "udpOpen: ip must be an IPv4 address and port 0..65535");
	int fd = socket_in(netns, SOCK_DGRAM);
	if (fd < 0)
		return fail_close(env, -1, "udpOpen socket");
	if (transparent && (set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0 || set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0 ||
			    set_int(fd, IPPROTO_IP, IP_TRANSPARENT, 1) < 0))
		return fail_close(env, fd, "udpOpen IP_TRANSPARENT");
	if (set_int(fd, IPPROTO_IP, IP_RECVORIGDSTADDR, 1) < 0 || (mark && set_int(fd, SOL_SOCKET, SO_MARK, (int)mark) < 0))
		return fail_close(env, fd, "udpOpen setsockopt");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return fail_close(env, fd, "udpOpen bind");
	uv_loop_t *loop;
	CHECK(napi_get_uv_event_loop(env, &loop));
	struct udp *u = calloc(1, sizeof(*u));
	if (!u) {
		close(fd);
		return throw_errno(env, "udpOpen", ENOMEM, NULL);
	}
	u->env = env;
	u->fd = fd;
	u->netns_fd = -1;
	if (*netns) {
		u->netns_fd = open(netns, O_RDONLY | O_CLOEXEC);
		if (u->netns_fd < 0) {
			int e = errno;
			close(fd);
			free(u);
			return throw_errno(env, "udpOpen open netns", e, NULL);
		}
	}
	if (uv_poll_init(loop, &u->poll, fd) < 0) {
		close(fd);
		if (u->netns_fd >= 0)
			close(u->netns_fd);
		free(u);
		return throw_errno(env, "udpOpen uv_poll_init", EINVAL, NULL);
	}
	u->poll.data = u;
	napi_value handle, name;
	CHECK(napi_create_object(env, &handle));
	CHECK(napi_wrap(env, handle, u, udp_finalize, NULL, NULL));
	CHECK(napi_create_reference(env, argv[5], 1, &u->cb));
	CHECK(napi_create_reference(env, handle, 1, &u->resource));
	CHECK(napi_create_string_utf8(env, "membrane:udp", NAPI_AUTO_LENGTH, &name));
	CHECK(napi_async_init(env, handle, name, &u->actx));
	uv_poll_start(&u->poll, UV_READABLE, udp_on_poll);
	return handle;
}

static struct udp *udp_arg(napi_env env, napi_value v)
{
	struct udp *u = NULL;
	if (napi_unwrap(env, v, (void **)&u) != napi_ok)
		return NULL;
	return u;
}

static napi_value udp_send(napi_env env, napi_callback_info info)
{
	ARGS(7);
	struct udp *u = udp_arg(env, argv[0]);
	void *data;
	size_t len;
	char fip[64], tip[64];
	int64_t fport, tport, mark;
	if (!u || u->closing || !arg_buf(env, argv[1], &data, &len) || !arg_str(env, argv[2], fip, sizeof(fip)) ||
	    !arg_i64(env, argv[3], &fport) || !arg_str(env, argv[4], tip, sizeof(tip)) || !arg_i64(env, argv[5], &tport) ||
	    !arg_i64(env, argv[6], &mark))
		return throw_type(env, "udpSend(handle, data, fromIp, fromPort, toIp, toPort, mark)");
	struct sockaddr_in from, to;
	if (!parse_addr(fip, fport, &from) || !parse_addr(tip, tport, &to) || !*tip)
		return throw_type(env, "udpSend: addresses must be IPv4 and ports 0..65535");
	int self = -1;
	if (u->netns_fd >= 0) {
		self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (self < 0 || setns(u->netns_fd, CLONE_NEWNET) < 0) {
			int e = errno;
			if (self >= 0)
				close(self);
			return throw_errno(env, "udpSend setns", e, NULL);
		}
	}
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int e = errno;
	if (self >= 0)
		netns_leave(self);
	if (fd < 0)
		return throw_errno(env, "udpSend socket", e, NULL);
	if (set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0 || set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0 ||
	    set_int(fd, IPPROTO_IP, IP_TRANSPARENT, 1) < 0 || (mark && set_int(fd, SOL_SOCKET, SO_MARK, (int)mark) < 0))
		return fail_close(env, fd, "udpSend setsockopt");
	if (bind(fd, (struct sockaddr *)&from, sizeof(from)) < 0)
		return fail_close(env, fd, "udpSend bind");
	if (sendto(fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof(to)) < 0)
		return fail_close(env, fd, "udpSend sendto");
	close(fd);
	return NULL;
}

static napi_value udp_send_to(napi_env env, napi_callback_info info)
{
	ARGS(4);
	struct udp *u = udp_arg(env, argv[0]);
	void *data;
	size_t len;
	char tip[64];
	int64_t tport;
	if (!u || u->closing || !arg_buf(env, argv[1], &data, &len) || !arg_str(env, argv[2], tip, sizeof(tip)) ||
	    !arg_i64(env, argv[3], &tport))
		return throw_type(env, "udpSendTo(handle, data, toIp, toPort)");
	struct sockaddr_in to;
	if (!parse_addr(tip, tport, &to) || !*tip)
		return throw_type(env, "udpSendTo: toIp must be IPv4 and toPort 0..65535");
	if (sendto(u->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof(to)) < 0)
		return throw_errno(env, "udpSendTo sendto", errno, NULL);
	return NULL;
}

static napi_value udp_close(napi_env env, napi_callback_info info)
{
	ARGS(1);
	struct udp *u = udp_arg(env, argv[0]);
	if (!u || u->closing)
		return NULL;
	u->closing = 1;
	uv_poll_stop(&u->poll);
	close(u->fd);
	napi_remove_wrap(env, argv[0], NULL);
	napi_delete_reference(env, u->cb);
	napi_delete_reference(env, u->resource);
	napi_async_destroy(env, u->actx);
	uv_close((uv_handle_t *)&u->poll, udp_free);
	return NULL;
}

// netnsAttach(progFd, netns) -> linkFd: an sk_lookup program attached to a network namespace
// ('' = the calling thread's) with a BPF link (pin it to keep it past the process).
static napi_value netns_attach(napi_env env, napi_callback_info info)
{
	ARGS(2);
	int64_t prog;
	char ns[4096];
	if (!arg_i64(env, argv[0], &prog) || !arg_str(env, argv[1], ns, sizeof(ns)))
		return throw_type(env, "netnsAttach(progFd, netns)");
	int nsfd = open(*ns ? ns : "/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return throw_errno(env, "netnsAttach open netns", errno, NULL);
	int fd = bpf_link_create((int)prog, nsfd, BPF_SK_LOOKUP, NULL);
	int e = errno;
	close(nsfd);
	if (fd < 0)
		return throw_errno(env, "netnsAttach sk_lookup link", e, NULL);
	return mk_i64(env, fd);
}

// socketPair() -> [fd, fd]: a connected AF_UNIX stream pair (non-blocking), two net.Sockets that
// chain one handler's upstream to another handler's client inside the proxy.
static napi_value socket_pair(napi_env env, napi_callback_info info)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return throw_errno(env, "socketPair", errno, NULL);
	napi_value arr;
	CHECK(napi_create_array_with_length(env, 2, &arr));
	CHECK(napi_set_element(env, arr, 0, mk_i64(env, sv[0])));
	CHECK(napi_set_element(env, arr, 1, mk_i64(env, sv[1])));
	return arr;
}

// shutdownWrite(fd): sends the FIN now (shutdown(SHUT_WR)), not when libuv next polls the socket;
// the caller has handed every byte to the kernel. A socket already shut down or reset is no error.
static napi_value shutdown_write(napi_env env, napi_callback_info info)
{
	ARGS(1);
	int64_t fd;
	if (!arg_i64(env, argv[0], &fd))
		return throw_type(env, "shutdownWrite(fd)");
	if (shutdown((int)fd, SHUT_WR) < 0 && errno != ENOTCONN)
		return throw_errno(env, "shutdownWrite", errno, NULL);
	return NULL;
}

#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}

napi_value register_proxy_sockets(napi_env env, napi_value exports)
{
	napi_property_descriptor d[] = {
		FN("tcpListen", tcp_listen),
		FN("tcpConnect", tcp_connect),
		FN("tcpConnectCancel", tcp_connect_cancel),
		FN("udpOpen", udp_open),
		FN("udpSend", udp_send),
		FN("udpSendTo", udp_send_to),
		FN("udpClose", udp_close),
		FN("socketPair", socket_pair),
		FN("shutdownWrite", shutdown_write),
		FN("netnsAttach", netns_attach),
	};
	CHECK(napi_define_properties(env, exports, sizeof(d) / sizeof(d[0]), d));
	return exports;
}
