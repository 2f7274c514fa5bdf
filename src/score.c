/* score.c — the confidence math of include/obra/score.h: validation, quality
 * and confidence of one iteration with their explanations.  Pure arithmetic
 * over sanitised inputs; docs/scoring.md states the same formula in words and
 * works examples through it (tests/score_spec.lua checks those examples). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "obra/score.h"

#define PARAM(f, d, doc) { #f, offsetof(obra_score_weights, f), d, doc }
const obra_score_param obra_score_params[] = {
  PARAM(checks,           0.50, "weight of the checks (their pass rate)"),
  PARAM(judge,            0.35, "weight of the LLM judge's verdict"),
  PARAM(agent,            0.15, "weight of the agent's outcome class"),
  PARAM(partial,          0.50, "outcome value of a run stopped at a limit (max_turns, budget); ok is 1"),
  PARAM(agent_trust,      0.50, "how far the agent's own success counts as evidence of being done"),
  PARAM(judge_incomplete, 0.50, "factor on the judge's quality when it says the work is incomplete"),
  PARAM(fail_cap,         0.50, "highest quality while any check fails"),
  PARAM(conflict,         0.50, "share of confidence lost when the judge says complete and a check fails"),
  PARAM(regression,       0.25, "share of confidence lost when a check got worse than before"),
  PARAM(degraded,         0.10, "share of confidence lost when there is no judge verdict"),
  PARAM(tamper_cap,       0.50, "highest quality while a protected path (tests, what the checks run) was changed"),
  PARAM(deletion,         0.20, "share of confidence lost when files present at the base were deleted unasked"),
};
#undef PARAM
const size_t obra_score_nparams = sizeof obra_score_params / sizeof obra_score_params[0];

#define FIRST_FACTOR 3   /* params from "partial" on are factors in [0,1] */

void obra_score_default_weights(obra_score_weights *w) {
  for (size_t i = 0; i < obra_score_nparams; i++)
    *(double *)((char *)w + obra_score_params[i].offset) = obra_score_params[i].def;
}

int obra_score_class_kind(const char *c) {
  if (c == NULL) return OBRA_SCORE_FAILED;
  if (strcmp(c, "ok") == 0) return OBRA_SCORE_OK;
  if (strcmp(c, "max_turns") == 0 || strcmp(c, "budget") == 0) return OBRA_SCORE_PARTIAL;
  return OBRA_SCORE_FAILED;
}

/* A probability-like input: NaN stays NaN (missing), the rest is clamped. */
static double unit(double v) {
  if (isnan(v)) return v;
  return v < 0 ? 0 : v > 1 ? 1 : v;
}
static double clamp01(double v) {
  if (!isfinite(v)) return v > 0 ? 1 : 0;   /* NaN and -inf: 0, +inf: 1 */
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

static obra_score_term *add(obra_score_term *t, int *n, const char *signal, const char *kind,
                            double value, double weight) {
  if (*n >= OBRA_SCORE_MAX_TERMS) return NULL;   /* cannot happen: at most 8 lines */
  obra_score_term *x = &t[(*n)++];
  x->signal = signal;
  x->kind = kind;
  x->value = value;
  x->weight = weight;
  x->detail[0] = '\0';
  return x;
}

/* Renormalise the raw weights of the terms in place; returns sum w*v / sum w,
 * or NaN when no present signal carries weight. */
static double mix(obra_score_term *t, int n) {
  double sw = 0, s = 0;
  for (int i = 0; i < n; i++)
    if (strcmp(t[i].kind, "term") == 0) sw += t[i].weight;
  if (!(sw > 0)) return NAN;
  for (int i = 0; i < n; i++)
    if (strcmp(t[i].kind, "term") == 0) {
      t[i].weight /= sw;
      s += t[i].weight * t[i].value;
    }
  return s;
}

static obra_rc check_weights(const obra_score_weights *w, obra_err *e) {
  for (size_t i = 0; i < obra_score_nparams; i++) {
    double v = *(const double *)((const char *)w + obra_score_params[i].offset);
    if (!isfinite(v) || v < 0)
      return obra_err_set(e, OBRA_EINVAL, "score weight '%s' must be a finite number >= 0",
                          obra_score_params[i].name);
    if (i >= FIRST_FACTOR && v > 1)
      return obra_err_set(e, OBRA_EINVAL, "score factor '%s' must lie in [0,1]",
                          obra_score_params[i].name);
  }
  return OBRA_OK;
}

static void validate(const obra_score_signals *s, int kind, obra_score_result *r) {
  const char *why = NULL;
  char buf[sizeof r->invalid_reason];
  int changed = s->have_workspace ? s->files_changed > 0 : -1;   /* -1: unknown */
  if (!s->have_agent) why = "no agent result";
  else if (kind == OBRA_SCORE_FAILED) {
    snprintf(buf, sizeof buf, "the agent run failed (%s)", s->agent_class ? s->agent_class : "no outcome class");
    why = buf;
  } else if (kind == OBRA_SCORE_PARTIAL && changed == 0) {
    if (s->max_turns > 0)
      snprintf(buf, sizeof buf, "the agent stopped at its %s limit (%ld of %ld turns) before changing any file",
               strcmp(s->agent_class, "budget") == 0 ? "budget" : "turn", s->turns, s->max_turns);
    else
      snprintf(buf, sizeof buf, "the agent stopped at its %s limit before changing any file",
               strcmp(s->agent_class, "budget") == 0 ? "budget" : "turn");
    why = buf;
  } else if (kind == OBRA_SCORE_OK && !s->agent_has_text && changed != 1)
    why = "the agent reported success but returned no text and changed no files";
  r->valid = why == NULL;
  snprintf(r->invalid_reason, sizeof r->invalid_reason, "%s", why ? why : "");
}

obra_rc obra_score_compute(const obra_score_signals *s, const obra_score_weights *w,
                           obra_score_result *r, obra_err *e) {
  obra_score_weights def;
  if (w == NULL) { obra_score_default_weights(&def); w = &def; }
  memset(r, 0, sizeof *r);
  if (check_weights(w, e) != OBRA_OK) return OBRA_EINVAL;

  int kind = s->have_agent ? obra_score_class_kind(s->agent_class) : OBRA_SCORE_FAILED;
  validate(s, kind, r);

  /* checks */
  int passed = 0, failed_before = 0;
  for (size_t i = 0; i < s->nchecks; i++) {
    if (s->checks[i].passed) passed++;
    else if (s->checks[i].passed_before == 1) failed_before++;
  }
  r->checks_passed = passed;
  r->checks_total = (int)s->nchecks;
  int any_failed = (size_t)passed < s->nchecks;
  double pass_rate = s->nchecks ? (double)passed / (double)s->nchecks : NAN;

  /* judge: usable when both numbers are there */
  double jq = unit(s->judge_quality), jc = unit(s->judge_confidence);
  int judge = s->have_judge && !isnan(jq) && !isnan(jc);
  r->degraded = !judge;
  r->conflict = judge && s->judge_complete && any_failed;
  double best = unit(s->best_pass_rate);
  r->regression = failed_before > 0 || (s->nchecks && !isnan(best) && pass_rate < best - 1e-9);

  /* the agent outcome */
  double outcome = !s->have_agent ? NAN : kind == OBRA_SCORE_OK ? 1.0
                 : kind == OBRA_SCORE_PARTIAL ? w->partial : 0.0;

  obra_score_term *t;
  /* quality */
  if (s->nchecks && (t = add(r->quality_terms, &r->nquality, "checks", "term", pass_rate, w->checks)))
    snprintf(t->detail, sizeof t->detail, "%d of %zu checks pass", passed, s->nchecks);
  if (judge && (t = add(r->quality_terms, &r->nquality, "judge", "term",
                        s->judge_complete ? jq : jq * w->judge_incomplete, w->judge)))
    snprintf(t->detail, sizeof t->detail, s->judge_complete ? "judge: quality %.2f, complete"
             : "judge: quality %.2f, incomplete (x judge_incomplete)", jq);
  if (!isnan(outcome) && (t = add(r->quality_terms, &r->nquality, "agent", "term", outcome, w->agent)))
    snprintf(t->detail, sizeof t->detail, "agent outcome %s", s->agent_class ? s->agent_class : "unknown");
  double q = mix(r->quality_terms, r->nquality);
  if (isnan(q)) q = 0;
  if (s->tampered > 0 && q > w->tamper_cap) {
    q = w->tamper_cap;
    if ((t = add(r->quality_terms, &r->nquality, "tamper", "cap", w->tamper_cap, 0)))
      snprintf(t->detail, sizeof t->detail, "%ld protected path(s) changed: quality at most %.2f",
               s->tampered, w->tamper_cap);
  }
  if (any_failed && q > w->fail_cap) {
    q = w->fail_cap;
    if ((t = add(r->quality_terms, &r->nquality, "fail_cap", "cap", w->fail_cap, 0)))
      snprintf(t->detail, sizeof t->detail, "%zu check(s) fail: quality at most %.2f",
               s->nchecks - (size_t)passed, w->fail_cap);
  }
  if (!r->valid) {
    q = 0;
    if ((t = add(r->quality_terms, &r->nquality, "validation", "cap", 0, 0)))
      snprintf(t->detail, sizeof t->detail, "no usable result");
  }
  r->quality = clamp01(q);

  /* confidence */
  if (s->nchecks && (t = add(r->confidence_terms, &r->nconfidence, "checks", "term", pass_rate, w->checks)))
    snprintf(t->detail, sizeof t->detail, "%d of %zu checks pass", passed, s->nchecks);
  if (judge && (t = add(r->confidence_terms, &r->nconfidence, "judge", "term",
                        s->judge_complete ? jc : 1 - jc, w->judge)))
    snprintf(t->detail, sizeof t->detail, "judge says %s with confidence %.2f",
             s->judge_complete ? "complete" : "incomplete", jc);
  if (!isnan(outcome) && (t = add(r->confidence_terms, &r->nconfidence, "agent", "term",
                                  outcome * w->agent_trust, w->agent)))
    snprintf(t->detail, sizeof t->detail, "agent outcome %s, trusted %.2f",
             s->agent_class ? s->agent_class : "unknown", w->agent_trust);
  double c = mix(r->confidence_terms, r->nconfidence);
  if (isnan(c)) c = 0;
  if (r->conflict && (t = add(r->confidence_terms, &r->nconfidence, "conflict", "factor", 1 - w->conflict, 0))) {
    c *= 1 - w->conflict;
    snprintf(t->detail, sizeof t->detail, "the judge says complete but %zu check(s) fail",
             s->nchecks - (size_t)passed);
  }
  if (r->regression && (t = add(r->confidence_terms, &r->nconfidence, "regression", "factor", 1 - w->regression, 0))) {
    c *= 1 - w->regression;
    if (failed_before)
      snprintf(t->detail, sizeof t->detail, "%d check(s) that passed before now fail", failed_before);
    else
      snprintf(t->detail, sizeof t->detail, "pass rate %.2f fell below the earlier %.2f", pass_rate, best);
  }
  if (s->unrequested_deletions > 0 &&
      (t = add(r->confidence_terms, &r->nconfidence, "deletion", "factor", 1 - w->deletion, 0))) {
    c *= 1 - w->deletion;
    snprintf(t->detail, sizeof t->detail, "%ld file(s) of the base deleted that the task does not name",
             s->unrequested_deletions);
  }
  if (r->degraded && (t = add(r->confidence_terms, &r->nconfidence, "degraded", "factor", 1 - w->degraded, 0))) {
    c *= 1 - w->degraded;
    snprintf(t->detail, sizeof t->detail, "%s", s->have_judge ? "the judge's verdict is unusable" : "no judge verdict");
  }
  if (!r->valid) {
    c = 0;
    if ((t = add(r->confidence_terms, &r->nconfidence, "validation", "cap", 0, 0)))
      snprintf(t->detail, sizeof t->detail, "no usable result");
  }
  r->confidence = clamp01(c);
  return OBRA_OK;
}
