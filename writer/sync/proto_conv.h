/*
 * writer/sync/proto_conv.h - a flag document as JSON (jansson) <-> as protobuf
 * (proto/flagshm.proto, message flagshm.v1.Document).
 *
 * Both forms carry the same information. The conversion is driven by the
 * protobuf-c descriptors: a JSON key is the proto field name in camelCase,
 * so a field added to the .proto needs no code here. What the JSON form
 * cannot tell apart comes back normalised: a number that is integral (and
 * exact in a double) comes back as a JSON integer, an object without
 * formatVersion, epoch and segments comes back as the bare array of its
 * flags, and an empty list whose absence means the same comes back absent.
 *
 * Conversion checks shapes only (object, number, string, known keys); what
 * the values mean is wc_compile's job.
 */
#ifndef FLAGSHM_WRITER_PROTO_CONV_H
#define FLAGSHM_WRITER_PROTO_CONV_H

#include "compile.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Encode DOC (a format-1 object or a bare array of flags) as a serialized
 * Document. On success *out is malloc'd (free() it) and *outlen its size.
 * Returns 0, or:
 *   FLAGSHM_EINVAL  DOC has a shape protobuf cannot carry: an unknown key,
 *                   a wrong type, a string with a NUL; ERR gets
 *                   "flags[2].rolloutPercentage: expected a number"
 *   FLAGSHM_ENOMEM  out of memory
 */
int ws_proto_encode(const json_t *doc, uint8_t **out, size_t *outlen, char *err, size_t errlen);

/*
 * Decode LEN bytes at BUF (a serialized Document) into a new JSON document
 * *doc (one reference, the caller's). Returns 0, or:
 *   FLAGSHM_EINVAL  not a Document (bad wire format), a string that is not
 *                   UTF-8, a Value with no kind, a json_value that is not
 *                   JSON, a duplicate map key; ERR says which and where
 *   FLAGSHM_ENOMEM  out of memory
 *   FLAGSHM_EINVAL  also, when LIM is not NULL: more flags or segments
 *                   entries than LIM allows, counted on the wire before
 *                   anything is unpacked ("flags: more than the limit
 *                   max_flags (N): flags[N] starts at byte B ..."); and
 *                   whatever LIM: decoding would need more memory than the
 *                   parse budget (writer/compile/budget.h), which only a body dense
 *                   in empty or tiny messages needs; ERR says so (and
 *                   where, once the unpack is done)
 * LIM NULL: no count limits, the default doc-bytes for the budget.
 */
int ws_proto_decode(const uint8_t *buf, size_t len, const wc_limits *lim, json_t **doc, char *err,
		    size_t errlen);

#endif
