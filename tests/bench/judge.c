/* judge.c — the benchmark's instant judge: a minimal HTTP/1.1 server on
 * 127.0.0.1 speaking the part of the Ollama API obra's judge uses, answering
 * every chat with a valid verdict at once.  One thread, poll(2), keep-alive
 * connections, Content-Length bodies only (what libcurl sends).
 *
 *   bench-judge [--port N] [--ttl SECONDS]
 *
 * prints "PORT <n>" on stdout once it listens, then serves until POST /stop,
 * SIGTERM, or the ttl (default 900 s: a stray server never outlives a run).
 *
 *   POST /api/chat    {"message":{"content":"<verdict JSON>"},"done":true,...};
 *                     an NDJSON stream of that one line when "stream" is true
 *   GET  /api/tags    one model, "bench-judge"
 *   GET  /stats       {"chats", "body_bytes", "body_max", "content_bytes",
 *                      "content_max"}: the requests' sizes so far, where
 *                      content is the sum of the messages' "content" strings
 *                      (what the model would read)
 *   POST /reset       zero the statistics
 *   POST /stop        answer, then exit
 *
 * The verdict: complete, quality 0.9, confidence 0.9, no issues. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONN    64
#define MAX_REQUEST ((size_t)256 << 20)

typedef struct {
  int fd;
  char *buf; size_t len, cap;
} conn;

static conn conns[MAX_CONN];
static unsigned long chats, body_bytes, body_max, content_bytes, content_max;
static volatile sig_atomic_t stop;

static void on_term(int sig) { (void)sig; stop = 1; }

static void send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      struct pollfd pf = { fd, POLLOUT, 0 };
      if (poll(&pf, 1, 5000) <= 0) return;
      continue;
    }
    if (w <= 0) return;
    p += w; n -= (size_t)w;
  }
}

static void reply(int fd, int status, const char *type, const char *body) {
  char head[256];
  size_t n = strlen(body);
  int h = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                   status, status == 200 ? "OK" : "Not Found", type, n);
  send_all(fd, head, (size_t)h);
  send_all(fd, body, n);
}

static const char VERDICT[] =
  "{\\\"complete\\\":true,\\\"quality\\\":0.9,\\\"confidence\\\":0.9,\\\"issues\\\":[],\\\"summary\\\":\\\"done\\\"}";

static void chat(int fd, const char *body, size_t len) {
  size_t content = 0;
  int stream = 0;
  cJSON *j = cJSON_ParseWithLength(body, len);
  const cJSON *m, *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
  cJSON_ArrayForEach(m, msgs) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (cJSON_IsString(c)) content += strlen(c->valuestring);
  }
  stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stream"));
  cJSON_Delete(j);
  chats++;
  body_bytes += len;
  if (len > body_max) body_max = len;
  content_bytes += content;
  if (content > content_max) content_max = content;
  char out[1024];
  snprintf(out, sizeof out,
    "{\"model\":\"bench-judge\",\"created_at\":\"2026-01-01T00:00:00Z\","
    "\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},\"done\":true,\"done_reason\":\"stop\","
    "\"total_duration\":1000,\"prompt_eval_count\":%zu,\"eval_count\":20}%s",
    VERDICT, content / 3, stream ? "\n" : "");
  reply(fd, 200, stream ? "application/x-ndjson" : "application/json", out);
}

/* Handle every complete request in c's buffer; returns -1 to close. */
static int serve(conn *c) {
  for (;;) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL) return c->len > 65536 ? -1 : 0;
    size_t head_len = (size_t)(end - c->buf) + 4;
    size_t body_len = 0;
    for (char *p = c->buf; p < end; p++) {
      if ((p == c->buf || p[-1] == '\n') && strncasecmp(p, "Content-Length:", 15) == 0)
        body_len = strtoull(p + 15, NULL, 10);
    }
    if (body_len > MAX_REQUEST) return -1;
    if (c->len < head_len + body_len) return 0;
    char method[8] = "", path[128] = "";
    sscanf(c->buf, "%7s %127s", method, path);
    const char *body = c->buf + head_len;
    if (strcmp(path, "/api/chat") == 0) {
      chat(c->fd, body, body_len);
    } else if (strcmp(path, "/api/tags") == 0) {
      reply(c->fd, 200, "application/json", "{\"models\":[{\"name\":\"bench-judge\",\"model\":\"bench-judge\"}]}");
    } else if (strcmp(path, "/api/version") == 0) {
      reply(c->fd, 200, "application/json", "{\"version\":\"0.0.0-bench\"}");
    } else if (strcmp(path, "/stats") == 0) {
      char out[512];
      snprintf(out, sizeof out, "{\"chats\":%lu,\"body_bytes\":%lu,\"body_max\":%lu,\"content_bytes\":%lu,\"content_max\":%lu}",
               chats, body_bytes, body_max, content_bytes, content_max);
      reply(c->fd, 200, "application/json", out);
    } else if (strcmp(path, "/reset") == 0) {
      chats = body_bytes = body_max = content_bytes = content_max = 0;
      reply(c->fd, 200, "application/json", "{}");
    } else if (strcmp(path, "/stop") == 0) {
      reply(c->fd, 200, "application/json", "{}");
      stop = 1;
    } else {
      reply(c->fd, 404, "application/json", "{\"error\":\"not found\"}");
    }
    memmove(c->buf, c->buf + head_len + body_len, c->len - head_len - body_len);
    c->len -= head_len + body_len;
  }
}

static void drop(conn *c) {
  close(c->fd);
  free(c->buf);
  memset(c, 0, sizeof *c);
  c->fd = -1;
}

int main(int argc, char **argv) {
  int port = 0;
  long ttl = 900;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--ttl") == 0) ttl = atol(argv[i + 1]);
    else { fprintf(stderr, "usage: bench-judge [--port N] [--ttl SECONDS]\n"); return 2; }
  }
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 64) != 0 ||
      getsockname(ls, (struct sockaddr *)&a, &alen) != 0) {
    fprintf(stderr, "bench-judge: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
    return 1;
  }
  printf("PORT %d\n", ntohs(a.sin_port));
  fflush(stdout);
  for (int i = 0; i < MAX_CONN; i++) conns[i].fd = -1;
  time_t deadline = time(NULL) + ttl;
  while (!stop && time(NULL) < deadline) {
    struct pollfd pf[MAX_CONN + 1];
    int idx[MAX_CONN + 1], n = 0;
    pf[n].fd = ls; pf[n].events = POLLIN; idx[n++] = -1;
    for (int i = 0; i < MAX_CONN; i++)
      if (conns[i].fd >= 0) { pf[n].fd = conns[i].fd; pf[n].events = POLLIN; idx[n++] = i; }
    if (poll(pf, (nfds_t)n, 1000) <= 0) continue;
    for (int k = 0; k < n; k++) {
      if (!pf[k].revents) continue;
      if (idx[k] < 0) {
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int slot = -1;
        for (int i = 0; i < MAX_CONN && slot < 0; i++) if (conns[i].fd < 0) slot = i;
        if (slot < 0) { close(fd); continue; }
        conns[slot].fd = fd;
        continue;
      }
      conn *c = &conns[idx[k]];
      if (c->cap - c->len < 65536) {
        size_t ncap = c->cap ? c->cap * 2 : 131072;
        char *nb = realloc(c->buf, ncap);
        if (nb == NULL) { drop(c); continue; }
        c->buf = nb; c->cap = ncap;
      }
      ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
      if (r <= 0) { if (r < 0 && errno == EINTR) continue; drop(c); continue; }
      c->len += (size_t)r;
      if (serve(c) != 0) drop(c);
    }
  }
  return 0;
}
