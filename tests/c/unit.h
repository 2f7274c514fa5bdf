/* unit.h — obra's own tiny assertion harness for the C unit tests
 * (the files of tests/c, built by `make unit` into build/tests/unit).
 *
 * A case is a function run by unit_run(name, fn, arg); it fails at its
 * first failed CHECK (which returns from the case function).  Every case
 * prints one line: "ok NAME" or "not ok NAME: file:line: what".  The last
 * line is "N cases, N failed"; the exit status is 1 when any failed.
 * tests/c_units_spec.lua turns each line into one busted test. */
#ifndef OBRA_UNIT_H
#define OBRA_UNIT_H
#include <stddef.h>
#include <stdint.h>

typedef void (*unit_fn)(const void *arg);

void unit_run(const char *name, unit_fn fn, const void *arg);
/* Record the failure of the running case (the first one counts). */
void unit_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A whole file under tests/ (OBRA_ROOT or the working directory), malloc'd
 * and NUL-terminated, or NULL. */
char *unit_read(const char *rel, size_t *len);

#define CHECK(c) do { if (!(c)) { unit_fail(__FILE__, __LINE__, "%s", #c); return; } } while (0)
#define CHECK_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
  if (a_ != b_) { unit_fail(__FILE__, __LINE__, "%s is %lld, expected %lld", #a, a_, b_); return; } } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
  if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) { \
    unit_fail(__FILE__, __LINE__, "%s is \"%.200s\", expected \"%.200s\"", #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
    return; } } while (0)
#define CHECK_NUM(a, b) do { double a_ = (a), b_ = (b); \
  if (a_ != b_) { unit_fail(__FILE__, __LINE__, "%s is %.17g, expected %.17g", #a, a_, b_); return; } } while (0)

/* The groups (one per file). */
void http1_tests(void);
void agent_tests(void);
void reset_time_tests(void);
void llm_outcome_tests(void);
void llm_json_tests(void);
void redact_tests(void);
void packfile_tests(void);
void objlog_tests(void);
void textpack_tests(void);
void treescan_tests(void);
void jsonbuf_tests(void);

#endif
