/*
 * tests/test_cache.c - the cold-start cache (writer/sync/cache.h): what is saved
 * loads back equal, a save replaces the file whole and leaves no temporary
 * behind, a failed save keeps the old file, and a damaged file is reported
 * as corrupt, never loaded; a state dir that a symlink stands for, that
 * others can write, or a FIFO in it, is refused, never followed or read.
 */
#include <criterion/criterion.h>

#include "cache.h"
#include "flagshm.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char doc_text[] =
	"{\"formatVersion\": 1, \"epoch\": 3, \"segments\": {\"s\": {\"included\": [\"u-1\"]}},"
	" \"flags\": [{\"key\": \"a\", \"defaultValue\": true, \"rolloutPercentage\": 12.5},"
	"            {\"key\": \"b\", \"defaultValue\": {\"x\": [1, 2]}, \"offValue\": {}}]}";

static char dir[256];

static void make_dir(void)
{
	snprintf(dir, sizeof dir, "/tmp/flagshm-test-cache-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	(void)!system(cmd);
}

TestSuite(cache, .init = make_dir, .fini = remove_dir);

static json_t *doc(void)
{
	json_t *j = json_loads(doc_text, 0, NULL);
	cr_assert_not_null(j);
	return j;
}

static size_t count_entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static char *path_of(const char *name)
{
	static char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return p;
}

static void write_bytes(const char *name, const void *b, size_t n)
{
	FILE *f = fopen(path_of(name), "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(b, 1, n, f), n);
	fclose(f);
}

static size_t read_bytes(const char *name, unsigned char *b, size_t cap)
{
	FILE *f = fopen(path_of(name), "rb");
	size_t n;
	cr_assert_not_null(f);
	n = fread(b, 1, cap, f);
	fclose(f);
	return n;
}

Test(cache, saved_document_and_meta_load_back_equal)
{
	json_t *in = doc(), *out = NULL;
	ws_cache_meta meta = {.source = "https://cp.example/", .etag = "\"v7\"", .last_event_id = "42"};
	ws_cache_meta got;
	char err[256] = "";

	cr_assert_eq(ws_cache_save(dir, in, &meta, err, sizeof err), 0, "%s", err);
	cr_assert_eq(ws_cache_load(dir, 1 << 20, &out, &got, err, sizeof err), 0, "%s", err);
	cr_assert(json_equal(in, out));
	cr_assert_str_eq(got.source, "https://cp.example/");
	cr_assert_str_eq(got.etag, "\"v7\"");
	cr_assert_str_eq(got.last_event_id, "42");
	cr_assert_gt(got.saved_ms, 1700000000000LL);
	ws_cache_meta_free(&got);
	json_decref(in);
	json_decref(out);
}

Test(cache, a_save_replaces_the_file_and_leaves_no_temporary)
{
	json_t *in = doc(), *two, *out = NULL;
	char err[256];

	cr_assert_eq(ws_cache_save(dir, in, NULL, err, sizeof err), 0, "%s", err);
	cr_assert_eq(count_entries(), 1);
	two = json_pack("{s:i, s:[{s:s, s:b}]}", "formatVersion", 1, "flags", "key", "only", "defaultValue", 0);
	cr_assert_eq(ws_cache_save(dir, two, NULL, err, sizeof err), 0, "%s", err);
	cr_assert_eq(count_entries(), 1, "a temporary file was left behind");
	cr_assert_eq(ws_cache_load(dir, 1 << 20, &out, NULL, err, sizeof err), 0, "%s", err);
	cr_assert(json_equal(two, out));
	json_decref(in);
	json_decref(two);
	json_decref(out);
}

Test(cache, a_failed_save_keeps_the_old_file)
{
	json_t *in = doc(), *bad, *out = NULL;
	char err[256] = "";

	cr_assert_eq(ws_cache_save(dir, in, NULL, err, sizeof err), 0, "%s", err);
	bad = json_pack("{s:i, s:[{s:s, s:i}]}", "formatVersion", 1, "flags", "key", "a", "unknown", 1);
	cr_assert_eq(ws_cache_save(dir, bad, NULL, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert_str_eq(err, "flags[0].unknown: unknown field");
	cr_assert_eq(ws_cache_load(dir, 1 << 20, &out, NULL, err, sizeof err), 0, "%s", err);
	cr_assert(json_equal(in, out));
	cr_assert_eq(count_entries(), 1);
	json_decref(in);
	json_decref(bad);
	json_decref(out);
}

Test(cache, a_temporary_left_by_a_killed_writer_does_not_matter)
{
	json_t *in = doc(), *out = NULL;
	char err[256];

	cr_assert_eq(ws_cache_save(dir, in, NULL, err, sizeof err), 0, "%s", err);
	write_bytes(".document.pb.AbCdEf", "half a fi", 9); /* killed between write and rename */
	cr_assert_eq(ws_cache_load(dir, 1 << 20, &out, NULL, err, sizeof err), 0, "%s", err);
	cr_assert(json_equal(in, out));
	json_decref(in);
	json_decref(out);
}

Test(cache, no_file_is_a_first_start_not_an_error)
{
	json_t *out = (json_t *)1;
	char err[256];

	cr_assert_eq(ws_cache_load(dir, 1 << 20, &out, NULL, err, sizeof err), FLAGSHM_ENOSTORE);
	cr_assert_null(out);
}

static void assert_corrupt(const char *want)
{
	json_t *out = (json_t *)1;
	ws_cache_meta meta;
	char err[512] = "";

	cr_assert_eq(ws_cache_load(dir, 1 << 20, &out, &meta, err, sizeof err), FLAGSHM_ECORRUPT,
		     "not reported corrupt: %s", err);
	cr_assert_null(out);
	cr_assert(strstr(err, "corrupt cache file") && strstr(err, want), "message: %s", err);
	cr_assert_null(meta.etag);
}

Test(cache, every_truncation_is_reported_corrupt)
{
	json_t *in = doc();
	unsigned char full[8192];
	size_t n;
	char err[256];

	cr_assert_eq(ws_cache_save(dir, in, &(ws_cache_meta){.etag = "e"}, err, sizeof err), 0, "%s", err);
	n = read_bytes(WS_CACHE_FILE, full, sizeof full);
	cr_assert(n > 0 && n < sizeof full);
	for (size_t k = 0; k < n; k++) {
		json_t *out = NULL;
		int rc;
		write_bytes(WS_CACHE_FILE, full, k);
		rc = ws_cache_load(dir, 1 << 20, &out, NULL, err, sizeof err);
		/* Cut after the document and checksum, only metadata is lost:
		 * that file still holds the whole, checked document. */
		if (rc == 0) {
			cr_assert(json_equal(in, out), "truncated at %zu loaded a different document", k);
			json_decref(out);
			continue;
		}
		cr_assert_eq(rc, FLAGSHM_ECORRUPT, "truncated at %zu: rc %d (%s)", k, rc, err);
	}
	json_decref(in);
}

Test(cache, a_flipped_byte_is_caught_by_the_checksum)
{
	json_t *in = doc();
	unsigned char full[8192];
	size_t n;
	char err[256];

	cr_assert_eq(ws_cache_save(dir, in, NULL, err, sizeof err), 0, "%s", err);
	n = read_bytes(WS_CACHE_FILE, full, sizeof full);
	full[n / 2] ^= 0x20; /* inside the document bytes */
	write_bytes(WS_CACHE_FILE, full, n);
	assert_corrupt("checksum mismatch");
	json_decref(in);
}

Test(cache, garbage_and_empty_files_are_corrupt)
{
	write_bytes(WS_CACHE_FILE, "this is not protobuf at all\xff\xff", 29);
	assert_corrupt("not a flagshm cache file");
	write_bytes(WS_CACHE_FILE, "", 0);
	assert_corrupt("not a flagshm cache file");
}

Test(cache, a_file_over_the_bound_is_corrupt)
{
	json_t *in = doc(), *out = NULL;
	char err[256] = "";

	cr_assert_eq(ws_cache_save(dir, in, NULL, err, sizeof err), 0, "%s", err);
	cr_assert_eq(ws_cache_load(dir, 16, &out, NULL, err, sizeof err), FLAGSHM_ECORRUPT);
	cr_assert(strstr(err, "at most 16 bytes"), "%s", err);
	json_decref(in);
}

Test(cache, dir_make_creates_parents)
{
	char sub[512], err[256];
	struct stat st;

	snprintf(sub, sizeof sub, "%s/var/lib/flagshm/shop", dir);
	cr_assert_eq(ws_cache_dir_make(sub, err, sizeof err), 0, "%s", err);
	cr_assert_eq(stat(sub, &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(ws_cache_dir_make(sub, err, sizeof err), 0, "%s", err);
}

Test(cache, save_into_a_missing_directory_fails_cleanly)
{
	json_t *in = doc();
	char sub[512], err[256] = "";

	snprintf(sub, sizeof sub, "%s/missing", dir);
	cr_assert_eq(ws_cache_save(sub, in, NULL, err, sizeof err), FLAGSHM_ESYS);
	cr_assert(strstr(err, "missing"), "%s", err);
	json_decref(in);
}

/* Only what this writer's user controls is trusted. */

Test(cache, dir_make_creates_the_state_dir_with_mode_0700)
{
	char sub[512], err[256];
	struct stat st;

	umask(022);
	snprintf(sub, sizeof sub, "%s/new/state", dir);
	cr_assert_eq(ws_cache_dir_make(sub, err, sizeof err), 0, "%s", err);
	cr_assert_eq(lstat(sub, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700, "mode %04o", (unsigned)(st.st_mode & 07777));
}

Test(cache, a_fifo_named_like_the_cache_file_is_corrupt_not_waited_on, .timeout = 10)
{
	json_t *out = NULL;
	char err[256] = "";

	cr_assert_eq(mkfifo(path_of(WS_CACHE_FILE), 0600), 0);
	cr_assert_eq(ws_cache_load(dir, 1 << 20, &out, NULL, err, sizeof err), FLAGSHM_ECORRUPT,
		     "%s", err);
	cr_assert(strstr(err, "not a regular file"), "%s", err);
	cr_assert_null(out);
}

Test(cache, a_symlinked_cache_file_is_not_followed)
{
	json_t *in = doc(), *out = NULL;
	char err[256] = "", real[512];

	cr_assert_eq(ws_cache_save(dir, in, NULL, err, sizeof err), 0, "%s", err);
	snprintf(real, sizeof real, "%s", path_of("elsewhere.pb"));
	cr_assert_eq(rename(path_of(WS_CACHE_FILE), real), 0);
	cr_assert_eq(symlink(real, path_of(WS_CACHE_FILE)), 0);
	cr_assert_eq(ws_cache_load(dir, 1 << 20, &out, NULL, err, sizeof err), FLAGSHM_ECORRUPT,
		     "%s", err);
	cr_assert(strstr(err, "a symbolic link, not followed"), "%s", err);
	cr_assert_null(out);
	json_decref(in);
}

Test(cache, a_state_dir_writable_by_others_is_refused_for_load_and_save)
{
	json_t *in = doc(), *out = NULL;
	char err[512] = "", want[512];

	cr_assert_eq(ws_cache_save(dir, in, NULL, err, sizeof err), 0, "%s", err);
	cr_assert_eq(chmod(dir, 0777), 0);
	snprintf(want, sizeof want, "refusing state directory %s: owner uid %u, mode 0777", dir,
		 (unsigned)geteuid());
	cr_assert_eq(ws_cache_load(dir, 1 << 20, &out, NULL, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert(strstr(err, want), "got \"%s\", want \"%s\"", err, want);
	cr_assert_null(out);
	err[0] = '\0';
	cr_assert_eq(ws_cache_save(dir, in, NULL, err, sizeof err), FLAGSHM_EINVAL);
	cr_assert(strstr(err, want), "got \"%s\", want \"%s\"", err, want);
	cr_assert_eq(chmod(dir, 0770), 0);
	cr_assert_eq(ws_cache_load(dir, 1 << 20, &out, NULL, err, sizeof err), FLAGSHM_EINVAL,
		     "a group-writable state dir was trusted");
	json_decref(in);
}

Test(cache, a_symlinked_state_dir_is_refused)
{
	json_t *out = NULL;
	char err[512] = "", link[512];

	snprintf(link, sizeof link, "%s-link", dir);
	cr_assert_eq(symlink(dir, link), 0);
	int rc = ws_cache_load(link, 1 << 20, &out, NULL, err, sizeof err);
	cr_assert_eq(rc, FLAGSHM_EINVAL, "%d %s", rc, err);
	cr_assert(strstr(err, "is a symbolic link, not followed"), "%s", err);
	/* A trailing slash would make open() follow it: still refused. */
	strcat(link, "//");
	rc = ws_cache_dir_make(link, err, sizeof err);
	link[strlen(link) - 2] = '\0';
	unlink(link);
	cr_assert_eq(rc, FLAGSHM_EINVAL, "\"%s//\" was followed: %d %s", link, rc, err);
	cr_assert(strstr(err, "is a symbolic link, not followed"), "%s", err);
}
