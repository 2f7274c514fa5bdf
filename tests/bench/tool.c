/* tool.c — the benchmark's measuring instrument and its floors, so that what
 * the harness (tests/bench/run.lua) times has no shell and no Lua in it.
 *
 *   bench-tool run N [-C DIR] [-e NAME=VALUE]... -- PROGRAM ARG...
 *       runs the program N times (fork + execvp, no shell), its stdout read
 *       through a pipe and discarded, stderr to /dev/null; prints one line a
 *       run: "<wall ms> <peak RSS KiB> <exit status> <CPU ms>" (RSS from
 *       wait4, the figure /usr/bin/time -f %M reports; CPU: user + system
 *       time of the process itself and its threads, not of its children, read
 *       from /proc/PID/stat while it is a zombie)
 *   bench-tool http N PORT BYTES
 *       the loopback HTTP floor: N POSTs of an Ollama chat request whose
 *       message is BYTES long to 127.0.0.1:PORT/api/chat over one keep-alive
 *       connection, each reply read whole; prints "<ms>" a request
 *   bench-tool sqlite N PATH
 *       the SQLite commit floor: N transactions (BEGIN IMMEDIATE, one INSERT
 *       of a 2 KB row, COMMIT) on a WAL database with synchronous=NORMAL, the
 *       settings obra's store uses; prints "<ms>" a commit
 *
 * Exit status 0, or 1 with a message on stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int die(const char *what) {
  fprintf(stderr, "bench-tool: %s: %s\n", what, strerror(errno));
  return 1;
}

static int cmd_run(int argc, char **argv) {
  if (argc < 1) return fprintf(stderr, "bench-tool run: N missing\n"), 2;
  long n = atol(argv[0]);
  const char *dir = NULL;
  char *envs[64];
  int nenv = 0, i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (strcmp(argv[i], "-C") == 0 && i + 1 < argc) dir = argv[++i];
    else if (strcmp(argv[i], "-e") == 0 && i + 1 < argc && nenv < 64) envs[nenv++] = argv[++i];
    else return fprintf(stderr, "bench-tool run: unknown option %s\n", argv[i]), 2;
  }
  if (i + 1 >= argc) return fprintf(stderr, "bench-tool run: no program after --\n"), 2;
  char **prog = argv + i + 1;
  for (long k = 0; k < n; k++) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return die("pipe");
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid < 0) return die("fork");
    if (pid == 0) {
      dup2(p[1], 1);
      int null = open("/dev/null", O_RDWR);
      if (null >= 0) { dup2(null, 2); dup2(null, 0); }
      if (dir && chdir(dir) != 0) _exit(126);
      for (int e = 0; e < nenv; e++) putenv(envs[e]);
      execvp(prog[0], prog);
      _exit(127);
    }
    close(p[1]);
    char buf[65536];
    while (read(p[0], buf, sizeof buf) > 0) {}
    close(p[0]);
    int st = 0;
    struct rusage ru;
    siginfo_t si;
    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0) if (errno != EINTR) return die("waitid");
    double t1 = now_ms();
    double cpu_ms = -1;
    char path[64], stat[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
      size_t got = fread(stat, 1, sizeof stat - 1, f);
      fclose(f);
      stat[got] = 0;
      char *r = strrchr(stat, ')');   /* after the command's name: state is field 3, utime 14, stime 15 */
      unsigned long ut = 0, stime = 0;
      if (r && sscanf(r + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stime) == 2)
        cpu_ms = (double)(ut + stime) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
    }
    while (wait4(pid, &st, 0, &ru) < 0) if (errno != EINTR) return die("wait4");
    printf("%.3f %ld %d %.0f\n", t1 - t0, ru.ru_maxrss, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), cpu_ms);
  }
  return 0;
}

static int cmd_http(int argc, char **argv) {
  if (argc < 3) return fprintf(stderr, "bench-tool http: N PORT BYTES\n"), 2;
  long n = atol(argv[0]);
  int port = atoi(argv[1]);
  size_t bytes = (size_t)atol(argv[2]);
  char *content = malloc(bytes + 1);
  if (content == NULL) return die("malloc");
  for (size_t k = 0; k < bytes; k++) content[k] = (char)('a' + k % 26);
  content[bytes] = '\0';
  size_t cap = bytes + 512;
  char *body = malloc(cap);
  if (body == NULL) return die("malloc");
  int blen = snprintf(body, cap, "{\"model\":\"bench-judge\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", content);
  char head[256];
  int hlen = snprintf(head, sizeof head, "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", port, blen);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = { 10, 0 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[65536];
  for (long k = 0; k < n; k++) {
    double t0 = now_ms();
    if (send(fd, head, (size_t)hlen, MSG_NOSIGNAL) != hlen) return die("send");
    for (int off = 0; off < blen; ) {
      ssize_t w = send(fd, body + off, (size_t)(blen - off), MSG_NOSIGNAL);
      if (w <= 0) return die("send");
      off += (int)w;
    }
    size_t got = 0, want = 0;
    for (;;) {
      ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
      if (r <= 0) return die("recv");
      got += (size_t)r;
      buf[got] = '\0';
      char *end = strstr(buf, "\r\n\r\n");
      if (end && want == 0) {
        char *cl = strcasestr(buf, "Content-Length:");
        want = (size_t)(end - buf) + 4 + (cl ? strtoul(cl + 15, NULL, 10) : 0);
      }
      if (want && got >= want) break;
    }
    printf("%.3f\n", now_ms() - t0);
  }
  close(fd);
  free(body);
  free(content);
  return 0;
}

static int cmd_sqlite(int argc, char **argv) {
  if (argc < 2) return fprintf(stderr, "bench-tool sqlite: N PATH\n"), 2;
  long n = atol(argv[0]);
  sqlite3 *db = NULL;
  char *err = NULL;
  if (sqlite3_open(argv[1], &db) != SQLITE_OK) return fprintf(stderr, "bench-tool: %s\n", sqlite3_errmsg(db)), 1;
  sqlite3_busy_timeout(db, 10000);
  if (sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                       "CREATE TABLE IF NOT EXISTS rows(id INTEGER PRIMARY KEY, body TEXT)", NULL, NULL, &err) != SQLITE_OK)
    return fprintf(stderr, "bench-tool: %s\n", err), 1;
  char row[2048];
  memset(row, 'x', sizeof row - 1);
  row[sizeof row - 1] = '\0';
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "INSERT INTO rows(body) VALUES (?)", -1, &st, NULL) != SQLITE_OK)
    return fprintf(stderr, "bench-tool: %s\n", sqlite3_errmsg(db)), 1;
  for (long k = 0; k < n; k++) {
    double t0 = now_ms();
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    sqlite3_bind_text(st, 1, row, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    sqlite3_reset(st);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) return fprintf(stderr, "bench-tool: %s\n", sqlite3_errmsg(db)), 1;
    printf("%.3f\n", now_ms() - t0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "run") == 0) return cmd_run(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "http") == 0) return cmd_http(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "sqlite") == 0) return cmd_sqlite(argc - 2, argv + 2);
  fprintf(stderr, "usage: bench-tool run N [-C DIR] [-e NAME=VALUE]... -- PROGRAM ARG...\n"
                  "       bench-tool http N PORT BYTES\n"
                  "       bench-tool sqlite N PATH\n");
  return 2;
}
