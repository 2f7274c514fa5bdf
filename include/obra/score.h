/* score.h — the confidence math: from the signals of one iteration (agent
 * result, checks, workspace change, judge verdict, history) to validation,
 * quality and confidence, each with the per-signal contributions that explain
 * it.  Pure C, no Lua, no I/O; every input is sanitised (NaN, out of range)
 * and every output is a finite number in [0,1].  The formula, its defaults
 * and worked examples are in docs/scoring.md; keep the two in step.
 *
 * In short, over the signals that are present (weights renormalised):
 *   quality    = sum w_i * q_i / sum w_i     q: check pass rate, judge quality
 *                                               (halved if it says incomplete),
 *                                               agent outcome (1 ok, partial)
 *   confidence = sum w_i * c_i / sum w_i     c: check pass rate, the judge's
 *                                               probability that the work is
 *                                               complete, outcome * agent_trust
 * then caps and factors that no weight can outvote:
 *   invalid result            -> quality 0 and confidence 0
 *   any check fails           -> quality <= fail_cap
 *   judge complete + a check fails (conflict) -> confidence *= 1 - conflict
 *   a check that passed before fails, or the pass rate fell below the best
 *   earlier one (regression)  -> confidence *= 1 - regression
 *   a protected path changed (tamper) -> quality <= tamper_cap
 *   base files deleted that the task does not name -> confidence *= 1 - deletion
 *   no judge verdict (degraded) -> confidence *= 1 - degraded */
#ifndef OBRA_SCORE_H
#define OBRA_SCORE_H
#include <stddef.h>
#include "obra/status.h"

/* One check result.  passed_before: 1 passed in an earlier iteration, 0 did
 * not, -1 unknown. */
typedef struct {
  int passed;
  int passed_before;
} obra_score_check;

/* The signals of one iteration.  Strings are borrowed for the call. */
typedef struct {
  int         have_agent;
  const char *agent_class;     /* ok, max_turns, budget, rate_limited, ... (NULL: unknown) */
  int         agent_has_text;  /* the final text holds more than white space */
  long        turns, max_turns;            /* 0: unknown */

  const obra_score_check *checks;          /* may be NULL when nchecks == 0 */
  size_t      nchecks;

  int         have_workspace;
  long        files_changed;               /* created + modified + deleted */

  int         have_judge;                  /* a verdict table was given */
  int         judge_complete;
  double      judge_quality, judge_confidence;   /* NaN: missing (verdict unusable) */

  double      best_pass_rate;              /* best earlier check pass rate, NaN: none */

  long        tampered;                    /* protected paths changed (signals.tamper.paths) */
  long        unrequested_deletions;       /* base files deleted the task does not name */
} obra_score_signals;

/* Weights and factors; all finite and >= 0, all but the first three in [0,1]. */
typedef struct {
  double checks, judge, agent;   /* how much each signal counts (renormalised) */
  double partial;                /* outcome value of max_turns/budget (ok = 1) */
  double agent_trust;            /* how far an agent's own success counts as evidence */
  double judge_incomplete;       /* factor on judge quality when it says incomplete */
  double fail_cap;               /* highest quality while any check fails */
  double conflict;               /* share of confidence lost on judge/check conflict */
  double regression;             /* share of confidence lost on a regression */
  double degraded;               /* share of confidence lost without a judge verdict */
  double tamper_cap;             /* highest quality while a protected path was changed */
  double deletion;               /* share of confidence lost on unrequested deletions */
} obra_score_weights;

/* Field names and defaults, in documentation order, for bridges and docs. */
typedef struct { const char *name; size_t offset; double def; const char *doc; } obra_score_param;
extern const obra_score_param obra_score_params[];
extern const size_t obra_score_nparams;

void obra_score_default_weights(obra_score_weights *w);

/* One line of an explanation.  kind: "term" (value * weight, weight already
 * renormalised), "cap" (the score is at most value) or "factor" (the score is
 * multiplied by value). */
#define OBRA_SCORE_MAX_TERMS 10
typedef struct {
  const char *signal;   /* static string: checks, judge, agent, validation, fail_cap, ... */
  const char *kind;     /* static string: term, cap, factor */
  double      value;
  double      weight;   /* terms only; 0 otherwise */
  char        detail[96];
} obra_score_term;

typedef struct {
  int    valid;
  char   invalid_reason[160];   /* "" when valid */
  double quality, confidence;   /* always finite, in [0,1] */
  int    degraded;              /* no usable judge verdict */
  int    conflict;              /* the judge says complete and a check fails */
  int    regression;            /* a check got worse than before */
  int    checks_passed, checks_total;
  obra_score_term quality_terms[OBRA_SCORE_MAX_TERMS];
  int    nquality;
  obra_score_term confidence_terms[OBRA_SCORE_MAX_TERMS];
  int    nconfidence;
} obra_score_result;

/* Compute *out from s with weights w (NULL: the defaults).  Returns OBRA_OK, or
 * OBRA_EINVAL with a message when a weight is negative, not finite, or a
 * factor lies outside [0,1].  Signals are never an error. */
obra_rc obra_score_compute(const obra_score_signals *s, const obra_score_weights *w,
                           obra_score_result *out, obra_err *e);

/* How an agent outcome class counts: OK ("ok"), PARTIAL ("max_turns",
 * "budget": stopped at a limit, the work so far may be usable) or FAILED
 * (every other class, and NULL). */
int obra_score_class_kind(const char *agent_class);
#define OBRA_SCORE_OK      1
#define OBRA_SCORE_PARTIAL 2
#define OBRA_SCORE_FAILED  0

#endif
