/*
 * shm/format.c - the tables that describe shm/format.h, shared by the
 * compiler that writes snapshots and the readers that check and print them.
 */
#include "format.h"
#include "flagshm.h"

_Static_assert(FS_FORMAT_VERSION == FLAGSHM_FORMAT_VERSION,
	       "include/flagshm.h and shm/format.h name the same snapshot format");

const size_t fs_table_recsize[FS_T_COUNT_] = {
	[FS_T_FLAGS] = sizeof(fs_flag),	      [FS_T_INDEX] = sizeof(uint32_t),
	[FS_T_SEGMENTS] = sizeof(fs_segment), [FS_T_RULES] = sizeof(fs_rule),
	[FS_T_CONDS] = sizeof(fs_cond),	      [FS_T_VALUES] = sizeof(fs_value),
	[FS_T_SPLITS] = sizeof(fs_split),     [FS_T_PREREQS] = sizeof(fs_prereq),
	[FS_T_SEMVERS] = sizeof(fs_semver),   [FS_T_REGEXES] = sizeof(fs_regex),
	[FS_T_U32] = sizeof(uint32_t),	      [FS_T_STRS] = sizeof(fs_str),
	[FS_T_POOL] = 1,
};

const char *const fs_op_names[FS_OP_MAX_] = {
	[FS_OP_EQUALS] = "equals",
	[FS_OP_NOT_EQUALS] = "notEquals",
	[FS_OP_IN] = "in",
	[FS_OP_NOT_IN] = "notIn",
	[FS_OP_CONTAINS] = "contains",
	[FS_OP_NOT_CONTAINS] = "notContains",
	[FS_OP_STARTS_WITH] = "startsWith",
	[FS_OP_ENDS_WITH] = "endsWith",
	[FS_OP_MATCHES] = "matches",
	[FS_OP_GT] = "greaterThan",
	[FS_OP_GTE] = "greaterThanOrEqual",
	[FS_OP_LT] = "lessThan",
	[FS_OP_LTE] = "lessThanOrEqual",
	[FS_OP_SEMVER_EQ] = "semverEqual",
	[FS_OP_SEMVER_GT] = "semverGreaterThan",
	[FS_OP_SEMVER_LT] = "semverLessThan",
	[FS_OP_BEFORE] = "before",
	[FS_OP_AFTER] = "after",
};
