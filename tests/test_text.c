/*
 * tests/test_text.c - shm/text.h: what reaches a log line, the control
 * object's text fields and the flagshm tool's output.
 */
#include <criterion/criterion.h>

#include "text.h"

#include <string.h>

static const char *plain(const char *s, size_t n)
{
	static char buf[512];
	size_t need = fs_text_escape(buf, sizeof buf, s, n, FS_TEXT_PLAIN);
	cr_assert_lt(need, sizeof buf);
	cr_assert_eq(strlen(buf), need);
	return buf;
}

static const char *json(const char *s)
{
	static char buf[512];
	fs_text_escape(buf, sizeof buf, s, strlen(s), FS_TEXT_JSON);
	return buf;
}

static const char *redact(const char *s)
{
	static char buf[512];
	size_t need = fs_text_redact(buf, sizeof buf, s);
	cr_assert_eq(strlen(buf), need);
	return buf;
}

Test(text, terminal_escapes_and_line_breaks_are_escaped)
{
	const char in[] = "etag \x1b]0;owned\x07 x\r\nfake line\x7f";
	cr_expect_str_eq(plain(in, sizeof in - 1), "etag \\x1b]0;owned\\x07 x\\x0d\\x0afake line\\x7f");
	cr_expect_str_eq(plain("a\tb", 3), "a\\x09b");
}

Test(text, printable_text_and_utf8_are_kept)
{
	const char *s = "flag-é.ü_日本 \\x1b \"quoted\"";
	cr_expect_str_eq(plain(s, strlen(s)), s);
}

Test(text, c1_controls_bidi_overrides_and_invalid_utf8_are_escaped)
{
	/* U+009B (CSI) encoded, a lone 0x9b, U+202E, an overlong '/', a
	 * truncated sequence at the end. */
	const char in[] = "a\xc2\x9b" "b\x9b" "c\xe2\x80\xae" "d\xc0\xaf" "e\xe2\x82";
	cr_expect_str_eq(plain(in, sizeof in - 1),
			 "a\\u009bb\\x9bc\\u202ed\\xc0\\xafe\\xe2\\x82");
}

Test(text, a_nul_byte_inside_is_escaped_not_an_end)
{
	cr_expect_str_eq(plain("a\0b", 3), "a\\x00b");
}

Test(text, truncation_never_cuts_an_escape_or_a_character)
{
	char buf[8];
	size_t need = fs_text_escape(buf, sizeof buf, "abcde\x1b", 6, FS_TEXT_PLAIN);
	cr_expect_eq(need, 9);
	cr_expect_str_eq(buf, "abcde"); /* "\x1b" does not fit whole */
	need = fs_text_escape(buf, sizeof buf, "abcdef\xc3\xa9", 8, FS_TEXT_PLAIN);
	cr_expect_eq(need, 8);
	cr_expect_str_eq(buf, "abcdef");
	cr_expect_eq(fs_text_escape(NULL, 0, "\x01\x02", 2, FS_TEXT_PLAIN), 8, "measuring");
}

Test(text, json_style_is_a_valid_json_string_body)
{
	cr_expect_str_eq(json("k\x1b[31m\"\\\n\x7f\xc2\x85"), "k\\u001b[31m\\\"\\\\\\n\\u007f\\u0085");
	cr_expect_str_eq(json("x\xff"), "x\\ufffd");
}

Test(text, url_userinfo_is_redacted)
{
	cr_expect_str_eq(redact("http://user:s3cret@cp.example.com:8080/api/v1/flags: HTTP 401"),
			 "http://***@cp.example.com:8080/api/v1/flags: HTTP 401");
	cr_expect_str_eq(redact("syncing from https://tok@h by polling"),
			 "syncing from https://***@h by polling");
	/* an '@' in the password (not encoded) and two URLs in one line */
	cr_expect_str_eq(redact("a https://u:p@ss@h/x b http://v:w@k c"),
			 "a https://***@h/x b http://***@k c");
	cr_expect_str_eq(redact("http://h/p?mail=a@b"), "http://h/p?mail=a@b");
	cr_expect_str_eq(redact("no url at all: user@host"), "no url at all: user@host");
}
