/*
 * reader/errors.c - names and messages for the public codes of flagshm.h.
 * Static strings only: callers may keep the pointers forever.
 */
#include "flagshm.h"

FLAGSHM_API const char *flagshm_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case FLAGSHM_EINVAL: return "invalid argument";
	case FLAGSHM_ENAME: return "invalid store name (1-64 of [A-Za-z0-9_-])";
	case FLAGSHM_ENOSTORE: return "no such store";
	case FLAGSHM_ECORRUPT: return "shared memory failed validation";
	case FLAGSHM_ESYS: return "system call failed";
	case FLAGSHM_ENOMEM: return "out of memory";
	case FLAGSHM_EBUSY: return "another writer holds the store";
	case FLAGSHM_EUNAVAIL: return "nothing published in the store";
	case FLAGSHM_EFULL: return "context is full";
	case FLAGSHM_ENOTFOUND: return "flag not found";
	case FLAGSHM_EUNTRUSTED: return "store object not owned by a trusted writer user";
	}
	return "unknown error";
}

FLAGSHM_API const char *flagshm_reason_name(flagshm_reason r)
{
	switch (r) {
	case FLAGSHM_REASON_ERROR: return "ERROR";
	case FLAGSHM_REASON_DISABLED: return "DISABLED";
	case FLAGSHM_REASON_PREREQUISITE_FAILED: return "PREREQUISITE_FAILED";
	case FLAGSHM_REASON_RULE_MATCH: return "RULE_MATCH";
	case FLAGSHM_REASON_SPLIT: return "SPLIT";
	case FLAGSHM_REASON_DEFAULT_ROLLOUT: return "DEFAULT_ROLLOUT";
	case FLAGSHM_REASON_DEFAULT_OFF: return "DEFAULT_OFF";
	}
	/* A value outside the enum came from a caller's bug or stale memory:
	 * it still prints as something a log reader understands. */
	return "ERROR";
}

/* NULL for NONE, so that printers can write JSON null without a special case
 * beyond the NULL check. */
FLAGSHM_API const char *flagshm_error_code_name(flagshm_error_code c)
{
	switch (c) {
	case FLAGSHM_CODE_NONE: return NULL;
	case FLAGSHM_CODE_STORE_UNAVAILABLE: return "STORE_UNAVAILABLE";
	case FLAGSHM_CODE_FLAG_NOT_FOUND: return "FLAG_NOT_FOUND";
	case FLAGSHM_CODE_TYPE_MISMATCH: return "TYPE_MISMATCH";
	case FLAGSHM_CODE_SNAPSHOT_INVALID: return "SNAPSHOT_INVALID";
	}
	return NULL;
}
