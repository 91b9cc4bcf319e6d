/*
 * tests/fuzz/fuzz_proto.c - libFuzzer target for the protobuf decoding
 * path (writer/sync/proto_conv.h): any bytes either fail to decode with a
 * message, or decode to a JSON document that encodes back and decodes
 * again to the same document.
 */
#include "proto_conv.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc = NULL, *again = NULL;
	uint8_t *pb = NULL;
	size_t n = 0;
	char err[512];

	if (ws_proto_decode(data, size, NULL, &doc, err, sizeof err) != 0) {
		if (doc || !err[0])
			abort();
		return 0;
	}
	if (ws_proto_encode(doc, &pb, &n, err, sizeof err) != 0)
		abort(); /* what decodes must be carried back */
	if (ws_proto_decode(pb, n, NULL, &again, err, sizeof err) != 0)
		abort();
	if (!json_equal(doc, again))
		abort();
	free(pb);
	json_decref(doc);
	json_decref(again);
	return 0;
}
