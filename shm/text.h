/*
 * shm/text.h - text from outside made safe to show: in the writer's log,
 * in the control object's text fields and in the flagshm tool's output.
 *
 * Outside text (an ETag or event id from a control plane, a key in a
 * snapshot, a document's error message) may hold terminal escapes or
 * forged line breaks; a source URL may carry a password in its userinfo,
 * and ctl_last_error is readable by every local user. Writer and tool use
 * these two functions, so the rule is stated once:
 *
 *  - fs_text_escape: every byte below 0x20, 0x7f, every byte that is not
 *    part of valid UTF-8 (a lone 0x9b is CSI to some terminals) becomes
 *    \xNN; the C1 controls U+0080-U+009F and the bidirectional controls
 *    (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069, which reorder what a
 *    reader sees) become \uNNNN. Everything else, a backslash included,
 *    is copied as is (FS_TEXT_PLAIN: log lines, the tool's text output).
 *    FS_TEXT_JSON writes the body of a JSON string instead: '"' and '\\'
 *    escaped, \n \t ... or \u00NN for controls and 0x7f, \uNNNN for the
 *    hidden code points, U+FFFD (\ufffd) for a byte that is not UTF-8.
 *  - fs_text_redact: the userinfo of every URL in the text (the "u:pw" of
 *    "https:" "//u:pw@host/x") becomes three asterisks.
 *
 * Both work like snprintf: DST of CAP bytes is always terminated (when CAP
 * > 0), never ends inside an escape or a UTF-8 sequence, and the return
 * value is the length the whole result needs (compare with CAP to detect
 * truncation; CAP 0 only measures).
 */
#ifndef FLAGSHM_SHM_TEXT_H
#define FLAGSHM_SHM_TEXT_H

#include <stddef.h>

enum fs_text_style { FS_TEXT_PLAIN, FS_TEXT_JSON };

size_t fs_text_escape(char *dst, size_t cap, const char *src, size_t n, enum fs_text_style style);
size_t fs_text_redact(char *dst, size_t cap, const char *src);

#endif
