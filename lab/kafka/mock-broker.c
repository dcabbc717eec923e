// A one-broker Kafka cluster for the lab and the tests: librdkafka's mock cluster (rdkafka_mock.h),
// listening on a given address and port with the given topics created, until SIGTERM or SIGINT.
//
//   mock-broker --listen 10.0.1.5:9092 [--advertise ADDR:PORT] --topic orders.created --topic events:3
//
// --listen with port 0 lets the kernel choose the port (printed).
//
// librdkafka 2.0's mock cluster binds each broker's listener to 127.0.0.1 on an ephemeral port and
// advertises that address in Metadata, which no other network namespace can reach. This program
// defines bind(): librdkafka's call resolves to it, and a listener bound to 127.0.0.1:0 is bound to
// the --listen address instead. The mock reads the address back with getsockname(), so Metadata
// advertises the address clients connected to. Every other bind() goes to libc unchanged.
//
// --advertise ADDR:PORT makes Metadata name another address (getsockname() on the listener answers
// it), for a proxy in front of the broker on loopback, where no redirect keeps the address.
//
// Prints "listening ADDR:PORT advertised ADDR:PORT" on stdout once the broker accepts connections. Exit 0 on a signal,
// 2 on a usage error, 1 when the cluster cannot be started.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_TOPICS 64

static struct sockaddr_in listen_addr;
static struct sockaddr_in advertise_addr;
static int listen_addr_used;
static int has_advertise;
static int listener_fd = -1;

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*libc_bind)(int, const struct sockaddr *, socklen_t);
  if (!libc_bind) libc_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
  if (!libc_bind) {
    errno = ENOSYS;
    return -1;
  }
  const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
  if (!listen_addr_used && addr && len >= sizeof(*in) && in->sin_family == AF_INET &&
      in->sin_addr.s_addr == htonl(INADDR_LOOPBACK) && in->sin_port == 0) {
    listen_addr_used = 1;
    listener_fd = fd;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    int rc = libc_bind(fd, (const struct sockaddr *)&listen_addr, sizeof(listen_addr));
    // Port 0 asks the kernel for one: keep the port it chose, to print.
    socklen_t alen = sizeof(listen_addr);
    if (rc == 0 && listen_addr.sin_port == 0) syscall(SYS_getsockname, fd, (struct sockaddr *)&listen_addr, &alen);
    return rc;
  }
  return libc_bind(fd, addr, len);
}

int getsockname(int fd, struct sockaddr *addr, socklen_t *len) {
  static int (*libc_getsockname)(int, struct sockaddr *, socklen_t *);
  if (!libc_getsockname)
    libc_getsockname = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "getsockname");
  if (!libc_getsockname) {
    errno = ENOSYS;
    return -1;
  }
  if (has_advertise && fd == listener_fd && addr && len && *len >= sizeof(advertise_addr)) {
    memcpy(addr, &advertise_addr, sizeof(advertise_addr));
    *len = sizeof(advertise_addr);
    return 0;
  }
  return libc_getsockname(fd, addr, len);
}

static volatile sig_atomic_t stopping;
static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

static void usage(const char *why) {
  fprintf(stderr, "mock-broker: %s\nusage: mock-broker --listen ADDR:PORT [--advertise ADDR:PORT] [--topic NAME[:PARTITIONS]]...\n", why);
  exit(2);
}

static int parse_addr(const char *s, struct sockaddr_in *out) {
  char host[64];
  const char *colon = strrchr(s, ':');
  if (!colon || (size_t)(colon - s) >= sizeof(host)) return -1;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end != '\0' || port < 0 || port > 65535) return -1;
  memset(out, 0, sizeof(*out));
  out->sin_family = AF_INET;
  out->sin_port = htons((uint16_t)port);
  return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *topics[MAX_TOPICS];
  int partitions[MAX_TOPICS];
  int ntopics = 0;
  int have_listen = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
      if (parse_addr(argv[++i], &listen_addr) != 0) usage("--listen: expected an IPv4 ADDR:PORT");
      have_listen = 1;
    } else if (strcmp(argv[i], "--advertise") == 0 && i + 1 < argc) {
      if (parse_addr(argv[++i], &advertise_addr) != 0) usage("--advertise: expected an IPv4 ADDR:PORT");
      has_advertise = 1;
    } else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
      if (ntopics == MAX_TOPICS) usage("too many --topic");
      char *t = argv[++i];
      char *colon = strchr(t, ':');
      partitions[ntopics] = 1;
      if (colon) {
        *colon = '\0';
        char *end;
        long n = strtol(colon + 1, &end, 10);
        if (*end != '\0' || n < 1 || n > 1000) usage("--topic: expected NAME[:PARTITIONS 1-1000]");
        partitions[ntopics] = (int)n;
      }
      if (*t == '\0' || strlen(t) > 249) usage("--topic: expected a topic name of 1-249 characters");
      topics[ntopics++] = t;
    } else {
      usage("unknown argument");
    }
  }
  if (!have_listen) usage("--listen is required");

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  // The handle only hosts the mock cluster; it never connects anywhere.
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (!rk) {
    fprintf(stderr, "mock-broker: rd_kafka_new: %s\n", err);
    return 1;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
  if (!mc || !listen_addr_used) {
    fprintf(stderr, "mock-broker: cannot listen on the --listen address (%s)\n", strerror(errno));
    return 1;
  }
  for (int i = 0; i < ntopics; i++) {
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topics[i], partitions[i], 1);
    if (e) {
      fprintf(stderr, "mock-broker: create topic %s: %s\n", topics[i], rd_kafka_err2str(e));
      return 1;
    }
  }
  char listen_text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &listen_addr.sin_addr, listen_text, sizeof(listen_text));
  printf("listening %s:%u advertised %s\n", listen_text, ntohs(listen_addr.sin_port),
         rd_kafka_mock_cluster_bootstraps(mc));
  fflush(stdout);
  while (!stopping) pause();
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
