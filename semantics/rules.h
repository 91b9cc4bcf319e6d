/*
 * semantics/rules.h - the small rules the compiler (writer/compile) and the
 * evaluator (reader/) must apply identically, written once
 * (docs/semantics.md): ASCII case folding, the order of an in-list, and the
 * prerequisite limits. A compiler that folded or sorted one way and an
 * evaluator that searched another would miss matches silently.
 */
#ifndef FLAGSHM_SEMANTICS_RULES_H
#define FLAGSHM_SEMANTICS_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Prerequisite links in one chain: deeper evaluates as PREREQUISITE_FAILED
 * and does not compile. */
#define SEM_PREREQ_DEPTH_MAX 32
/* Prerequisite evaluations of one flag over every path (a diamond counts
 * each path): more evaluates as PREREQUISITE_FAILED and does not compile. */
#define SEM_PREREQ_VISITS_MAX 1024

/* caseInsensitive folds ASCII only: 'A'..'Z' to 'a'..'z', every other byte
 * (UTF-8 included) as it is. The compiler stores folded operands; the
 * evaluator folds the context's side. */
static inline unsigned char sem_fold(unsigned char c)
{
	return (unsigned)c - 'A' < 26u ? (unsigned char)(c | 0x20) : c;
}

/* Fold LEN bytes of S into D (which may be S). */
static inline void sem_fold_copy(char *d, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		d[i] = (char)sem_fold((unsigned char)s[i]);
}

/* The order of the strings of an in-list: bytewise, a proper prefix first.
 * With FOLD, A is folded on the fly (B, from the snapshot, is folded
 * already). The compiler sorts with it and the evaluator binary-searches
 * with it. */
static inline int sem_cmp_bytes(const char *a, size_t na, const char *b, size_t nb, bool fold)
{
	size_t n = na < nb ? na : nb;
	if (!fold) {
		int r = memcmp(a, b, n);
		if (r)
			return r;
	} else {
		for (size_t i = 0; i < n; i++) {
			int d = (int)sem_fold((unsigned char)a[i]) - (int)(unsigned char)b[i];
			if (d)
				return d;
		}
	}
	return (na > nb) - (na < nb);
}

/* The order of numbers in an in-list (after all strings): ascending. */
static inline int sem_cmp_num(double a, double b)
{
	return (a > b) - (a < b);
}

#endif
