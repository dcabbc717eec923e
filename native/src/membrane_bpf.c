// The Membrane native addon: a thin N-API layer over libbpf and the bpf() syscall. It owns no
// policy logic; it loads objects, moves bytes in and out of maps, attaches tcx links inside a given
// network namespace, runs BPF_PROG_TEST_RUN and pumps a ring buffer into JS on the libuv loop.
// Every function is synchronous and runs on the JS thread (setns is per thread: never on the pool).
// Errors are JS Errors with `errno`, `syscall` and, for loads, `log` (libbpf + verifier output).
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <node_api.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include "addon.h"

// Debian 12's 6.1 uapi headers predate tcx.
#define MBR_BPF_TCX_INGRESS 46
#define MBR_BPF_TCX_EGRESS 47

// ---- libbpf log capture: the last load's messages go into the thrown error ----
static char g_log[65536];
static size_t g_log_len;

static int print_fn(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	char line[1024];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n <= 0)
		return 0;
	// clsact already existing is not an error for us.
	if (strstr(line, "Exclusivity flag on"))
		return 0;
	size_t len = strlen(line);
	if (g_log_len + len < sizeof(g_log) - 1) {
		memcpy(g_log + g_log_len, line, len);
		g_log_len += len;
		g_log[g_log_len] = 0;
	}
	return 0;
}

static const char *errno_code(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EINVAL: return "EINVAL";
	case E2BIG: return "E2BIG";
	case ENOSPC: return "ENOSPC";
	case ENOMEM: return "ENOMEM";
	case EEXIST: return "EEXIST";
	case EBUSY: return "EBUSY";
	case EACCES: return "EACCES";
	case ENODEV: return "ENODEV";
	case ENOSYS: return "ENOSYS";
	case EBADF: return "EBADF";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EFAULT: return "EFAULT";
	default: return "EBPF";
	}
}

napi_value throw_errno(napi_env env, const char *what, int e, const char *log)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "%s: %s (errno %d)", what, strerror(e), e);
	napi_value m, code, err, v;
	napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
	napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &code);
	napi_create_error(env, code, m, &err);
	napi_create_int32(env, e, &v);
	napi_set_named_property(env, err, "errno", v);
	napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &v);
	napi_set_named_property(env, err, "syscall", v);
	if (log && *log) {
		napi_create_string_utf8(env, log, NAPI_AUTO_LENGTH, &v);
		napi_set_named_property(env, err, "log", v);
	}
	napi_throw(env, err);
	return NULL;
}

napi_value throw_type(napi_env env, const char *msg)
{
	napi_throw_type_error(env, "MBR_ADDON_ARG", msg);
	return NULL;
}

// ---- argument helpers ----
int arg_i64(napi_env env, napi_value v, int64_t *out)
{
	return napi_get_value_int64(env, v, out) == napi_ok;
}

int arg_buf(napi_env env, napi_value v, void **data, size_t *len)
{
	bool is;
	if (napi_is_buffer(env, v, &is) == napi_ok && is)
		return napi_get_buffer_info(env, v, data, len) == napi_ok;
	if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
		napi_typedarray_type t;
		size_t n, off;
		napi_value ab;
		void *base;
		if (napi_get_typedarray_info(env, v, &t, &n, &base, &ab, &off) != napi_ok)
			return 0;
		*data = base;
		*len = n; // element count; callers use Uint8Array
		return 1;
	}
	return 0;
}

int arg_str(napi_env env, napi_value v, char *buf, size_t cap)
{
	size_t n;
	return napi_get_value_string_utf8(env, v, buf, cap, &n) == napi_ok;
}

napi_value mk_i64(napi_env env, int64_t n)
{
	napi_value v;
	napi_create_int64(env, n, &v);
	return v;
}

static napi_value mk_bool(napi_env env, bool b)
{
	napi_value v;
	napi_get_boolean(env, b, &v);
	return v;
}

napi_value mk_str(napi_env env, const char *s)
{
	napi_value v;
	napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
	return v;
}

static void set_i64(napi_env env, napi_value o, const char *k, int64_t n)
{
	napi_set_named_property(env, o, k, mk_i64(env, n));
}

// ---- network namespace switching for the JS thread ----
// Enters nspath (if not NULL/empty); returns the fd of the previous netns, or -1 with errno.
int netns_enter(const char *nspath)
{
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -1;
	int target = open(nspath, O_RDONLY | O_CLOEXEC);
	if (target < 0) {
		int e = errno;
		close(self);
		errno = e;
		return -1;
	}
	if (setns(target, CLONE_NEWNET) < 0) {
		int e = errno;
		close(target);
		close(self);
		errno = e;
		return -1;
	}
	close(target);
	return self;
}

void netns_leave(int self)
{
	if (setns(self, CLONE_NEWNET) < 0)
		abort(); // continuing in the wrong netns would attach to the wrong devices
	close(self);
}

// ---- objects ----
// loadObject(path, { pinMaps: {name: path}, maxEntries: {name: n} }) -> { maps: [...], programs: [...] }
// The object is closed before returning; the returned fds are dups the caller owns.
static napi_value load_object(napi_env env, napi_callback_info info)
{
	ARGS(2);
	char path[4096];
	if (!arg_str(env, argv[0], path, sizeof(path)))
		return throw_type(env, "loadObject: path must be a string");
	napi_value pins = NULL, maxe = NULL;
	napi_valuetype t;
	napi_typeof(env, argv[1], &t);
	if (t == napi_object) {
		bool has;
		napi_has_named_property(env, argv[1], "pinMaps", &has);
		if (has)
			napi_get_named_property(env, argv[1], "pinMaps", &pins);
		napi_has_named_property(env, argv[1], "maxEntries", &has);
		if (has)
			napi_get_named_property(env, argv[1], "maxEntries", &maxe);
	}

	static char vlog[1 << 20];
	vlog[0] = 0;
	g_log_len = 0;
	g_log[0] = 0;
	LIBBPF_OPTS(bpf_object_open_opts, oo, .kernel_log_buf = vlog, .kernel_log_size = sizeof(vlog),
		    .kernel_log_level = 0);
	struct bpf_object *obj = bpf_object__open_file(path, &oo);
	if (!obj)
		return throw_errno(env, "open BPF object", errno, g_log);

	struct bpf_map *m;
	bpf_object__for_each_map(m, obj)
	{
		const char *name = bpf_map__name(m);
		bool has;
		napi_value v;
		if (pins) {
			napi_has_named_property(env, pins, name, &has);
			if (has) {
				char p[4096];
				napi_get_named_property(env, pins, name, &v);
				arg_str(env, v, p, sizeof(p));
				bpf_map__set_pin_path(m, p);
			}
		}
		if (maxe) {
			napi_has_named_property(env, maxe, name, &has);
			if (has) {
				int64_t n;
				napi_get_named_property(env, maxe, name, &v);
				arg_i64(env, v, &n);
				bpf_map__set_max_entries(m, (uint32_t)n);
			}
		}
	}
	if (bpf_object__load(obj)) {
		int e = errno;
		char *all = malloc(sizeof(g_log) + strlen(vlog) + 2);
		if (all) {
			strcpy(all, g_log);
			strcat(all, vlog);
		}
		bpf_object__close(obj);
		napi_value r = throw_errno(env, "load BPF object", e, all ? all : g_log);
		free(all);
		return r;
	}

	napi_value res, maps, progs;
	napi_create_object(env, &res);
	napi_create_array(env, &maps);
	napi_create_array(env, &progs);
	uint32_t i = 0;
	bpf_object__for_each_map(m, obj)
	{
		napi_value o;
		napi_create_object(env, &o);
		napi_set_named_property(env, o, "name", mk_str(env, bpf_map__name(m)));
		set_i64(env, o, "fd", fcntl(bpf_map__fd(m), F_DUPFD_CLOEXEC, 3));
		set_i64(env, o, "type", bpf_map__type(m));
		set_i64(env, o, "keySize", bpf_map__key_size(m));
		set_i64(env, o, "valueSize", bpf_map__value_size(m));
		set_i64(env, o, "maxEntries", bpf_map__max_entries(m));
		napi_set_element(env, maps, i++, o);
	}
	i = 0;
	struct bpf_program *p;
	bpf_object__for_each_program(p, obj)
	{
		napi_value o;
		napi_create_object(env, &o);
		napi_set_named_property(env, o, "name", mk_str(env, bpf_program__name(p)));
		set_i64(env, o, "fd", fcntl(bpf_program__fd(p), F_DUPFD_CLOEXEC, 3));
		napi_set_element(env, progs, i++, o);
	}
	napi_set_named_property(env, res, "maps", maps);
	napi_set_named_property(env, res, "programs", progs);
	bpf_object__close(obj);
	return res;
}

static napi_value close_fd(napi_env env, napi_callback_info info)
{
	ARGS(1);
	int64_t fd;
	if (!arg_i64(env, argv[0], &fd))
		return throw_type(env, "closeFd: fd must be a number");
	if (fd >= 0)
		close((int)fd);
	return NULL;
}

static napi_value obj_pin(napi_env env, napi_callback_info info)
{
	ARGS(2);
	int64_t fd;
	char path[4096];
	if (!arg_i64(env, argv[0], &fd) || !arg_str(env, argv[1], path, sizeof(path)))
		return throw_type(env, "objPin(fd, path)");
	if (bpf_obj_pin((int)fd, path))
		return throw_errno(env, "pin", errno, NULL);
	return NULL;
}

static napi_value obj_get(napi_env env, napi_callback_info info)
{
	ARGS(1);
	char path[4096];
	if (!arg_str(env, argv[0], path, sizeof(path)))
		return throw_type(env, "objGet(path)");
	int fd = bpf_obj_get(path);
	if (fd < 0)
		return throw_errno(env, "open pinned object", errno, NULL);
	return mk_i64(env, fd);
}

// ---- maps ----
static napi_value map_create(napi_env env, napi_callback_info info)
{
	ARGS(6);
	int64_t type, ks, vs, me, flags;
	char name[BPF_OBJ_NAME_LEN] = "";
	if (!arg_i64(env, argv[0], &type) || !arg_i64(env, argv[1], &ks) || !arg_i64(env, argv[2], &vs) ||
	    !arg_i64(env, argv[3], &me) || !arg_i64(env, argv[4], &flags))
		return throw_type(env, "mapCreate(type, keySize, valueSize, maxEntries, flags, name)");
	arg_str(env, argv[5], name, sizeof(name));
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = (uint32_t)flags);
	int fd = bpf_map_create((enum bpf_map_type)type, name, (uint32_t)ks, (uint32_t)vs, (uint32_t)me, &o);
	if (fd < 0)
		return throw_errno(env, "create map", errno, NULL);
	return mk_i64(env, fd);
}

static napi_value map_info(napi_env env, napi_callback_info info)
{
	ARGS(1);
	int64_t fd;
	if (!arg_i64(env, argv[0], &fd))
		return throw_type(env, "mapInfo(fd)");
	struct bpf_map_info mi = {};
	uint32_t len = sizeof(mi);
	if (bpf_obj_get_info_by_fd((int)fd, &mi, &len))
		return throw_errno(env, "map info", errno, NULL);
	napi_value o;
	napi_create_object(env, &o);
	set_i64(env, o, "id", mi.id);
	set_i64(env, o, "type", mi.type);
	set_i64(env, o, "keySize", mi.key_size);
	set_i64(env, o, "valueSize", mi.value_size);
	set_i64(env, o, "maxEntries", mi.max_entries);
	set_i64(env, o, "flags", mi.map_flags);
	napi_set_named_property(env, o, "name", mk_str(env, mi.name));
	return o;
}

static napi_value prog_info(napi_env env, napi_callback_info info)
{
	ARGS(1);
	int64_t fd;
	if (!arg_i64(env, argv[0], &fd))
		return throw_type(env, "progInfo(fd)");
	struct bpf_prog_info pi = {};
	uint32_t len = sizeof(pi);
	if (bpf_obj_get_info_by_fd((int)fd, &pi, &len))
		return throw_errno(env, "program info", errno, NULL);
	napi_value o;
	napi_create_object(env, &o);
	set_i64(env, o, "id", pi.id);
	set_i64(env, o, "type", pi.type);
	set_i64(env, o, "runCount", (int64_t)pi.run_cnt);
	set_i64(env, o, "runTimeNs", (int64_t)pi.run_time_ns);
	napi_set_named_property(env, o, "name", mk_str(env, pi.name));
	return o;
}

static napi_value map_fd_by_id(napi_env env, napi_callback_info info)
{
	ARGS(1);
	int64_t id;
	if (!arg_i64(env, argv[0], &id))
		return throw_type(env, "mapFdById(id)");
	int fd = bpf_map_get_fd_by_id((uint32_t)id);
	if (fd < 0)
		return throw_errno(env, "map by id", errno, NULL);
	return mk_i64(env, fd);
}

static napi_value map_update(napi_env env, napi_callback_info info)
{
	ARGS(4);
	int64_t fd, flags = 0;
	void *k, *v;
	size_t kl, vl;
	if (!arg_i64(env, argv[0], &fd) || !arg_buf(env, argv[1], &k, &kl) || !arg_buf(env, argv[2], &v, &vl))
		return throw_type(env, "mapUpdate(fd, key, value, flags)");
	if (argc > 3)
		arg_i64(env, argv[3], &flags);
	if (bpf_map_update_elem((int)fd, k, v, (uint64_t)flags))
		return throw_errno(env, "map update", errno, NULL);
	return NULL;
}

static napi_value map_lookup(napi_env env, napi_callback_info info)
{
	ARGS(3);
	int64_t fd;
	void *k, *v;
	size_t kl, vl;
	if (!arg_i64(env, argv[0], &fd) || !arg_buf(env, argv[1], &k, &kl) || !arg_buf(env, argv[2], &v, &vl))
		return throw_type(env, "mapLookup(fd, key, valueOut)");
	if (bpf_map_lookup_elem((int)fd, k, v)) {
		if (errno == ENOENT)
			return mk_bool(env, false);
		return throw_errno(env, "map lookup", errno, NULL);
	}
	return mk_bool(env, true);
}

static napi_value map_delete(napi_env env, napi_callback_info info)
{
	ARGS(2);
	int64_t fd;
	void *k;
	size_t kl;
	if (!arg_i64(env, argv[0], &fd) || !arg_buf(env, argv[1], &k, &kl))
		return throw_type(env, "mapDelete(fd, key)");
	if (bpf_map_delete_elem((int)fd, k)) {
		if (errno == ENOENT)
			return mk_bool(env, false);
		return throw_errno(env, "map delete", errno, NULL);
	}
	return mk_bool(env, true);
}

// mapNextKey(fd, key | null, nextOut) -> bool (false at the end)
static napi_value map_next_key(napi_env env, napi_callback_info info)
{
	ARGS(3);
	int64_t fd;
	void *k = NULL, *n;
	size_t kl, nl;
	napi_valuetype t;
	if (!arg_i64(env, argv[0], &fd) || !arg_buf(env, argv[2], &n, &nl))
		return throw_type(env, "mapNextKey(fd, key|null, nextOut)");
	napi_typeof(env, argv[1], &t);
	if (t != napi_null && t != napi_undefined && !arg_buf(env, argv[1], &k, &kl))
		return throw_type(env, "mapNextKey: key must be a Buffer or null");
	if (bpf_map_get_next_key((int)fd, k, n)) {
		if (errno == ENOENT)
			return mk_bool(env, false);
		return throw_errno(env, "map next key", errno, NULL);
	}
	return mk_bool(env, true);
}

// A failed batch call throws the errno error with `done`: how many elements the kernel
// processed before it stopped, so the caller knows what was written.
static napi_value throw_batch_errno(napi_env env, const char *what, int e, uint32_t done)
{
	throw_errno(env, what, e, NULL);
	napi_value exc;
	napi_get_and_clear_last_exception(env, &exc);
	set_i64(env, exc, "done", done);
	napi_throw(env, exc);
	return NULL;
}

// mapUpdateBatch(fd, keys, values, count, elemFlags) -> count. On error the thrown Error carries
// `done`: how many leading elements the kernel wrote.
static napi_value map_update_batch(napi_env env, napi_callback_info info)
{
	ARGS(5);
	int64_t fd, count, flags = 0;
	void *k, *v;
	size_t kl, vl;
	if (!arg_i64(env, argv[0], &fd) || !arg_buf(env, argv[1], &k, &kl) || !arg_buf(env, argv[2], &v, &vl) ||
	    !arg_i64(env, argv[3], &count))
		return throw_type(env, "mapUpdateBatch(fd, keys, values, count, flags)");
	if (argc > 4)
		arg_i64(env, argv[4], &flags);
	uint32_t n = (uint32_t)count;
	LIBBPF_OPTS(bpf_map_batch_opts, o, .elem_flags = (uint64_t)flags);
	if (n > 0 && bpf_map_update_batch((int)fd, k, v, &n, &o))
		return throw_batch_errno(env, "map update batch", errno, n);
	return mk_i64(env, n);
}

static napi_value map_delete_batch(napi_env env, napi_callback_info info)
{
	ARGS(3);
	int64_t fd, count;
	void *k;
	size_t kl;
	if (!arg_i64(env, argv[0], &fd) || !arg_buf(env, argv[1], &k, &kl) || !arg_i64(env, argv[2], &count))
		return throw_type(env, "mapDeleteBatch(fd, keys, count)");
	uint32_t n = (uint32_t)count;
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	if (n > 0 && bpf_map_delete_batch((int)fd, k, &n, &o))
		return throw_batch_errno(env, "map delete batch", errno, n);
	return mk_i64(env, n);
}

// mapLookupBatch(fd, inBatch | null, outBatch, keys, values, count) -> { count, more }
// inBatch/outBatch are opaque cursors of the key size (hash maps).
static napi_value map_lookup_batch(napi_env env, napi_callback_info info)
{
	ARGS(6);
	int64_t fd, count;
	void *inb = NULL, *outb, *k, *v;
	size_t l;
	napi_valuetype t;
	if (!arg_i64(env, argv[0], &fd) || !arg_buf(env, argv[2], &outb, &l) || !arg_buf(env, argv[3], &k, &l) ||
	    !arg_buf(env, argv[4], &v, &l) || !arg_i64(env, argv[5], &count))
		return throw_type(env, "mapLookupBatch(fd, in|null, out, keys, values, count)");
	napi_typeof(env, argv[1], &t);
	if (t != napi_null && t != napi_undefined && !arg_buf(env, argv[1], &inb, &l))
		return throw_type(env, "mapLookupBatch: in must be a Buffer or null");
	uint32_t n = (uint32_t)count;
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	bool more = true;
	if (bpf_map_lookup_batch((int)fd, inb, outb, k, v, &n, &o)) {
		if (errno != ENOENT)
			return throw_errno(env, "map lookup batch", errno, NULL);
		more = false;
	}
	napi_value r;
	napi_create_object(env, &r);
	set_i64(env, r, "count", n);
	napi_set_named_property(env, r, "more", mk_bool(env, more));
	return r;
}

static napi_value num_possible_cpus(napi_env env, napi_callback_info info)
{
	return mk_i64(env, libbpf_num_possible_cpus());
}

// ---- attach ----
// ifIndex(netnsPath | '', ifname) -> ifindex inside that netns
static napi_value if_index(napi_env env, napi_callback_info info)
{
	ARGS(2);
	char ns[4096], ifname[IF_NAMESIZE + 1];
	if (!arg_str(env, argv[0], ns, sizeof(ns)) || !arg_str(env, argv[1], ifname, sizeof(ifname)))
		return throw_type(env, "ifIndex(netns, ifname)");
	int self = -1;
	if (*ns && (self = netns_enter(ns)) < 0)
		return throw_errno(env, "enter netns", errno, NULL);
	unsigned idx = if_nametoindex(ifname);
	int e = errno;
	if (self >= 0)
		netns_leave(self);
	if (!idx)
		return throw_errno(env, "find interface", e, NULL);
	return mk_i64(env, idx);
}

// tcxAttach(progFd, netns | '', ifname, 'ingress'|'egress', position?: 'first'|'last') -> { linkFd, ifindex }
// Raw BPF_LINK_CREATE: libbpf 1.1 has no tcx fields. The tcx part of the attr starts at offset 16.
// Without a position the kernel appends (the same as 'last'); 'first' goes ahead of every program
// attached so far (BPF_F_BEFORE with no relative program), 'last' behind them (BPF_F_AFTER).
#define MBR_BPF_F_BEFORE (1U << 3)
#define MBR_BPF_F_AFTER (1U << 4)
static napi_value tcx_attach(napi_env env, napi_callback_info info)
{
	ARGS(5);
	int64_t prog;
	char ns[4096], ifname[IF_NAMESIZE + 1], dir[16], pos[16] = "";
	if (!arg_i64(env, argv[0], &prog) || !arg_str(env, argv[1], ns, sizeof(ns)) ||
	    !arg_str(env, argv[2], ifname, sizeof(ifname)) || !arg_str(env, argv[3], dir, sizeof(dir)) ||
	    (argc >= 5 && !arg_str(env, argv[4], pos, sizeof(pos))) ||
	    (*pos && strcmp(pos, "first") != 0 && strcmp(pos, "last") != 0))
		return throw_type(env, "tcxAttach(progFd, netns, ifname, direction, position?: 'first' | 'last')");
	int self = -1;
	if (*ns && (self = netns_enter(ns)) < 0)
		return throw_errno(env, "enter netns", errno, NULL);
	unsigned idx = if_nametoindex(ifname);
	if (!idx) {
		int e = errno;
		if (self >= 0)
			netns_leave(self);
		return throw_errno(env, "find interface", e, NULL);
	}
	union {
		struct {
			uint32_t prog_fd;
			uint32_t target_ifindex;
			uint32_t attach_type;
			uint32_t flags;
			uint32_t relative_fd;
			uint32_t pad;
			uint64_t expected_revision;
		} s;
		char raw[128];
	} attr;
	memset(&attr, 0, sizeof(attr));
	attr.s.prog_fd = (uint32_t)prog;
	attr.s.target_ifindex = idx;
	attr.s.attach_type = strcmp(dir, "egress") == 0 ? MBR_BPF_TCX_EGRESS : MBR_BPF_TCX_INGRESS;
	attr.s.flags = strcmp(pos, "first") == 0 ? MBR_BPF_F_BEFORE : strcmp(pos, "last") == 0 ? MBR_BPF_F_AFTER : 0;
	int fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
	int e = errno;
	if (self >= 0)
		netns_leave(self);
	if (fd < 0)
		return throw_errno(env, "tcx attach", e, NULL);
	napi_value r;
	napi_create_object(env, &r);
	set_i64(env, r, "linkFd", fd);
	set_i64(env, r, "ifindex", idx);
	return r;
}

static napi_value link_detach(napi_env env, napi_callback_info info)
{
	ARGS(1);
	int64_t fd;
	if (!arg_i64(env, argv[0], &fd))
		return throw_type(env, "linkDetach(fd)");
	if (bpf_link_detach((int)fd) && errno != ENOLINK && errno != ENOENT)
		return throw_errno(env, "link detach", errno, NULL);
	return NULL;
}

// Legacy tc (cls_bpf, direct action) for kernels without tcx. One filter per hook with a fixed
// handle and priority, replaced in place (BPF_TC_F_REPLACE) so a re-attach has no gap. Filters live
// in the kernel until detached: nothing to pin.
#define MBR_TC_HANDLE 0x4d42
#define MBR_TC_PRIORITY 1

// tcAttach(progFd, netns | '', ifname, 'ingress'|'egress') -> { ifindex }
static napi_value tc_attach(napi_env env, napi_callback_info info)
{
	ARGS(4);
	int64_t prog;
	char ns[4096], ifname[IF_NAMESIZE + 1], dir[16];
	if (!arg_i64(env, argv[0], &prog) || !arg_str(env, argv[1], ns, sizeof(ns)) ||
	    !arg_str(env, argv[2], ifname, sizeof(ifname)) || !arg_str(env, argv[3], dir, sizeof(dir)))
		return throw_type(env, "tcAttach(progFd, netns, ifname, direction)");
	int self = -1;
	if (*ns && (self = netns_enter(ns)) < 0)
		return throw_errno(env, "enter netns", errno, NULL);
	unsigned idx = if_nametoindex(ifname);
	int e = errno, err = 0;
	const char *what = "find interface";
	if (idx) {
		LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)idx,
			    .attach_point = strcmp(dir, "egress") == 0 ? BPF_TC_EGRESS : BPF_TC_INGRESS);
		err = bpf_tc_hook_create(&hook);
		if (err && err != -EEXIST) {
			what = "create clsact qdisc";
			e = -err;
		} else {
			LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = (int)prog, .handle = MBR_TC_HANDLE,
				    .priority = MBR_TC_PRIORITY, .flags = BPF_TC_F_REPLACE);
			err = bpf_tc_attach(&hook, &o);
			what = "tc attach";
			e = -err;
		}
	}
	if (self >= 0)
		netns_leave(self);
	if (!idx || (err && err != -EEXIST))
		return throw_errno(env, what, e, NULL);
	napi_value r;
	napi_create_object(env, &r);
	set_i64(env, r, "ifindex", idx);
	return r;
}

// tcDetach(netns | '', ifname, 'ingress'|'egress') -> bool (false when there was nothing to detach)
static napi_value tc_detach(napi_env env, napi_callback_info info)
{
	ARGS(3);
	char ns[4096], ifname[IF_NAMESIZE + 1], dir[16];
	if (!arg_str(env, argv[0], ns, sizeof(ns)) || !arg_str(env, argv[1], ifname, sizeof(ifname)) ||
	    !arg_str(env, argv[2], dir, sizeof(dir)))
		return throw_type(env, "tcDetach(netns, ifname, direction)");
	int self = -1;
	if (*ns && (self = netns_enter(ns)) < 0)
		return throw_errno(env, "enter netns", errno, NULL);
	unsigned idx = if_nametoindex(ifname);
	int err = -ENODEV;
	if (idx) {
		LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)idx,
			    .attach_point = strcmp(dir, "egress") == 0 ? BPF_TC_EGRESS : BPF_TC_INGRESS);
		LIBBPF_OPTS(bpf_tc_opts, o, .handle = MBR_TC_HANDLE, .priority = MBR_TC_PRIORITY);
		err = bpf_tc_detach(&hook, &o);
	}
	if (self >= 0)
		netns_leave(self);
	if (err == -ENOENT || err == -ENODEV || err == -EINVAL)
		return mk_bool(env, false);
	if (err)
		return throw_errno(env, "tc detach", -err, NULL);
	return mk_bool(env, true);
}

// ---- BPF_PROG_TEST_RUN ----
// progTestRun(progFd, packet, repeat, ctx | null) -> { retval, durationNs, data }
static napi_value prog_test_run(napi_env env, napi_callback_info info)
{
	ARGS(4);
	int64_t fd, repeat;
	void *data, *ctx = NULL;
	size_t dl, cl = 0;
	if (!arg_i64(env, argv[0], &fd) || !arg_buf(env, argv[1], &data, &dl) || !arg_i64(env, argv[2], &repeat))
		return throw_type(env, "progTestRun(fd, packet, repeat, ctx)");
	napi_valuetype t = napi_undefined;
	if (argc > 3)
		napi_typeof(env, argv[3], &t);
	if (t != napi_null && t != napi_undefined && !arg_buf(env, argv[3], &ctx, &cl))
		return throw_type(env, "progTestRun: ctx must be a Buffer or null");
	size_t cap = dl + 256;
	void *out = malloc(cap);
	if (!out)
		return throw_errno(env, "test run", ENOMEM, NULL);
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = data, .data_size_in = (uint32_t)dl, .data_out = out,
		    .data_size_out = (uint32_t)cap, .repeat = (int)repeat, .ctx_in = ctx, .ctx_size_in = (uint32_t)cl);
	if (bpf_prog_test_run_opts((int)fd, &o)) {
		int e = errno;
		free(out);
		return throw_errno(env, "test run", e, NULL);
	}
	napi_value r, b;
	napi_create_object(env, &r);
	set_i64(env, r, "retval", (int32_t)o.retval);
	set_i64(env, r, "durationNs", o.duration);
	void *bd;
	napi_create_buffer_copy(env, o.data_size_out, out, &bd, &b);
	napi_set_named_property(env, r, "data", b);
	free(out);
	return r;
}

// ---- ring buffer pump ----
// ringOpen(mapFd, cb(buf, count), { intervalMs, maxBatch }) -> handle. Records are framed in buf as
// [u32 len][payload][pad to 8]. The BPF side suppresses wakeups, so the timer does most draining;
// uv_poll on the epoll fd catches forced wakeups under bursts.
struct ring {
	napi_env env;
	napi_ref cb;
	napi_ref resource;
	napi_async_context actx;
	struct ring_buffer *rb;
	uv_poll_t poll;
	uv_timer_t timer;
	napi_ref batch; /* the JS Buffer records are framed into, handed to every callback */
	char *buf;	/* its bytes */
	size_t cap, used;
	uint32_t count, max_batch;
	uint64_t delivered, batches;
	int closing, in_cb, handles_open;
};

static int ring_sample(void *ctx, void *data, size_t size)
{
	struct ring *r = ctx;
	size_t need = 4 + ((size + 7) & ~(size_t)7);
	// libbpf 1.1 advances past a record whose callback fails, so copy first and stop after.
	if (size <= 256 && r->used + need <= r->cap) {
		uint32_t len = (uint32_t)size;
		memcpy(r->buf + r->used, &len, 4);
		memcpy(r->buf + r->used + 4, data, size);
		r->used += need;
		r->count++;
	}
	return r->count >= r->max_batch ? -1 : 0;
}

static void ring_deliver(struct ring *r)
{
	if (!r->count)
		return;
	napi_env env = r->env;
	napi_handle_scope scope;
	napi_open_handle_scope(env, &scope);
	napi_value cb, recv, args[2], res;
	napi_get_reference_value(env, r->cb, &cb);
	napi_get_reference_value(env, r->resource, &recv);
	// The same Buffer every time, no copy: the callback decodes it before returning, and no drain
	// runs while it does (ring_drain checks in_cb).
	napi_get_reference_value(env, r->batch, &args[0]);
	napi_create_uint32(env, r->count, &args[1]);
	r->delivered += r->count;
	r->batches++;
	r->used = 0;
	r->count = 0;
	r->in_cb = 1;
	if (napi_make_callback(env, r->actx, recv, cb, 2, args, &res) != napi_ok) {
		napi_value exc;
		if (napi_get_and_clear_last_exception(env, &exc) == napi_ok)
			napi_fatal_exception(env, exc);
	}
	r->in_cb = 0;
	napi_close_handle_scope(env, scope);
}

static void ring_free_handle(uv_handle_t *h)
{
	struct ring *r = h->data;
	if (--r->handles_open == 0) {
		ring_buffer__free(r->rb);
		napi_delete_reference(r->env, r->batch);
		free(r);
	}
}

static void ring_drain(struct ring *r)
{
	if (r->in_cb)
		return; /* a drain from inside the callback would overwrite the batch it is decoding */
	for (int round = 0; round < 64 && !r->closing; round++) {
		int n = ring_buffer__consume(r->rb);
		int full = r->count >= r->max_batch;
		ring_deliver(r);
		if (n >= 0 && !full)
			break;
	}
}

static void ring_on_poll(uv_poll_t *h, int status, int events)
{
	ring_drain(h->data);
}

static void ring_on_timer(uv_timer_t *h)
{
	ring_drain(h->data);
}

static void ring_finalize(napi_env env, void *data, void *hint)
{
	// The JS handle was collected without close(): keep the native side until the loop closes it.
}

static napi_value ring_open(napi_env env, napi_callback_info info)
{
	ARGS(3);
	int64_t fd, interval = 5, max_batch = 4096;
	if (!arg_i64(env, argv[0], &fd))
		return throw_type(env, "ringOpen(mapFd, cb, opts)");
	napi_valuetype t;
	napi_typeof(env, argv[1], &t);
	if (t != napi_function)
		return throw_type(env, "ringOpen: cb must be a function");
	napi_typeof(env, argv[2], &t);
	if (t == napi_object) {
		napi_value v;
		bool has;
		napi_has_named_property(env, argv[2], "intervalMs", &has);
		if (has) {
			napi_get_named_property(env, argv[2], "intervalMs", &v);
			arg_i64(env, v, &interval);
		}
		napi_has_named_property(env, argv[2], "maxBatch", &has);
		if (has) {
			napi_get_named_property(env, argv[2], "maxBatch", &v);
			arg_i64(env, v, &max_batch);
		}
	}
	struct ring *r = calloc(1, sizeof(*r));
	r->env = env;
	r->max_batch = (uint32_t)max_batch;
	r->cap = (size_t)max_batch * (4 + 256); // records up to 256 bytes
	r->rb = ring_buffer__new((int)fd, ring_sample, r, NULL);
	if (!r->rb) {
		int e = errno;
		free(r);
		return throw_errno(env, "open ring buffer", e, NULL);
	}
	napi_value batch;
	void *data;
	napi_create_buffer(env, r->cap, &data, &batch);
	r->buf = data;
	napi_create_reference(env, batch, 1, &r->batch);
	napi_create_reference(env, argv[1], 1, &r->cb);
	napi_value rname, res;
	napi_create_object(env, &res);
	napi_create_reference(env, res, 1, &r->resource);
	napi_create_string_utf8(env, "membrane:ringbuf", NAPI_AUTO_LENGTH, &rname);
	// napi_make_callback runs the callback in this async context's scope, so microtasks drain.
	napi_async_init(env, res, rname, &r->actx);
	uv_loop_t *loop;
	napi_get_uv_event_loop(env, &loop);
	uv_poll_init(loop, &r->poll, ring_buffer__epoll_fd(r->rb));
	r->poll.data = r;
	uv_poll_start(&r->poll, UV_READABLE, ring_on_poll);
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	uv_timer_start(&r->timer, ring_on_timer, (uint64_t)interval, (uint64_t)interval);
	r->handles_open = 2;
	napi_value ext;
	napi_create_external(env, r, ring_finalize, NULL, &ext);
	return ext;
}

static struct ring *ring_arg(napi_env env, napi_value v)
{
	void *p = NULL;
	napi_get_value_external(env, v, &p);
	return p;
}

static napi_value ring_drain_now(napi_env env, napi_callback_info info)
{
	ARGS(1);
	struct ring *r = ring_arg(env, argv[0]);
	if (r && !r->closing)
		ring_drain(r);
	return NULL;
}

static napi_value ring_stats(napi_env env, napi_callback_info info)
{
	ARGS(1);
	struct ring *r = ring_arg(env, argv[0]);
	napi_value o;
	napi_create_object(env, &o);
	if (r) {
		set_i64(env, o, "delivered", (int64_t)r->delivered);
		set_i64(env, o, "batches", (int64_t)r->batches);
	}
	return o;
}

static napi_value ring_close(napi_env env, napi_callback_info info)
{
	ARGS(1);
	struct ring *r = ring_arg(env, argv[0]);
	if (!r || r->closing)
		return NULL;
	r->closing = 1;
	uv_poll_stop(&r->poll);
	uv_timer_stop(&r->timer);
	napi_delete_reference(env, r->cb);
	napi_delete_reference(env, r->resource);
	napi_async_destroy(env, r->actx);
	// Freed from the close callbacks: never inside ring_buffer__consume of this ring.
	uv_close((uv_handle_t *)&r->poll, ring_free_handle);
	uv_close((uv_handle_t *)&r->timer, ring_free_handle);
	return NULL;
}

// ---- cgroup (socket LB) ----
// cgroupAttach(progFd, cgroupDir, attachType) -> linkFd. attachType: 'connect4' | 'sendmsg4' |
// 'recvmsg4' | 'getpeername4'. A bpf_link: it coexists with other programs on the cgroup, detaches
// when its last fd or pin goes.
static napi_value cgroup_attach(napi_env env, napi_callback_info info)
{
	ARGS(3);
	int64_t prog;
	char dir[4096], type[32];
	if (!arg_i64(env, argv[0], &prog) || !arg_str(env, argv[1], dir, sizeof(dir)) ||
	    !arg_str(env, argv[2], type, sizeof(type)))
		return throw_type(env, "cgroupAttach(progFd, cgroupDir, attachType)");
	enum bpf_attach_type at;
	if (strcmp(type, "connect4") == 0)
		at = BPF_CGROUP_INET4_CONNECT;
	else if (strcmp(type, "sendmsg4") == 0)
		at = BPF_CGROUP_UDP4_SENDMSG;
	else if (strcmp(type, "recvmsg4") == 0)
		at = BPF_CGROUP_UDP4_RECVMSG;
	else if (strcmp(type, "getpeername4") == 0)
		at = BPF_CGROUP_INET4_GETPEERNAME;
	else
		return throw_type(env, "cgroupAttach: attachType must be connect4, sendmsg4, recvmsg4 or getpeername4");
	int cg = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0)
		return throw_errno(env, "open cgroup", errno, NULL);
	int fd = bpf_link_create((int)prog, cg, at, NULL);
	int e = errno;
	close(cg);
	if (fd < 0)
		return throw_errno(env, "cgroup attach", e, NULL);
	return mk_i64(env, fd);
}

// netnsCookie() -> the cookie of the calling thread's network namespace (SO_NETNS_COOKIE, 5.14+).
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
static napi_value netns_cookie(napi_env env, napi_callback_info info)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return throw_errno(env, "socket", errno, NULL);
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	int rc = getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
	int e = errno;
	close(s);
	if (rc < 0)
		return throw_errno(env, "getsockopt SO_NETNS_COOKIE", e, NULL);
	return mk_i64(env, (int64_t)cookie);
}

// ---- module ----
#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}

static napi_value init(napi_env env, napi_value exports)
{
	libbpf_set_print(print_fn);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	napi_property_descriptor d[] = {
		FN("loadObject", load_object),
		FN("closeFd", close_fd),
		FN("objPin", obj_pin),
		FN("objGet", obj_get),
		FN("mapCreate", map_create),
		FN("mapInfo", map_info),
		FN("progInfo", prog_info),
		FN("mapFdById", map_fd_by_id),
		FN("mapUpdate", map_update),
		FN("mapLookup", map_lookup),
		FN("mapDelete", map_delete),
		FN("mapNextKey", map_next_key),
		FN("mapUpdateBatch", map_update_batch),
		FN("mapDeleteBatch", map_delete_batch),
		FN("mapLookupBatch", map_lookup_batch),
		FN("numPossibleCpus", num_possible_cpus),
		FN("ifIndex", if_index),
		FN("tcxAttach", tcx_attach),
		FN("linkDetach", link_detach),
		FN("tcAttach", tc_attach),
		FN("tcDetach", tc_detach),
		FN("progTestRun", prog_test_run),
		FN("ringOpen", ring_open),
		FN("ringDrain", ring_drain_now),
		FN("ringStats", ring_stats),
		FN("ringClose", ring_close),
		FN("cgroupAttach", cgroup_attach),
		FN("netnsCookie", netns_cookie),
	};
	CHECK(napi_define_properties(env, exports, sizeof(d) / sizeof(d[0]), d));
	return register_proxy_sockets(env, exports);
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
