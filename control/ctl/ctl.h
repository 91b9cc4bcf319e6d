/*
 * control/ctl/ctl.h - flagshm-ctl, the command line of flagshm-control
 * (docs/control.md, "flagshm-ctl"): the parsed command line, the HTTP
 * client that talks to the control plane and the commands.
 *
 * flagshm-ctl talks HTTP only: it uses the public API of the service, not
 * its code, so it may include nothing but include/ (and libcurl, jansson).
 *
 * Exit status: 0 ok, 1 refused or conflict (any answer that is not a
 * success, the network, a bad answer), 2 usage, 3 authentication (401,
 * 403, an unreadable token file).
 */
#ifndef FLAGSHM_CTL_H
#define FLAGSHM_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum { CTL_OK = 0, CTL_REFUSED = 1, CTL_USAGE = 2, CTL_AUTH = 3 };

/* The largest answer read from a server (an exported document can be as
 * large as a writer accepts one: 64 MiB), and the largest file sent. */
#define CTL_MAX_BODY (64u << 20)

typedef struct ctl_opts {
	const char *url;	/* --url or $FLAGSHM_URL, trailing '/' kept out */
	const char *token_file; /* --token-file or $FLAGSHM_TOKEN_FILE */
	const char *reason;	/* --reason */
	long long if_version;	/* --if-version, -1: not given */
	const char *rule;	/* percent --rule ID */
	const char *since;	/* audit --since T */
	long limit;		/* audit --limit N, 0: the server's default */
	bool json;		/* --json */
	const char *pos[4];	/* the command's operands after its name(s) */
	int npos;
} ctl_opts;

/* One answer of the server. BODY is NUL-terminated (LEN without it). */
typedef struct ctl_reply {
	long status;
	char *body;
	size_t len;
	char etag[80];
	char request_id[80];
} ctl_reply;

typedef struct ctl_client ctl_client;

/* A client for O->url with O's token (read from the token file; NULL
 * when none is given: requests go without Authorization and the server
 * answers 401). NULL with a message on stderr and *STATUS set (3 for an
 * unreadable token, 1 otherwise). */
ctl_client *ctl_client_new(const ctl_opts *o, int *status);
void ctl_client_free(ctl_client *c);

/* METHOD PATH (already escaped) with an optional JSON BODY (NULL: none)
 * and extra HEADERS (NULL-terminated, may be NULL). The reason of O, when
 * set, goes as X-Flagshm-Reason. 0 with *R filled (free with
 * ctl_reply_free), or -1 after printing why (network, an answer too
 * large). */
int ctl_request(ctl_client *c, const char *method, const char *path, const char *body,
		const char *const *headers, ctl_reply *r);
void ctl_reply_free(ctl_reply *r);

/* Escape S for a path segment; free with ctl_free. */
char *ctl_escape(ctl_client *c, const char *s);
void ctl_free(void *p);

/* The exit status for a non-success answer, after printing the server's
 * error (its code, message and details, control characters escaped) on
 * stderr, prefixed by WHAT. */
int ctl_fail(const char *what, const ctl_reply *r);

/* Parse R's body as JSON (an object or array); NULL after a message. */
json_t *ctl_reply_json(const ctl_reply *r, const char *what);

/* METHOD PATH with BODY (or NULL) answered with status WANT: its JSON in
 * *OUT and CTL_OK; otherwise the exit status, the failure said (ctl_fail,
 * ctl_reply_json), *OUT NULL. */
int ctl_call_json(ctl_client *c, const char *method, const char *path, const char *body,
		  long want, const char *what, json_t **out);

/* Print S to F with control characters and DEL written as \xNN, at most
 * MAX bytes (then "..."): text from a server is not trusted. */
void ctl_put_safe(FILE *f, const char *s, size_t max);

/* Read FILE ("-": stdin) as one JSON value, at most CTL_MAX_BODY bytes; NULL
 * after "FILE:LINE:COL: message" on stderr. */
json_t *ctl_read_json(const char *file);

/* Print V: --json compact on one line, else indented. */
void ctl_print_json(const ctl_opts *o, const json_t *v);
/* --json for a change without a body: {FIELD: NAME[, FLAG: true]}. */
void ctl_print_done(const ctl_opts *o, const char *field, const char *name, const char *flag);

/* The commands (flags.c, admin.c): the exit status. */
int ctl_cmd_list(ctl_client *c, const ctl_opts *o);
int ctl_cmd_get(ctl_client *c, const ctl_opts *o, bool segment);
int ctl_cmd_set(ctl_client *c, const ctl_opts *o, bool segment);
int ctl_cmd_delete(ctl_client *c, const ctl_opts *o, bool segment);
/* enable, disable, percent: FIELD "enabled" with VALUE, or a percentage. */
int ctl_cmd_edit(ctl_client *c, const ctl_opts *o, const char *cmd);
int ctl_cmd_import(ctl_client *c, const ctl_opts *o);
int ctl_cmd_export(ctl_client *c, const ctl_opts *o);
int ctl_cmd_audit(ctl_client *c, const ctl_opts *o);
int ctl_cmd_token(ctl_client *c, const ctl_opts *o, const char *sub);
int ctl_cmd_bust(ctl_client *c, const ctl_opts *o);

#endif
