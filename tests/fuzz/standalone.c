/* standalone.c — a main for the fuzz targets without libFuzzer: feeds
 * every file of the directories (or files) given to LLVMFuzzerTestOneInput,
 * one at a time.  Built with gcc and the sanitizers for `make test`
 * (tests/c_units_spec.lua), so every crash input kept in
 * tests/fuzz/regress/<target>/ is replayed by the suite.  Prints
 * "ran N inputs" and exits 0; a crash ends it as the sanitizer decides. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) { perror(path); return -1; }
  size_t cap = 1 << 16, n = 0, r;
  uint8_t *buf = malloc(cap);
  while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      uint8_t *nb = realloc(buf, cap * 2);
      if (nb == NULL) { free(buf); buf = NULL; break; }
      buf = nb; cap *= 2;
    }
  }
  fclose(f);
  if (buf == NULL) return -1;
  /* an exact-size copy, so reading past the input is caught */
  uint8_t *exact = malloc(n ? n : 1);
  if (exact == NULL) { free(buf); return -1; }
  memcpy(exact, buf, n);
  free(buf);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  int count = 0, bad = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) { perror(argv[i]); bad = 1; continue; }
    if (!S_ISDIR(st.st_mode)) { bad |= run_file(argv[i]) != 0; count++; continue; }
    DIR *d = opendir(argv[i]);
    if (d == NULL) { perror(argv[i]); bad = 1; continue; }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.') continue;
      char **nn = realloc(names, (n + 1) * sizeof *nn);
      if (nn == NULL) break;
      names = nn;
      names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    for (size_t k = 0; k < n; k++) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], names[k]);
      if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) { bad |= run_file(path) != 0; count++; }
      free(names[k]);
    }
    free(names);
  }
  printf("ran %d inputs\n", count);
  return bad;
}
