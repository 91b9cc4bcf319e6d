/*
 * reader/errors.c - names and messages for the public codes of flagshm.h.
 * Static strings only: callers may keep the pointers forever.
 */
#include "flagshm.h"
#include "format.h"

FLAGSHM_API const char *flagshm_strerror(int err)
{
	switch (err) {
	case 0: return "success";
#define XX(name, value, msg) case FLAGSHM_##name: return msg;
	FLAGSHM_ERRNO_MAP(XX)
#undef XX
	}
	return "unknown error";
}

FLAGSHM_API const char *flagshm_err_name(int err)
{
	switch (err) {
	case 0: return "0";
#define XX(name, value, msg) case FLAGSHM_##name: return "FLAGSHM_" #name;
	FLAGSHM_ERRNO_MAP(XX)
#undef XX
	}
	return "unknown";
}

FLAGSHM_API const char *flagshm_version(void)
{
	return FLAGSHM_VERSION_STRING;
}

FLAGSHM_API unsigned flagshm_format_version(void)
{
	return FS_FORMAT_VERSION;
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

/* Always a static string, as the header promises: "NONE" for no error, and
 * "GENERAL" (OpenFeature's catch-all) for a value outside the enum. */
FLAGSHM_API const char *flagshm_error_code_name(flagshm_error_code c)
{
	switch (c) {
	case FLAGSHM_CODE_NONE: return "NONE";
	case FLAGSHM_CODE_STORE_UNAVAILABLE: return "STORE_UNAVAILABLE";
	case FLAGSHM_CODE_FLAG_NOT_FOUND: return "FLAG_NOT_FOUND";
	case FLAGSHM_CODE_TYPE_MISMATCH: return "TYPE_MISMATCH";
	case FLAGSHM_CODE_SNAPSHOT_INVALID: return "SNAPSHOT_INVALID";
	}
	return "GENERAL";
}
