/*
 * tests/test_hostile_shm.c - hostile shared memory through the real store
 * path: crafted snapshots and control objects, read-only mappings, modes,
 * store names.
 *
 * Each test takes a store with the writer's own shm_writer_open, publishes
 * a good generation, then plants a crafted generation object the way a
 * broken or hostile writer would (create /dev/shm/flagshm.S.G, write bytes,
 * release-store G into the control object) and checks what readers do:
 *  - a snapshot that fails validation (magic, version, header size, layout,
 *    size, checksum, generation, tables outside or misaligned, a bad index,
 *    a prerequisite cycle, a regex outside the pool) is refused with a log
 *    line naming the check, the last good generation keeps serving, and a
 *    reader with nothing good gets ERROR / STORE_UNAVAILABLE;
 *  - a snapshot that validates but has a damaged record (an index, a
 *    string, a value, an operator) gives ERROR / SNAPSHOT_INVALID for the
 *    flags that reach it, and correct answers for the others;
 *  - nothing crashes, and nothing spins: every evaluation is timed.
 * Also: garbage control objects, store names that try to escape, and the
 * mappings a reader gets are read-only (a write faults, mprotect refuses).
 */
#include "rel_helpers.h"
#include "snap.h"
#include "inspect.h"

#include <setjmp.h>
#include <stdatomic.h>
#include <grp.h>
#include <sys/mman.h>

static char store[64];
static shm_writer wr;
static flagshm_store *reader;
static char logbuf[8][512];
static int nlog;

static void log_cb(void *ud, const char *msg)
{
	(void)ud;
	if (nlog < 8)
		snprintf(logbuf[nlog++], sizeof logbuf[0], "%s", msg);
}

static bool logged(const char *want)
{
	for (int i = 0; i < nlog; i++)
		if (strstr(logbuf[i], want))
			return true;
	return false;
}

static const char *all_logs(void)
{
	static char all[8 * 520];
	all[0] = '\0';
	for (int i = 0; i < nlog; i++) {
		strcat(all, logbuf[i]);
		strcat(all, "\n");
	}
	return all;
}

/*
 * The good document: flags with a rule (a condition and a segment), a
 * split, a prerequisite, a regex, a semver condition and a string value,
 * so that every kind of record exists to be damaged.
 */
static const char good_doc[] =
	"{\"formatVersion\":1,"
	"\"segments\":{\"beta\":{\"included\":[\"u-1\",\"u-2\"]}},"
	"\"flags\":["
	"{\"key\":\"base\",\"defaultValue\":true},"
	"{\"key\":\"str\",\"defaultValue\":\"hello\",\"offValue\":\"off\"},"
	"{\"key\":\"rule\",\"defaultValue\":false,\"targeting\":[{\"id\":\"de\",\"variation\":true,"
	"\"conditions\":[{\"attribute\":\"country\",\"operator\":\"equals\",\"value\":\"DE\"}],"
	"\"segments\":[\"beta\"]}]},"
	"{\"key\":\"split\",\"defaultValue\":\"x\",\"offValue\":\"off\",\"targeting\":[{\"id\":\"ab\","
	"\"split\":[{\"value\":\"a\",\"weight\":50},{\"value\":\"b\",\"weight\":50}]}]},"
	"{\"key\":\"pre\",\"defaultValue\":true,\"prerequisites\":[{\"key\":\"base\",\"value\":true}]},"
	"{\"key\":\"re\",\"defaultValue\":false,\"targeting\":[{\"id\":\"m\",\"variation\":true,"
	"\"conditions\":[{\"attribute\":\"email\",\"operator\":\"matches\",\"value\":\"(a+)+$\"}]}]},"
	"{\"key\":\"ver\",\"defaultValue\":false,\"targeting\":[{\"id\":\"v\",\"variation\":true,"
	"\"conditions\":[{\"attribute\":\"app\",\"operator\":\"semverGreaterThan\","
	"\"value\":\"1.2.3\"}]}]}"
	"]}";

/* A compiled snapshot to damage: bytes (8-byte aligned) and accessors. */
typedef struct craft {
	uint8_t *b;
	size_t size;
} craft;

static fs_snap_hdr *H(craft *c)
{
	return (fs_snap_hdr *)c->b;
}

static void *tab(craft *c, int t)
{
	return c->b + H(c)->sh_tables[t].t_off;
}

static const char *pool_str(craft *c, fs_str s)
{
	return (const char *)tab(c, FS_T_POOL) + s.off;
}

static fs_flag *flag_of(craft *c, const char *key)
{
	fs_flag *f = tab(c, FS_T_FLAGS);
	for (uint32_t i = 0; i < H(c)->sh_tables[FS_T_FLAGS].t_count; i++)
		if (f[i].f_key.len == strlen(key) && memcmp(pool_str(c, f[i].f_key), key, f[i].f_key.len) == 0)
			return &f[i];
	cr_assert_fail("no flag %s in the good snapshot", key);
	return NULL;
}

static uint32_t flag_index(craft *c, const char *key)
{
	return (uint32_t)(flag_of(c, key) - (fs_flag *)tab(c, FS_T_FLAGS));
}

static fs_rule *rule_of(craft *c, const char *key)
{
	fs_flag *f = flag_of(c, key);
	cr_assert_gt(f->f_rule_count, 0);
	return (fs_rule *)tab(c, FS_T_RULES) + f->f_rule_first;
}

static fs_cond *cond_of(craft *c, const char *key)
{
	fs_rule *r = rule_of(c, key);
	cr_assert_gt(r->r_cond_count, 0);
	return (fs_cond *)tab(c, FS_T_CONDS) + r->r_cond_first;
}

static void craft_good(craft *c)
{
	wc_snapshot s;
	rh_compile(good_doc, &s);
	c->b = s.bytes; /* malloc: aligned for any type */
	c->size = s.size;
}

static void fix_checksum(craft *c)
{
	H(c)->sh_checksum = fs_checksum(c->b + FS_SNAP_SUMMED_FROM, c->size - FS_SNAP_SUMMED_FROM);
}

/* Create generation GEN's object with LEN bytes of P and make it current,
 * as a writer would, but without any of the writer's checks. */
static void plant(uint64_t gen, const void *p, size_t len)
{
	char name[SHM_OBJ_NAME_MAX];
	shm_snap_name(name, sizeof name, store, gen);
	shm_unlink(name);
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0444);
	cr_assert(fd >= 0, "shm_open %s: %s", name, strerror(errno));
	cr_assert_eq(ftruncate(fd, (off_t)len), 0);
	if (len)
		cr_assert_eq(pwrite(fd, p, len, 0), (ssize_t)len);
	close(fd);
	atomic_store_explicit(&wr.ctl->ctl_generation, gen, memory_order_release);
	wr.generation = gen;
}

/* Plant C as generation 2 (its header says 2, unless DONT_STAMP). */
static void plant_craft(craft *c, bool stamp)
{
	if (stamp)
		H(c)->sh_generation = 2;
	plant(2, c->b, c->size);
}

static void setup(void)
{
	char err[512];
	craft c;
	rh_name(store, sizeof store, "hshm");
	cr_assert_eq(shm_writer_open(&wr, store, err, sizeof err), 0, "%s", err);
	craft_good(&c);
	cr_assert_eq(shm_writer_publish(&wr, c.b, c.size, err, sizeof err), 0, "%s", err);
	free(c.b);
	nlog = 0;
	cr_assert_eq(flagshm_open_ex(store, log_cb, NULL, &reader, err, sizeof err), 0, "%s", err);
	/* Map generation 1 now: the reader has something good to keep. */
	cr_assert_eq(flagshm_bool(reader, "base", NULL, false), true);
}

static void teardown(void)
{
	flagshm_close(&reader);
	shm_writer_close(&wr);
	shm_store_remove(store, NULL, 0);
}

TestSuite(hostile_shm, .init = setup, .fini = teardown, .timeout = 30);

/* Evaluate KEY (context CTX) in a fresh view, timed: no evaluation may
 * take more than 100 ms, whatever the bytes. */
static flagshm_result eval_timed(flagshm_store *s, const char *key, const flagshm_ctx *ctx)
{
	flagshm_view v;
	flagshm_result r;
	flagshm_view_acquire(s, &v);
	int64_t t0 = rh_cpu_us();
	flagshm_evaluate(&v, key, ctx, &r);
	int64_t us = rh_cpu_us() - t0;
	flagshm_view_release(&v);
	cr_expect_lt(us, 100000, "evaluating %s took %lld us of CPU", key, (long long)us);
	return r;
}

/*
 * Generation 2 must be refused with a log line containing WHY: the reader
 * that has generation 1 keeps serving it, and a reader opened now, with
 * nothing good to serve, answers ERROR / STORE_UNAVAILABLE and logs too.
 */
static void expect_refused(const char *why)
{
	for (int i = 0; i < 100; i++) {
		flagshm_result r = eval_timed(reader, "str", NULL);
		cr_assert_eq(r.reason, FLAGSHM_REASON_DEFAULT_ROLLOUT, "evaluation %d: %s", i,
			     flagshm_reason_name(r.reason));
		cr_assert_eq(r.generation, 1);
		cr_assert_str_eq(r.value.str.ptr, "hello");
	}
	cr_expect(logged("generation 2 refused") && logged(why) && logged("still serving 1"),
		  "expected a log line with '%s', got:\n%s", why, all_logs());
	/* Refused once, not on every call: one line. */
	cr_expect_eq(nlog, 1, "%d log lines:\n%s", nlog, all_logs());

	flagshm_store *fresh;
	char err[256];
	nlog = 0;
	cr_assert_eq(flagshm_open_ex(store, log_cb, NULL, &fresh, err, sizeof err), 0, "%s", err);
	for (int i = 0; i < 100; i++) {
		flagshm_result r = eval_timed(fresh, "str", NULL);
		cr_assert_eq(r.reason, FLAGSHM_REASON_ERROR);
		cr_assert_eq(r.error_code, FLAGSHM_CODE_STORE_UNAVAILABLE, "code %s",
			     flagshm_error_code_name(r.error_code));
	}
	cr_expect(flagshm_bool(fresh, "base", NULL, false) == false, "no fallback from a refused store");
	flagshm_info info;
	cr_expect_eq(flagshm_store_info(fresh, &info), FLAGSHM_EUNAVAIL);
	cr_expect(logged(why) && logged("nothing to serve"), "fresh reader logged:\n%s", all_logs());
	flagshm_close(&fresh);
}

/* Generation 2 validates, but evaluating KEY (with CTX) reaches a damaged
 * record: ERROR / SNAPSHOT_INVALID, while "base" still answers. */
static void expect_snapshot_invalid(const char *key, const flagshm_ctx *ctx)
{
	for (int i = 0; i < 100; i++) {
		flagshm_result r = eval_timed(reader, key, ctx);
		cr_assert_eq(r.generation, 2, "generation %llu", (unsigned long long)r.generation);
		cr_assert_eq(r.reason, FLAGSHM_REASON_ERROR, "%s: reason %s", key,
			     flagshm_reason_name(r.reason));
		cr_assert_eq(r.error_code, FLAGSHM_CODE_SNAPSHOT_INVALID, "%s: code %s", key,
			     flagshm_error_code_name(r.error_code));
		cr_assert_null(r.value.str.ptr);
	}
	flagshm_result r = eval_timed(reader, "base", NULL);
	cr_expect_eq(r.reason, FLAGSHM_REASON_DEFAULT_ROLLOUT);
	cr_expect_eq(r.generation, 2);
	cr_expect(flagshm_bool(reader, key, ctx, true) == true, "the typed call gave no fallback");
}

/* ------------------------------------------------------- header checks */

Test(hostile_shm, wrong_magic)
{
	craft c;
	craft_good(&c);
	H(&c)->sh_magic = 0xdeadbeef;
	plant_craft(&c, true);
	expect_refused("bad magic 0xdeadbeef (expected 0x4d485346)");
	free(c.b);
}

Test(hostile_shm, wrong_format_version)
{
	craft c;
	craft_good(&c);
	H(&c)->sh_version = 2;
	plant_craft(&c, true);
	expect_refused("format version 2 (this reader reads 1)");
	free(c.b);
}

Test(hostile_shm, wrong_header_size)
{
	craft c;
	craft_good(&c);
	H(&c)->sh_hdr_size = 8;
	plant_craft(&c, true);
	expect_refused("header size 8 (expected");
	free(c.b);
}

Test(hostile_shm, wrong_layout_fingerprint)
{
	craft c;
	craft_good(&c);
	H(&c)->sh_fingerprint ^= 1;
	plant_craft(&c, true);
	expect_refused("built with another record layout");
	free(c.b);
}

Test(hostile_shm, size_field_larger_than_the_object)
{
	craft c;
	craft_good(&c);
	H(&c)->sh_size = c.size + 4096;
	plant_craft(&c, true);
	expect_refused("but the object has");
	free(c.b);
}

Test(hostile_shm, object_larger_than_the_size_field)
{
	craft c;
	craft_good(&c);
	uint8_t *big = calloc(1, c.size + 4096);
	cr_assert_not_null(big);
	H(&c)->sh_generation = 2;
	memcpy(big, c.b, c.size);
	plant(2, big, c.size + 4096);
	expect_refused("but the object has");
	free(big);
	free(c.b);
}

/* What a reader checks before use does not depend on the snapshot's size;
 * the checksum is the writer's (before a publish) and the tool's
 * (flagshm_view_verify) to check. Only the writer's user can change an
 * object a reader maps (tests/test_trust.c), so a changed byte that breaks
 * no bounds check is served; the tool refuses it. */
Test(hostile_shm, bad_checksum_is_found_by_verify_not_at_map)
{
	craft c;
	craft_good(&c);
	c.b[c.size - 1] ^= 0x40; /* a byte of the string pool */
	plant_craft(&c, true);
	flagshm_result r = eval_timed(reader, "base", NULL);
	cr_expect_eq(r.generation, 2);
	cr_expect_eq(r.reason, FLAGSHM_REASON_DEFAULT_ROLLOUT);
	flagshm_view v;
	char err[256] = "";
	flagshm_view_acquire(reader, &v);
	cr_expect_eq(flagshm_view_verify(&v, err, sizeof err), FLAGSHM_ECORRUPT);
	cr_expect(strstr(err, "checksum 0x"), "verify: %s", err);
	flagshm_view_release(&v);
	free(c.b);
}

Test(hostile_shm, header_names_another_generation)
{
	craft c;
	craft_good(&c);
	H(&c)->sh_generation = 7; /* outside the checksum: only this check catches it */
	plant_craft(&c, false);
	expect_refused("its header says generation 7");
	free(c.b);
}

Test(hostile_shm, object_smaller_than_a_header)
{
	plant(2, "FSHM", 4);
	expect_refused("4 bytes: not a snapshot");
}

Test(hostile_shm, empty_object)
{
	plant(2, "", 0);
	expect_refused("0 bytes: not a snapshot");
}

Test(hostile_shm, generation_object_missing)
{
	/* ctl_generation names an object that does not exist: the reader
	 * retries a few times, then refuses; it does not loop. */
	atomic_store_explicit(&wr.ctl->ctl_generation, 2, memory_order_release);
	expect_refused("is gone (the writer has moved on)");
}

Test(hostile_shm, generation_object_unreadable_garbage)
{
	uint8_t junk[4096];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)(i * 131 + 7);
	plant(2, junk, sizeof junk);
	expect_refused("bad magic");
}

/* -------------------------------------------------------- table checks */

Test(hostile_shm, table_offset_outside_the_snapshot)
{
	craft c;
	craft_good(&c);
	H(&c)->sh_tables[FS_T_RULES].t_off = (uint32_t)((c.size + 4096) & ~(size_t)7);
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_refused("rules table [");
	free(c.b);
}

Test(hostile_shm, table_count_overflows)
{
	craft c;
	craft_good(&c);
	H(&c)->sh_tables[FS_T_CONDS].t_count = UINT32_MAX;
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_refused("conditions table [");
	free(c.b);
}

Test(hostile_shm, table_inside_the_header)
{
	craft c;
	craft_good(&c);
	H(&c)->sh_tables[FS_T_VALUES].t_off = 8;
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_refused("values table [8,");
	free(c.b);
}

Test(hostile_shm, table_misaligned)
{
	craft c;
	craft_good(&c);
	H(&c)->sh_tables[FS_T_FLAGS].t_off += 4;
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_refused("flags table offset");
	free(c.b);
}

Test(hostile_shm, pool_size_past_the_end)
{
	craft c;
	craft_good(&c);
	H(&c)->sh_tables[FS_T_POOL].t_count += 64;
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_refused("string pool table [");
	free(c.b);
}

Test(hostile_shm, index_not_a_power_of_two)
{
	craft c;
	craft_good(&c);
	cr_assert_gt(H(&c)->sh_tables[FS_T_INDEX].t_count, 2);
	H(&c)->sh_tables[FS_T_INDEX].t_count -= 1;
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_refused("not a power of two");
	free(c.b);
}

Test(hostile_shm, index_slot_past_the_flags)
{
	craft c;
	craft_good(&c);
	uint32_t *idx = tab(&c, FS_T_INDEX);
	uint32_t was = idx[0];
	idx[0] = 1000000;
	fix_checksum(&c);
	plant_craft(&c, true);
	/* A lookup that meets the slot skips it (the accessor's bounds
	 * check): every key answers, or is not found, nothing else. */
	static const char *const keys[] = { "base", "str", "rule", "split", "pre", "re", "ver" };
	int found = 0;
	for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
		flagshm_result r = eval_timed(reader, keys[k], NULL);
		cr_expect_eq(r.generation, 2);
		cr_expect(r.error_code == FLAGSHM_CODE_NONE ||
				  r.error_code == FLAGSHM_CODE_FLAG_NOT_FOUND,
			  "%s: %s", keys[k], flagshm_error_code_name(r.error_code));
		found += r.error_code == FLAGSHM_CODE_NONE;
	}
	cr_expect_geq(found, was ? 6 : 7, "only the key of the damaged slot may be lost");
	flagshm_view v;
	char err[256] = "";
	flagshm_view_acquire(reader, &v);
	cr_expect_eq(flagshm_view_verify(&v, err, sizeof err), FLAGSHM_ECORRUPT);
	cr_expect(strstr(err, "index slot 0 holds flag 999999"), "verify: %s", err);
	flagshm_view_release(&v);
	free(c.b);
}

Test(hostile_shm, environment_name_outside_the_pool)
{
	craft c;
	craft_good(&c);
	H(&c)->sh_environment = (fs_str){ .off = 0xfffffff0u, .len = 8 };
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_refused("environment name at");
	free(c.b);
}

Test(hostile_shm, prerequisite_cycle_in_bytes)
{
	craft c;
	craft_good(&c);
	fs_flag *pre = flag_of(&c, "pre");
	fs_prereq *p = (fs_prereq *)tab(&c, FS_T_PREREQS) + pre->f_prereq_first;
	p->pq_flag = flag_index(&c, "pre"); /* pre needs itself */
	fix_checksum(&c);
	plant_craft(&c, true);
	/* Checked on the flag's first evaluation in the map: that flag is
	 * SNAPSHOT_INVALID, the others are not affected. */
	expect_snapshot_invalid("pre", NULL);
	flagshm_view v;
	char err[256] = "";
	flagshm_view_acquire(reader, &v);
	cr_expect_eq(flagshm_view_verify(&v, err, sizeof err), FLAGSHM_ECORRUPT);
	cr_expect(strstr(err, "form a cycle"), "verify: %s", err);
	flagshm_view_release(&v);
	free(c.b);
}

Test(hostile_shm, regex_pattern_outside_the_pool)
{
	craft c;
	craft_good(&c);
	cr_assert_eq(H(&c)->sh_tables[FS_T_REGEXES].t_count, 1);
	fs_regex *rx = tab(&c, FS_T_REGEXES);
	rx->rx_pattern.off = H(&c)->sh_tables[FS_T_POOL].t_count - 2;
	rx->rx_pattern.len = 100;
	fix_checksum(&c);
	plant_craft(&c, true);
	/* Compiled on first use: the flag that reaches it is SNAPSHOT_INVALID. */
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "email", "aaaa");
	expect_snapshot_invalid("re", &ctx);
	flagshm_view v;
	char err[256] = "";
	flagshm_view_acquire(reader, &v);
	cr_expect_eq(flagshm_view_verify(&v, err, sizeof err), FLAGSHM_ECORRUPT);
	cr_expect(strstr(err, "regex 0: pattern at"), "verify: %s", err);
	flagshm_view_release(&v);
	free(c.b);
}

/* ------------------------------------------------ damaged records (lazy) */

Test(hostile_shm, index_full_and_no_key_matches)
{
	/* Every slot holds a flag, and every flag's stored hash is wrong: a
	 * lookup probes each slot once and ends with FLAG_NOT_FOUND. */
	craft c;
	craft_good(&c);
	uint32_t n = H(&c)->sh_tables[FS_T_INDEX].t_count;
	uint32_t *idx = tab(&c, FS_T_INDEX);
	for (uint32_t i = 0; i < n; i++)
		idx[i] = 1 + i % H(&c)->sh_tables[FS_T_FLAGS].t_count;
	fs_flag *f = tab(&c, FS_T_FLAGS);
	for (uint32_t i = 0; i < H(&c)->sh_tables[FS_T_FLAGS].t_count; i++)
		f[i].f_key_hash ^= 0x5a5a5a5a;
	fix_checksum(&c);
	plant_craft(&c, true);
	static const char *const keys[] = { "base", "str", "nope", "" };
	for (int k = 0; k < 4; k++) {
		for (int i = 0; i < 1000; i++) {
			flagshm_result r = eval_timed(reader, keys[k], NULL);
			cr_assert_eq(r.reason, FLAGSHM_REASON_ERROR);
			cr_assert_eq(r.error_code, FLAGSHM_CODE_FLAG_NOT_FOUND, "%s: %s", keys[k],
				     flagshm_error_code_name(r.error_code));
			cr_assert_eq(r.generation, 2);
		}
	}
	free(c.b);
}

Test(hostile_shm, index_every_slot_the_same_flag)
{
	/* A full index whose slots all name flag 0: its key is found, any
	 * other key probes every slot and is not found. */
	craft c;
	craft_good(&c);
	uint32_t n = H(&c)->sh_tables[FS_T_INDEX].t_count;
	uint32_t *idx = tab(&c, FS_T_INDEX);
	for (uint32_t i = 0; i < n; i++)
		idx[i] = 1;
	fix_checksum(&c);
	plant_craft(&c, true);
	const fs_flag *f0 = tab(&c, FS_T_FLAGS);
	char key0[64];
	snprintf(key0, sizeof key0, "%.*s", (int)f0->f_key.len, pool_str(&c, f0->f_key));
	flagshm_result r = eval_timed(reader, key0, NULL);
	cr_expect_neq(r.reason, FLAGSHM_REASON_ERROR, "%s: %s", key0,
		      flagshm_error_code_name(r.error_code));
	r = eval_timed(reader, strcmp(key0, "str") ? "str" : "base", NULL);
	cr_expect_eq(r.error_code, FLAGSHM_CODE_FLAG_NOT_FOUND);
	free(c.b);
}

Test(hostile_shm, value_string_outside_the_pool)
{
	craft c;
	craft_good(&c);
	fs_flag *f = flag_of(&c, "str");
	fs_value *v = (fs_value *)tab(&c, FS_T_VALUES) + f->f_default;
	v->v_str.off = 0x7ffffff0u;
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_snapshot_invalid("str", NULL);
	free(c.b);
}

Test(hostile_shm, value_string_without_its_nul)
{
	craft c;
	craft_good(&c);
	fs_flag *f = flag_of(&c, "str");
	fs_value *v = (fs_value *)tab(&c, FS_T_VALUES) + f->f_default;
	((char *)tab(&c, FS_T_POOL))[v->v_str.off + v->v_str.len] = 'X';
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_snapshot_invalid("str", NULL);
	free(c.b);
}

Test(hostile_shm, default_value_index_past_the_table)
{
	craft c;
	craft_good(&c);
	flag_of(&c, "str")->f_default = FS_NONE;
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_snapshot_invalid("str", NULL);
	free(c.b);
}

Test(hostile_shm, value_of_another_type)
{
	craft c;
	craft_good(&c);
	fs_flag *f = flag_of(&c, "str");
	fs_value *v = (fs_value *)tab(&c, FS_T_VALUES) + f->f_default;
	v->v_type = FS_V_NUMBER; /* a string flag serving a number */
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_snapshot_invalid("str", NULL);
	free(c.b);
}

Test(hostile_shm, value_of_an_unknown_type)
{
	craft c;
	craft_good(&c);
	fs_flag *f = flag_of(&c, "str");
	f->f_vtype = 99;
	((fs_value *)tab(&c, FS_T_VALUES) + f->f_default)->v_type = 99;
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_snapshot_invalid("str", NULL);
	free(c.b);
}

Test(hostile_shm, rule_range_past_the_table)
{
	craft c;
	craft_good(&c);
	fs_flag *f = flag_of(&c, "rule");
	f->f_rule_first = UINT32_MAX - 1;
	f->f_rule_count = 4; /* first + count wraps around in 32 bits */
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_snapshot_invalid("rule", NULL);
	free(c.b);
}

Test(hostile_shm, condition_range_past_the_table)
{
	craft c;
	craft_good(&c);
	rule_of(&c, "rule")->r_cond_count = 1u << 30;
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_snapshot_invalid("rule", NULL);
	free(c.b);
}

Test(hostile_shm, condition_attribute_outside_the_pool)
{
	craft c;
	craft_good(&c);
	cond_of(&c, "rule")->c_attr.len = 0x7fffffffu;
	fix_checksum(&c);
	plant_craft(&c, true);
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "country", "DE");
	expect_snapshot_invalid("rule", &ctx);
	free(c.b);
}

Test(hostile_shm, condition_operator_unknown)
{
	craft c;
	craft_good(&c);
	cond_of(&c, "rule")->c_op = 200;
	fix_checksum(&c);
	plant_craft(&c, true);
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "country", "DE");
	expect_snapshot_invalid("rule", &ctx);
	free(c.b);
}

Test(hostile_shm, semver_index_past_the_table)
{
	craft c;
	craft_good(&c);
	cond_of(&c, "ver")->c_aux = 12345;
	fix_checksum(&c);
	plant_craft(&c, true);
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "app", "2.0.0");
	expect_snapshot_invalid("ver", &ctx);
	free(c.b);
}

Test(hostile_shm, segment_index_past_the_table)
{
	craft c;
	craft_good(&c);
	fs_rule *r = rule_of(&c, "rule");
	cr_assert_eq(r->r_seg_count, 1);
	((uint32_t *)tab(&c, FS_T_U32))[r->r_seg_first] = 777;
	fix_checksum(&c);
	plant_craft(&c, true);
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "country", "DE");
	flagshm_ctx_string(&ctx, "userId", "u-1");
	expect_snapshot_invalid("rule", &ctx);
	free(c.b);
}

Test(hostile_shm, split_bands_that_do_not_cover_every_bucket)
{
	craft c;
	craft_good(&c);
	fs_rule *r = rule_of(&c, "split");
	fs_split *sp = (fs_split *)tab(&c, FS_T_SPLITS) + r->r_split_first;
	for (uint32_t i = 0; i < r->r_split_count; i++)
		sp[i].sp_upper = 0;
	fix_checksum(&c);
	plant_craft(&c, true);
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "userId", "u-42");
	expect_snapshot_invalid("split", &ctx);
	free(c.b);
}

Test(hostile_shm, prerequisite_flag_past_the_table)
{
	craft c;
	craft_good(&c);
	fs_flag *pre = flag_of(&c, "pre");
	((fs_prereq *)tab(&c, FS_T_PREREQS) + pre->f_prereq_first)->pq_flag = 99999;
	fix_checksum(&c);
	plant_craft(&c, true);
	expect_snapshot_invalid("pre", NULL);
	free(c.b);
}

Test(hostile_shm, regex_pattern_changed_to_an_invalid_one)
{
	/* The writer validated every pattern; bytes that no longer compile
	 * make the condition never match (no crash, no error for the flag). */
	craft c;
	craft_good(&c);
	fs_regex *rx = tab(&c, FS_T_REGEXES);
	char *pat = (char *)tab(&c, FS_T_POOL) + rx->rx_pattern.off;
	memset(pat, '(', rx->rx_pattern.len);
	fix_checksum(&c);
	plant_craft(&c, true);
	flagshm_ctx ctx;
	flagshm_ctx_init(&ctx);
	flagshm_ctx_string(&ctx, "email", "aaaa");
	flagshm_result r = eval_timed(reader, "re", &ctx);
	cr_expect_eq(r.generation, 2);
	cr_expect_eq(r.reason, FLAGSHM_REASON_DEFAULT_ROLLOUT, "reason %s",
		     flagshm_reason_name(r.reason));
	cr_expect_eq(r.value.b, false);
	free(c.b);
}

/* ------------------------------------------------ the control object */

/* Create control object /flagshm.NAME with LEN bytes of P. */
static void plant_ctl(const char *name, const void *p, size_t len)
{
	char obj[SHM_OBJ_NAME_MAX];
	shm_ctl_name(obj, sizeof obj, name);
	shm_unlink(obj);
	int fd = shm_open(obj, O_RDWR | O_CREAT | O_EXCL, 0644);
	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, (off_t)len), 0);
	if (len)
		cr_assert_eq(pwrite(fd, p, len, 0), (ssize_t)len);
	close(fd);
}

static void expect_ctl_refused(const char *name, int want_rc, const char *want)
{
	flagshm_store *s = NULL;
	char err[512] = "";
	/* Strict: without it a store "being created" is attached to later. */
	flagshm_store_options o = { .size = sizeof o, .log = log_cb, .flags = FLAGSHM_OPEN_STRICT };
	int rc = flagshm_store_open(name, &o, &s, err, sizeof err);
	cr_expect_eq(rc, want_rc, "flagshm_open: %d (%s), expected %d", rc, flagshm_strerror(rc),
		     want_rc);
	cr_expect_null(s);
	cr_expect(strstr(err, want) != NULL, "the message '%s' does not say '%s'", err, want);
	/* The writer refuses to take it over too, and says how to fix it. */
	shm_writer w;
	char werr[512] = "";
	rc = shm_writer_open(&w, name, werr, sizeof werr);
	if (want_rc == FLAGSHM_ECORRUPT) {
		cr_expect_eq(rc, FLAGSHM_ECORRUPT, "shm_writer_open: %d (%s)", rc, werr);
		cr_expect(strstr(werr, "--remove") != NULL, "%s", werr);
	} else if (rc == 0) {
		shm_writer_close(&w);
	}
	shm_store_remove(name, NULL, 0); /* the control object and the lock object */
}

Test(hostile_shm, control_object_of_garbage)
{
	char name[64];
	uint8_t junk[512];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)(0xa5 ^ i);
	rh_name(name, sizeof name, "hctlg");
	plant_ctl(name, junk, sizeof junk);
	expect_ctl_refused(name, FLAGSHM_ECORRUPT, "is not a flagshm control object of this version");
}

Test(hostile_shm, control_object_of_another_version)
{
	char name[64];
	fs_ctl c;
	memset(&c, 0, sizeof c);
	c.ctl_magic = FS_CTL_MAGIC;
	c.ctl_version = 9;
	c.ctl_size = sizeof c;
	c.ctl_fingerprint = SHM_CTL_FINGERPRINT;
	rh_name(name, sizeof name, "hctlv");
	plant_ctl(name, &c, sizeof c);
	expect_ctl_refused(name, FLAGSHM_ECORRUPT, "version 9");
}

Test(hostile_shm, control_object_too_small)
{
	char name[64];
	rh_name(name, sizeof name, "hctls");
	plant_ctl(name, "FSTL", 4);
	expect_ctl_refused(name, FLAGSHM_ECORRUPT, "4 bytes, a control object is 512");
}

Test(hostile_shm, control_object_too_large)
{
	char name[64];
	uint8_t big[8192] = { 0 };
	rh_name(name, sizeof name, "hctll");
	plant_ctl(name, big, sizeof big);
	/* A reader maps only the control object's size of it and finds no
	 * magic: "being created". The writer refuses the size. */
	expect_ctl_refused(name, FLAGSHM_ENOSTORE, "being created");
}

Test(hostile_shm, control_generation_far_ahead)
{
	/* A hostile ctl_generation: refused (object missing), no loop, and the
	 * good generation keeps serving. */
	atomic_store_explicit(&wr.ctl->ctl_generation, UINT64_MAX, memory_order_release);
	for (int i = 0; i < 100; i++) {
		flagshm_result r = eval_timed(reader, "str", NULL);
		cr_assert_eq(r.generation, 1);
	}
	cr_expect(logged("generation 18446744073709551615 refused"), "%s", all_logs());
}

/* --------------------------------------------------------- store names */

Test(hostile_shm, store_names_that_try_to_escape)
{
	char longname[301];
	memset(longname, 'a', 300);
	longname[300] = '\0';
	static const char *const bad[] = { "../x", "/", "a/b", "..", ".", "a.b", "", " x",
					   "x\n", "caf\xc3\xa9", "a*", "flagshm.x" };
	const char *names[sizeof bad / sizeof *bad + 2];
	size_t n = 0;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		names[n++] = bad[i];
	names[n++] = longname;
	names[n++] = longname + 300 - 65; /* 65 characters: one too many */
	for (size_t i = 0; i < n; i++) {
		flagshm_store *s = NULL;
		char err[256] = "";
		int rc = flagshm_open_ex(names[i], NULL, NULL, &s, err, sizeof err);
		cr_expect_eq(rc, FLAGSHM_ENAME, "flagshm_open('%s'): %d", names[i], rc);
		cr_expect(err[0] != '\0', "no message for '%s'", names[i]);
		cr_expect(strchr(err, '\n') == NULL, "a message of two lines: %s", err);
		shm_writer w;
		rc = shm_writer_open(&w, names[i], err, sizeof err);
		cr_expect_eq(rc, FLAGSHM_ENAME, "shm_writer_open('%s'): %d", names[i], rc);
	}
	/* 64 characters is the longest name. */
	char err[256];
	cr_expect_eq(shm_name_check(longname + 300 - 64, err, sizeof err), 0, "%s", err);
	/* The writer's command line refuses them too (usage error, 2). */
	const char *writer = rh_bin("FLAGSHM_WRITER");
	char out[4096];
	char *argv[] = { (char *)writer, "--store", "../etc", "--source", "/dev/null", "--once",
			 NULL };
	int rc = rh_run(argv, out, sizeof out, 10000);
	cr_expect_eq(rc, 2, "exit %d: %s", rc, out);
	cr_expect(strstr(out, "store name '../etc' has '.' at position 0") != NULL, "%s", out);
}

/* ----------------------------------------------- mappings are read-only */

static sigjmp_buf fault_jmp;

static void on_fault(int sig)
{
	siglongjmp(fault_jmp, sig);
}

/* Write one byte at P: returns the signal it raised, 0 if it did not. */
static int try_write(volatile uint8_t *p)
{
	struct sigaction sa, old_segv, old_bus;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_fault;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
	int sig = sigsetjmp(fault_jmp, 1);
	if (sig == 0) {
		*p = (uint8_t)(*p ^ 0xff);
		sig = 0;
	}
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	return sig;
}

Test(hostile_shm, reader_mappings_are_read_only)
{
	flagshm_view v;
	flagshm_view_acquire(reader, &v);
	cr_assert_not_null(v.snap);
	const snap *sn = v.snap;
	uint8_t *base = (uint8_t *)sn->base;
	size_t size = sn->size;
	uint8_t before = base[0];

	/* A store through the snapshot mapping faults... */
	cr_expect_eq(try_write(base), SIGSEGV, "a reader wrote into its snapshot mapping");
	cr_expect_eq(try_write(base + size - 1), SIGSEGV);
	cr_expect_eq(base[0], before);
	/* ...and the mapping cannot be made writable: the object was opened
	 * read-only. */
	uintptr_t page = (uintptr_t)base & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);
	errno = 0;
	cr_expect_eq(mprotect((void *)page, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE),
		     -1, "mprotect made a reader's snapshot writable");
	cr_expect_eq(errno, EACCES, "mprotect: %s", strerror(errno));
	flagshm_view_release(&v);

	/* The control object's mapping is read-only too. */
	const fs_ctl *ctl;
	cr_assert_eq(shm_ctl_map(store, &ctl, NULL, 0), 0);
	cr_expect_eq(try_write((volatile uint8_t *)&ctl->ctl_generation), SIGSEGV,
		     "a reader wrote into the control object");
	shm_ctl_unmap(ctl);

	/* And the objects' modes: snapshots 0444, control 0644 (umask aside). */
	char path[160];
	struct stat st;
	snprintf(path, sizeof path, "/dev/shm/flagshm.%s.1", store);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0222, 0, "a snapshot object is writable: %o", st.st_mode & 0777);
	snprintf(path, sizeof path, "/dev/shm/flagshm.%s", store);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0022, 0, "the control object is writable by others: %o",
		     st.st_mode & 0777);
	/* Readers still get the right answers afterwards. */
	cr_expect_eq(flagshm_bool(reader, "base", NULL, false), true);
}

/* ------------------------------------------------- users and groups */

/* In a child running as uid/gid 65534 (nobody): open STORE read-only and
 * evaluate; try to open its objects for writing. Exit code: 10 + the
 * flagshm_open error (negated), or a bitmask: 1 opened O_RDWR the control
 * object, 2 opened a snapshot O_RDWR, 4 evaluation wrong. */
static int as_nobody(const char *name)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
			_exit(99);
		flagshm_store *s;
		int rc = flagshm_open(name, &s);
		if (rc) /* 10 + the code's place in the table (-30901 is 1) */
			_exit(10 + (-30900 - rc));
		int bad = 0;
		char obj[SHM_OBJ_NAME_MAX];
		shm_ctl_name(obj, sizeof obj, name);
		int fd = shm_open(obj, O_RDWR, 0);
		if (fd >= 0)
			bad |= 1, close(fd);
		shm_snap_name(obj, sizeof obj, name, 1);
		fd = shm_open(obj, O_RDWR, 0);
		if (fd >= 0)
			bad |= 2, close(fd);
		if (flagshm_bool(s, "base", NULL, false) != true)
			bad |= 4;
		flagshm_close(&s);
		_exit(bad);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(hostile_shm, another_user_reads_but_cannot_write)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to switch to another user");
	int rc = as_nobody(store);
	cr_expect_eq(rc, 0, "as nobody: %d (1: control writable, 2: snapshot writable, "
			    "4: wrong answer, 1x: flagshm_open failed)", rc);
}

Test(hostile_shm, umask_027_keeps_other_users_out)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to switch to another user");
	char name[64], err[512];
	rh_name(name, sizeof name, "humask");
	mode_t old = umask(027);
	shm_writer w;
	craft c;
	craft_good(&c);
	int rc = shm_writer_open(&w, name, err, sizeof err);
	if (rc == 0)
		rc = shm_writer_publish(&w, c.b, c.size, err, sizeof err);
	umask(old);
	free(c.b);
	cr_assert_eq(rc, 0, "%s", err);
	char path[160];
	struct stat st;
	snprintf(path, sizeof path, "/dev/shm/flagshm.%s", name);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0640, "control object mode %o", st.st_mode & 0777);
	snprintf(path, sizeof path, "/dev/shm/flagshm.%s.1", name);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0440, "snapshot mode %o", st.st_mode & 0777);
	/* nobody is not in root's group: flagshm_open fails with ESYS. */
	rc = as_nobody(name);
	cr_expect_eq(rc, 10 + (-30900 - FLAGSHM_ESYS), "as nobody: %d, expected flagshm_open to "
		     "fail with FLAGSHM_ESYS (%d)", rc, 10 + (-30900 - FLAGSHM_ESYS));
	shm_writer_close(&w);
	shm_store_remove(name, NULL, 0);
}

/* ------------------------------------ the flagshm tool on hostile bytes */

#include <sys/resource.h>

/* Run `flagshm --store STORE CMD [ARG]`, output (stdout and stderr) in OUT;
 * returns the exit status and the tool's peak RSS in *MAXRSS_KB. */
static int run_tool(const char *cmd, const char *arg, char *out, size_t n, long *maxrss_kb)
{
	char *argv[] = {(char *)rh_bin("FLAGSHM_TOOL"), "--store", store, (char *)cmd,
			(char *)arg, NULL};
	int fd = -1, st = 0;
	pid_t pid = rh_spawn(argv, &fd);
	cr_assert(pid > 0, "cannot start %s", argv[0]);
	bool done = rh_drain(fd, out, n, 60000);
	close(fd);
	if (!done)
		kill(pid, SIGKILL);
	struct rusage ru;
	cr_assert_eq(wait4(pid, &st, 0, &ru), pid);
	if (maxrss_kb)
		*maxrss_kb = ru.ru_maxrss;
	cr_assert(done, "flagshm %s did not finish within 60 s", cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void expect_no_raw_controls(const char *what, const char *out)
{
	for (const unsigned char *p = (const unsigned char *)out; *p; p++)
		cr_assert(*p >= 0x20 || *p == '\n',
			  "flagshm %s printed a raw 0x%02x:\n%s", what, *p, out);
	cr_expect_null(strstr(out, "runtime error"), "UBSan in flagshm %s:\n%s", what, out);
}

/* A key and an environment name with terminal escapes
 * are shown escaped by status and list; dump stays valid JSON without a raw
 * control character. */
Test(hostile_shm, a_key_with_terminal_escapes_is_escaped_by_list_status_and_dump)
{
	static char out[65536];
	craft c;
	craft_good(&c);
	fs_flag *f = flag_of(&c, "str");
	char *k = (char *)pool_str(&c, f->f_key);
	k[1] = '\x1b'; /* "str" becomes "s ESC r" */
	H(&c)->sh_environment = f->f_key;
	fix_checksum(&c);
	plant_craft(&c, true);
	free(c.b);

	cr_expect_eq(run_tool("list", NULL, out, sizeof out, NULL), 0, "%s", out);
	expect_no_raw_controls("list", out);
	cr_expect(strstr(out, "s\\x1br "), "list:\n%s", out);
	cr_expect_eq(run_tool("status", NULL, out, sizeof out, NULL), 0, "%s", out);
	expect_no_raw_controls("status", out);
	cr_expect(strstr(out, "environment  s\\x1br\n"), "status:\n%s", out);
	cr_expect_eq(run_tool("dump", NULL, out, sizeof out, NULL), 0, "%s", out);
	expect_no_raw_controls("dump", out);
	json_error_t je;
	json_t *doc = json_loads(out, 0, &je);
	cr_expect_not_null(doc, "the dump is not JSON: %s:\n%s", je.text, out);
	cr_expect(strstr(out, "\"s\\u001br\""), "dump:\n%s", out);
	json_decref(doc);
}

/* A compiled document of N small flags ("f0".."fN-1", each with one
 * condition) and flag "big": a 60,000-character string value and an `in`
 * list of LIST ids. */
static void craft_many(craft *c, unsigned n, unsigned list)
{
	size_t cap = (size_t)n * 200 + (size_t)list * 16 + 70000, o = 0;
	char *doc = malloc(cap);
	cr_assert_not_null(doc);
	o += (size_t)snprintf(doc + o, cap - o, "{\"formatVersion\":1,\"flags\":[{\"key\":\"big\","
			      "\"defaultValue\":\"");
	memset(doc + o, 'x', 60000);
	o += 60000;
	o += (size_t)snprintf(doc + o, cap - o, "\",\"offValue\":\"\",\"targeting\":[{\"id\":\"r\","
			      "\"variation\":\"\",\"conditions\":[{\"attribute\":\"id\","
			      "\"operator\":\"in\",\"value\":[");
	for (unsigned i = 0; i < list; i++)
		o += (size_t)snprintf(doc + o, cap - o, "%s\"u%u\"", i ? "," : "", i);
	o += (size_t)snprintf(doc + o, cap - o, "]}]}]}");
	for (unsigned i = 0; i < n; i++)
		o += (size_t)snprintf(doc + o, cap - o, ",{\"key\":\"f%u\",\"defaultValue\":true,"
				      "\"targeting\":[{\"id\":\"r\",\"variation\":false,\"conditions\":"
				      "[{\"attribute\":\"a\",\"operator\":\"equals\",\"value\":\"x\"}]}]}", i);
	o += (size_t)snprintf(doc + o, cap - o, "]}");
	cr_assert_lt(o, cap);
	wc_snapshot s;
	wc_limits lim = wc_limits_default();
	lim.max_flags = n + 1;
	wc_errors errs = {0};
	int rc = rh_try_compile(doc, o, &lim, &s, &errs);
	for (size_t i = 0; i < errs.n && i < 5; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	wc_errors_free(&errs);
	free(doc);
	cr_assert_eq(rc, 0, "the test document does not compile");
	c->b = s.bytes;
	c->size = s.size;
}

/* Every flag's key is the one 60 KB string, every
 * condition's operand the one list of 50,000 ids. Unbounded, `list` would
 * print 1.2 GB and `dump` build a tree of several GB; both now refuse with
 * a message, their memory a small multiple of the snapshot's size. */
Test(hostile_shm, dump_and_list_of_records_sharing_one_large_string_or_list_are_refused,
     .timeout = 120)
{
	static char out[65536];
	craft c;
	craft_many(&c, 20000, 50000);
	fs_flag *big = flag_of(&c, "big");
	fs_str big_str = ((fs_value *)tab(&c, FS_T_VALUES))[big->f_default].v_str;
	const fs_rule *br = &((fs_rule *)tab(&c, FS_T_RULES))[big->f_rule_first];
	uint32_t list = ((fs_cond *)tab(&c, FS_T_CONDS))[br->r_cond_first].c_value;
	fs_flag *f = tab(&c, FS_T_FLAGS);
	fs_cond *cond = tab(&c, FS_T_CONDS);
	for (uint32_t i = 0; i < H(&c)->sh_tables[FS_T_FLAGS].t_count; i++)
		f[i].f_key = big_str;
	for (uint32_t i = 0; i < H(&c)->sh_tables[FS_T_CONDS].t_count; i++)
		cond[i].c_value = list;
	size_t size = c.size;
	fix_checksum(&c);
	plant_craft(&c, true);
	free(c.b);

	long rss_kb = 0;
	int rc = run_tool("list", NULL, out, sizeof out, &rss_kb);
	cr_expect_eq(rc, 1, "list exited %d:\n%.2000s", rc, out);
	cr_expect(strstr(out, "share key bytes"), "list said:\n%.2000s", out);
	cr_expect_lt(rss_kb, 256 * 1024, "list used %ld KB for a %zu-byte snapshot", rss_kb, size);
	long list_kb = rss_kb;
	rc = run_tool("dump", NULL, out, sizeof out, &rss_kb);
	cr_expect_eq(rc, 1, "dump exited %d:\n%.2000s", rc, out);
	cr_expect(strstr(out, "records share data"), "dump said:\n%.2000s", out);
	/* The budget (16 x snapshot + 64 MiB) is counted in JSON-tree bytes;
	 * the process's peak stays within a small multiple of it. */
	uint64_t budget = 16 * (uint64_t)size + (64u << 20);
	cr_expect_lt((uint64_t)rss_kb * 1024, 4 * budget + (64u << 20),
		     "dump used %ld KB for a %zu-byte snapshot", rss_kb, size);
	fprintf(stderr, "FIGURE shared-record snapshot of %zu bytes: list refused at %ld KB, "
		"dump at %ld KB peak RSS\n", size, list_kb, rss_kb);
}

/* Times from a hostile snapshot and control object
 * (INT64_MIN, INT64_MAX) print without a signed overflow, and a generation
 * above INT64_MAX prints as the unsigned number it is. */
Test(hostile_shm, status_and_eval_print_hostile_times_and_huge_generations_correctly)
{
	static char out[65536];
	const uint64_t gen = (uint64_t)INT64_MAX + 7;
	craft c;
	craft_good(&c);
	H(&c)->sh_published_ms = INT64_MIN;
	H(&c)->sh_generation = gen;
	fix_checksum(&c);
	plant(gen, c.b, c.size);
	free(c.b);
	atomic_store(&wr.ctl->ctl_heartbeat_ms, INT64_MIN);
	atomic_store(&wr.ctl->ctl_last_sync_ms, INT64_MIN);
	atomic_store(&wr.ctl->ctl_stale_after_ms, INT64_MAX);
	atomic_store(&wr.ctl->ctl_published_ms, INT64_MIN);

	cr_expect_eq(run_tool("status", NULL, out, sizeof out, NULL), 0, "%s", out);
	expect_no_raw_controls("status", out);
	cr_expect(strstr(out, "generation   9223372036854775814\n"), "status:\n%s", out);
	cr_expect_null(strstr(out, "-9223372036854775"), "a negative number in status:\n%s", out);
	cr_expect_eq(run_tool("eval", "str", out, sizeof out, NULL), 0, "%s", out);
	expect_no_raw_controls("eval", out);
	cr_expect(strstr(out, "\"generation\":9223372036854775814,"), "eval:\n%s", out);

	atomic_store(&wr.ctl->ctl_heartbeat_ms, INT64_MAX);
	atomic_store(&wr.ctl->ctl_last_sync_ms, INT64_MAX);
	cr_expect_eq(run_tool("status", NULL, out, sizeof out, NULL), 0, "%s", out);
	expect_no_raw_controls("status", out);
	cr_expect_null(strstr(out, "-9223372036854775"), "a negative number in status:\n%s", out);
}

/* The library's log line about a refused snapshot
 * names the flag; a key with ESC reaches the application's callback
 * escaped. */
Test(hostile_shm, a_log_line_naming_a_key_with_escapes_has_no_raw_control)
{
	craft c;
	craft_good(&c);
	fs_flag *pre = flag_of(&c, "pre");
	fs_prereq *p = (fs_prereq *)tab(&c, FS_T_PREREQS) + pre->f_prereq_first;
	p->pq_flag = flag_index(&c, "pre");
	((char *)pool_str(&c, pre->f_key))[1] = '\x1b';
	fix_checksum(&c);
	plant_craft(&c, true);
	free(c.b);
	/* The library logs no key here any more (the cycle is this flag's
	 * SNAPSHOT_INVALID); the tool's verification names it, escaped. */
	eval_timed(reader, "str", NULL);
	for (const char *q = all_logs(); *q; q++)
		cr_assert(*q != '\x1b', "a raw ESC in the log:\n%s", all_logs());
	char out[4096];
	char *argv[] = { (char *)rh_bin("FLAGSHM_TOOL"), "--store", store, "list", NULL };
	cr_expect_eq(rh_run(argv, out, sizeof out, 10000), 1, "list: %s", out);
	cr_expect(strstr(out, "(\"p\\x1be\") form a cycle"), "tool: %s", out);
	cr_expect_null(strchr(out, '\x1b'), "a raw ESC in the tool's output:\n%s", out);
}
