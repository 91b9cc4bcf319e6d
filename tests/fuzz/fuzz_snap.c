/*
 * tests/fuzz/fuzz_snap.c - libFuzzer target: the snapshot validator
 * (snap_open) and the evaluator on arbitrary bytes, as a reader would see
 * them in a hostile /dev/shm object.
 *
 * Input: one mode byte, then the snapshot. Mode bit 0 set: the target
 * first makes sh_size and sh_checksum agree with the bytes, so that the
 * fuzzer explores what lies behind the checksum (tables, index, records);
 * clear: the bytes are validated as they are. When snap_open accepts,
 * every flag is evaluated with three contexts, a few keys are looked up,
 * and nothing may crash, read outside the buffer or take unbounded time.
 */
#include "eval.h"
#include "snap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (8u << 20))
		return 0;
	uint8_t mode = data[0];
	size_t n = size - 1;
	/* An exact-size, 8-byte aligned copy: ASan sees any byte read past it. */
	uint8_t *b = malloc(n ? n : 1);
	if (!b)
		return 0;
	memcpy(b, data + 1, n);
	if ((mode & 1) && n >= sizeof(fs_snap_hdr)) {
		fs_snap_hdr *h = (fs_snap_hdr *)b;
		h->sh_size = n;
		h->sh_checksum = fs_checksum(b + FS_SNAP_SUMMED_FROM, n - FS_SNAP_SUMMED_FROM);
	}
	snap s;
	char err[256];
	memset(&s, 0, sizeof s);
	if (snap_open(&s, b, n, err, sizeof err) == 0) {
		static const char *const items[] = { "beta", "x" };
		flagshm_ctx ctx[3];
		flagshm_ctx_init(&ctx[0]);
		flagshm_ctx_init(&ctx[1]);
		flagshm_ctx_string(&ctx[1], "userId", "u-1");
		flagshm_ctx_string(&ctx[1], "country", "DE");
		flagshm_ctx_string(&ctx[1], "app", "1.2.3-beta.1");
		flagshm_ctx_string(&ctx[1], "email", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!");
		flagshm_ctx_number(&ctx[1], "n", 5);
		flagshm_ctx_list(&ctx[1], "tags", items, 2);
		flagshm_ctx_init(&ctx[2]);
		flagshm_ctx_number(&ctx[2], "userId", 42);
		flagshm_ctx_bool(&ctx[2], "country", true);
		flagshm_ctx_string(&ctx[2], "when", "2026-11-01T00:00:00Z");
		uint32_t nf = s.count[FS_T_FLAGS];
		for (uint32_t i = 0; i < nf && i < 4096; i++)
			for (int c = 0; c < 3; c++) {
				flagshm_result r;
				eval_flag(&s, i, &ctx[c], &r);
			}
		static const char *const keys[] = { "a", "new-checkout", "", "f" };
		for (int k = 0; k < 4; k++) {
			flagshm_result r;
			eval_key(&s, keys[k], &ctx[1], &r);
		}
		snap_close(&s);
	}
	free(b);
	return 0;
}
