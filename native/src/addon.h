// What the addon's C files share: error and argument helpers (membrane_bpf.c) and the network
// namespace switch of the JS thread.
#ifndef MEMBRANE_ADDON_H
#define MEMBRANE_ADDON_H
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

#define CHECK(call)                                                                                   \
	do {                                                                                          \
		if ((call) != napi_ok) {                                                              \
			napi_throw_error(env, NULL, "membrane addon: N-API call failed: " #call);    \
			return NULL;                                                                  \
		}                                                                                     \
	} while (0)

#define ARGS(n)                                                                                       \
	size_t argc = n;                                                                              \
	napi_value argv[n];                                                                           \
	CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));

napi_value throw_errno(napi_env env, const char *what, int e, const char *log);
napi_value throw_type(napi_env env, const char *msg);
int arg_i64(napi_env env, napi_value v, int64_t *out);
int arg_buf(napi_env env, napi_value v, void **data, size_t *len);
int arg_str(napi_env env, napi_value v, char *buf, size_t cap);
napi_value mk_i64(napi_env env, int64_t n);
napi_value mk_str(napi_env env, const char *s);
/* Enters nspath; returns the fd of the previous netns, or -1 with errno. */
int netns_enter(const char *nspath);
/* Returns to the netns netns_enter() left (aborts when it cannot). */
void netns_leave(int self);

/* proxy_sockets.c: the L7 proxy's sockets; adds its functions to exports. */
napi_value register_proxy_sockets(napi_env env, napi_value exports);

#endif
