/*
 * tests/test_hash.c - MurmurHash3_x86_32 against published vectors, the
 * streaming form against the one-shot one, and the bucket formula.
 */
#include <criterion/criterion.h>

#include "eval.h"
#include "format.h"
#include "hash.h"

#include <stdio.h>
#include <string.h>

struct vec {
	const char *in;
	size_t len;
	uint32_t seed, want;
};

/* From the SMHasher verification and the widely cited test lists: the
 * empty input, every tail length (1-3 bytes) and whole blocks. */
static const struct vec vectors[] = {
	{"", 0, 0, 0},
	{"", 0, 1, 0x514E28B7},
	{"", 0, 0xffffffff, 0x81F16F39},
	{"\0\0\0\0", 4, 0, 0x2362F9DE},
	{"\xff\xff\xff\xff", 4, 0, 0x76293B50},
	{"\x21\x43\x65\x87", 4, 0, 0xF55B516B},
	{"\x21\x43\x65\x87", 4, 0x5082EDEE, 0x2362F9DE},
	{"\x21\x43\x65", 3, 0, 0x7E4A8634},
	{"\x21\x43", 2, 0, 0xA0F7B07A},
	{"\x21", 1, 0, 0x72661CF4},
	{"\0\0\0", 3, 0, 0x85F0B427},
	{"\0\0", 2, 0, 0x30F4C306},
	{"\0", 1, 0, 0x514E28B7},
	{"aaaa", 4, 0x9747b28c, 0x5A97808A},
	{"aaa", 3, 0x9747b28c, 0x283E0130},
	{"aa", 2, 0x9747b28c, 0x5D211726},
	{"a", 1, 0x9747b28c, 0x7FA09EA6},
	{"abcd", 4, 0x9747b28c, 0xF0478627},
	{"abc", 3, 0x9747b28c, 0xC84A62DD},
	{"ab", 2, 0x9747b28c, 0x74875592},
	{"Hello, world!", 13, 0x9747b28c, 0x24884CBA},
	{"The quick brown fox jumps over the lazy dog", 43, 0x9747b28c, 0x2FA826CD},
};

Test(hash, published_vectors)
{
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		const struct vec *v = &vectors[i];
		uint32_t got = mm3_hash(v->in, v->len, v->seed);
		cr_expect_eq(got, v->want, "vector %zu (len %zu, seed 0x%08x): got 0x%08x, want 0x%08x",
			     i, v->len, v->seed, got, v->want);
	}
}

Test(hash, key_hash_is_murmur_with_seed_9747b28c)
{
	cr_expect_eq(fs_key_hash("Hello, world!", 13), 0x24884CBAu);
	cr_expect_eq(fs_key_hash("aaaa", 4), 0x5A97808Au);
}

Test(hash, streaming_in_any_pieces_equals_one_shot)
{
	const char *s = "The quick brown fox jumps over the lazy dog";
	size_t n = strlen(s);
	uint32_t want = mm3_hash(s, n, 0x9747b28c);
	cr_assert_eq(want, 0x2FA826CDu);
	/* Every split into three pieces, empty pieces included. */
	for (size_t a = 0; a <= n; a++)
		for (size_t b = a; b <= n; b++) {
			mm3 m;
			mm3_init(&m, 0x9747b28c);
			mm3_feed(&m, s, a);
			mm3_feed(&m, s + a, b - a);
			mm3_feed(&m, s + b, n - b);
			uint32_t got = mm3_final(&m);
			cr_assert_eq(got, want, "pieces [0,%zu) [%zu,%zu) [%zu,%zu): 0x%08x != 0x%08x",
				     a, a, b, b, n, got, want);
		}
	/* Byte by byte. */
	mm3 m;
	mm3_init(&m, 0x9747b28c);
	for (size_t i = 0; i < n; i++)
		mm3_feed(&m, s + i, 1);
	cr_expect_eq(mm3_final(&m), want);
}

Test(hash, bucket_is_murmur_of_salt_colon_id_mod_100000)
{
	const char *cases[][2] = {{"new-checkout", "u-42"}, {"", ""}, {"s", "user-1234567"},
				  {"salt with spaces", "\xc3\xa9t\xc3\xa9"}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char buf[128];
		int n = snprintf(buf, sizeof buf, "%s:%s", cases[i][0], cases[i][1]);
		uint32_t want = mm3_hash(buf, (size_t)n, 0) % 100000;
		uint32_t got = eval_bucket(cases[i][0], strlen(cases[i][0]), cases[i][1],
					   strlen(cases[i][1]));
		cr_expect_eq(got, want, "bucket(%s, %s) = %u, want %u", cases[i][0], cases[i][1],
			     got, want);
	}
	/* Past the evaluator's stack buffer it streams: same answer. */
	char salt[300], id[300], whole[601];
	for (size_t n = 100; n < 300; n += 37) {
		memset(salt, 's', n);
		memset(id, 'i', n / 2);
		memcpy(whole, salt, n);
		whole[n] = ':';
		memcpy(whole + n + 1, id, n / 2);
		uint32_t want = mm3_hash(whole, n + 1 + n / 2, 0) % 100000;
		cr_expect_eq(eval_bucket(salt, n, id, n / 2), want, "salt of %zu bytes", n);
	}
}

Test(hash, checksum_sees_every_byte_and_the_length)
{
	unsigned char buf[67];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (unsigned char)(i * 7 + 1);
	uint64_t base = fs_checksum(buf, sizeof buf);
	/* Known answers: the checksum is part of the snapshot format, so a
	 * change to it is a format change (readers of the old one would
	 * refuse every snapshot), not a refactor. */
	cr_expect_eq(base, 0x579b2d8d1e1d193fULL, "checksum of the 67-byte vector: 0x%016llx",
		     (unsigned long long)base);
	cr_expect_eq(fs_checksum(buf, 0), 0xfe8328c8a7d1f0dcULL, "checksum of nothing");
	for (size_t i = 0; i < sizeof buf; i++) {
		buf[i] ^= 0x10;
		cr_expect_neq(fs_checksum(buf, sizeof buf), base, "flip in byte %zu not seen", i);
		buf[i] ^= 0x10;
	}
	/* The zero-padded tail must not make "x" and "x\0" equal. */
	cr_expect_neq(fs_checksum(buf, 65), fs_checksum(buf, 64));
	unsigned char z[9] = {0};
	cr_expect_neq(fs_checksum(z, 8), fs_checksum(z, 9));
	cr_expect_neq(fs_checksum(z, 0), fs_checksum(z, 1));
}
