/*
 * writer/compile/budget.h - a byte budget for parsing untrusted documents.
 *
 * A small document can expand a lot once parsed: 2 bytes of protobuf (an
 * empty Flag entry) become a 200-byte struct, 3 bytes of JSON ("{},") a
 * 200-byte jansson object. The count limits (max_flags, ...) apply only to
 * the parsed tree, so without a bound the writer can grow to gigabytes
 * before they do. A budget caps the bytes that the
 * parser may allocate: every allocation counts (gross, frees are not given
 * back), so the peak stays below the budget. When it runs out the
 * allocation fails, the parser gives up as it would on out-of-memory, and
 * the caller reports the budget, not an OOM.
 *
 * Budgets are per thread: the writer compiles on one thread.
 */
#ifndef FLAGSHM_WRITER_BUDGET_H
#define FLAGSHM_WRITER_BUDGET_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * The budget for parsing LEN bytes: FACTOR * LEN + WC_BUDGET_FLOOR, and
 * never more than WC_BUDGET_DOC times the doc-bytes limit, whatever the
 * input. Measured gross bytes per input byte for valid documents
 * (docs/reliability.md): JSON 6.3 to 11.4; protobuf (unpacked, then
 * converted to JSON) 8 to 57, being 1.1 to 4 times denser than JSON text.
 * The factors leave about twice that.
 */
#define WC_BUDGET_FLOOR (16u << 20)
#define WC_BUDGET_JSON 24
#define WC_BUDGET_PROTO 96
#define WC_BUDGET_DOC 16

typedef struct wc_budget {
	size_t limit, used;
	bool hit; /* an allocation was refused */
	ProtobufCAllocator pb; /* for protobuf-c's unpack and free_unpacked */
} wc_budget;

/* Set up B for a document of LEN bytes with FACTOR, under the doc-bytes
 * limit MAX_DOC_BYTES (above). */
void wc_budget_init(wc_budget *b, size_t len, size_t factor, size_t max_doc_bytes);

/* Count this thread's jansson allocations against B (NULL: stop counting). */
void wc_budget_json(wc_budget *b);

#endif
